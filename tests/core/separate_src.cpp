// Separate compilation: the one TU of the program that defines kvcali's non-template pipeline
// (the other TU, conformance.cpp, is compiled with KVCALI_SEPARATE_COMPILATION and only declares it).
#include <kvcali/src.hpp>
