// kvcali's non-template pipeline, compiled once (KVCALI_SEPARATE_COMPILATION): the static library
// kvcali-separate that the CLI and the tests link (see tools/meson.build).
#include <kvcali/src.hpp>
