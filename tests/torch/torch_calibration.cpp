// Calibration from libtorch tensors: float32, float16 and bfloat16, strided views, and errors.
#define BOOST_TEST_MODULE torch_calibration
#include <boost/test/unit_test.hpp>

#include <kvcali/adapters/torch_calibration.hpp>
#include <kvcali/generate.hpp>

#include <vector>

namespace {

// Two per-channel IFMR layers and one HFMG layer, one batch each.
kvcali::resolved_config config() {
    kvcali::layer_table t;
    for (const char* n : {"k", "v", "h"}) t.add(n, "Linear", true);
    auto doc = kvcali::resolve_quant_cali_config(t, kvcali::quant_layers{"k", "v", "h"});
    for (auto& l : doc.layers) l.values.back() = kvcali::param_value::of_enum(1);  // per channel
    doc.layers[2].algorithm = 1;
    doc.layers[2].values = {kvcali::param_value::of_uint(2048), std::nullopt, kvcali::param_value::of_enum(0)};
    return doc;
}

// The reference result: the same values as a contiguous float32 span.
kvcali::quant_factors from_span(const std::string& layer, const at::Tensor& t) {
    kvcali::calibrator cal(config());
    const at::Tensor c = t.to(at::kFloat).contiguous();
    std::vector<std::int64_t> shape(c.sizes().begin(), c.sizes().end());
    cal.observe(layer, std::span<const float>(c.data_ptr<float>(), static_cast<std::size_t>(c.numel())), shape);
    return *cal.result(layer);
}

kvcali::quant_factors from_tensor(const std::string& layer, const at::Tensor& t) {
    kvcali::calibrator cal(config());
    BOOST_TEST((kvcali::libtorch::observe(cal, layer, t) == kvcali::batch_outcome::finished));
    return *cal.result(layer);
}

}  // namespace

BOOST_AUTO_TEST_CASE(dtypes_and_strides_give_the_same_factors_as_float32_spans) {
    at::manual_seed(7);
    const at::Tensor base = at::randn({64, 8}) * 3.0 + 0.5;
    for (const auto type : {at::kFloat, at::kHalf, at::kBFloat16}) {
        const at::Tensor x = base.to(type);
        for (const std::string layer : {"k", "h"}) {
            BOOST_TEST_CONTEXT("dtype " << c10::toString(type) << ", layer " << layer) {
                const auto want = from_span(layer, x);
                const auto got = from_tensor(layer, x);
                BOOST_TEST(got.scale == want.scale, boost::test_tools::per_element());
                BOOST_TEST(got.offset == want.offset, boost::test_tools::per_element());
                // A strided view (a transpose of the transpose, and a column slice of a wider tensor).
                const at::Tensor wide = at::cat({x, x}, 1).narrow(1, 0, 8);
                BOOST_TEST(!wide.is_contiguous());
                const auto strided = from_tensor(layer, wide);
                BOOST_TEST(strided.scale == want.scale, boost::test_tools::per_element());
                const at::Tensor transposed = x.t().contiguous().t();
                BOOST_TEST(!transposed.is_contiguous());
                BOOST_TEST(from_tensor(layer, transposed).offset == want.offset, boost::test_tools::per_element());
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(other_types_and_bad_values_are_invalid_data) {
    kvcali::calibrator cal(config());
    try {
        kvcali::libtorch::observe(cal, "k", at::ones({4, 8}, at::kInt));
        BOOST_FAIL("no error");
    } catch (const kvcali::error& e) {
        BOOST_TEST((e.code() == kvcali::errc::invalid_data));
        BOOST_TEST(std::string(e.what()).find("\"k\"") != std::string::npos, e.what());
    }
    at::Tensor bad = at::ones({4, 8});
    bad[1][2] = std::numeric_limits<float>::quiet_NaN();
    try {
        kvcali::libtorch::observe(cal, "v", bad);
        BOOST_FAIL("no error");
    } catch (const kvcali::error& e) {
        BOOST_TEST((e.code() == kvcali::errc::invalid_data));
    }
    try {
        kvcali::libtorch::observe(cal, "nope", at::ones({4, 8}));
        BOOST_FAIL("no error");
    } catch (const kvcali::error& e) {
        BOOST_TEST((e.code() == kvcali::errc::unknown_layer));
    }
}
