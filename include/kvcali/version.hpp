// kvcali: version.
#pragma once

#define KVCALI_VERSION_MAJOR 0
#define KVCALI_VERSION_MINOR 1
#define KVCALI_VERSION_PATCH 0
#define KVCALI_VERSION_STRING "0.1.0"

namespace kvcali {
inline constexpr const char* version_string = KVCALI_VERSION_STRING;
}
