// ODR test, second TU: every public header again; both TUs linked into one program.
#include <kvcali/kvcali.hpp>

int odr_a();

int main() {
    kvcali::layer_table t;
    t.add("k", "Linear", true);
    const auto doc = kvcali::resolve_quant_cali_config(t, kvcali::quant_layers{"k"});
    return odr_a() == 3 && kvcali::write_config_json(doc).size() > 100 ? 0 : 1;
}
