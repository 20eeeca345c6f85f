// Must not compile: a type that is not a model graph handed to the generator. The test checks that
// the compiler's message says what to provide.
#include <kvcali/generate.hpp>

struct not_a_graph {
    int layers = 0;
};

int main() { kvcali::resolve_quant_cali_config(not_a_graph{}, kvcali::quant_layers{"x"}); }
