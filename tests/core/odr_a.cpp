// ODR test, first TU: every public header.
#include <kvcali/kvcali.hpp>

int odr_a() { return static_cast<int>(kvcali::float32_repr(0.7f).size()); }
