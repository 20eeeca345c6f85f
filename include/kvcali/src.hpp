// kvcali: the definitions for separate compilation. With KVCALI_SEPARATE_COMPILATION defined in
// every TU of the program, include this header in exactly one of them (e.g. a kvcali_src.cpp of
// its own); the other TUs include <kvcali/generate.hpp> and compile without the parsers, the
// resolver and the writer. See generate.hpp.
#pragma once

#if !defined(KVCALI_SEPARATE_COMPILATION)
#error "<kvcali/src.hpp> is for separate compilation: define KVCALI_SEPARATE_COMPILATION in every TU of the program"
#endif

#include "detail/pipeline.hpp"  // IWYU pragma: export
#include "generate.hpp"         // IWYU pragma: export
