// kvcali's non-template parts, compiled once (KVCALI_SEPARATE_COMPILATION): the static library
// libkvcali.a that the CLI, the Python module and the tests link and `meson install` installs (meson.build).
#include <kvcali/src.hpp>
