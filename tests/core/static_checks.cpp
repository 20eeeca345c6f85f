// Compile-only tests of the model_graph concept: an archetype graph with members, a foreign graph
// adapted through a traits specialisation, and types that are not graphs.
#include <kvcali/layer_table.hpp>
#include <kvcali/policy.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace archetype {

// The least a graph type must offer through members.
struct layer {
    std::string_view name() const { return "l"; }
    std::string_view type_name() const { return "Linear"; }
};
struct graph {
    std::vector<layer> layers() const { return {}; }
    bool supports_kv_quant(std::string_view type) const { return type == "Linear"; }
};

}  // namespace archetype

namespace foreign {
// A framework's IR we cannot change: no kvcali-shaped members at all.
struct node {
    std::string id;
    std::string op;
};
struct ir {
    std::vector<node> nodes;
};
}  // namespace foreign

template <>
struct kvcali::model_graph_traits<foreign::ir> {
    static const std::vector<foreign::node>& layers(const foreign::ir& g) { return g.nodes; }
    static std::string_view name(const foreign::node& n) { return n.id; }
    static std::string_view type_name(const foreign::node& n) { return n.op; }
    static bool supports_kv_quant(const foreign::ir&, std::string_view op) { return op == "MatMul"; }
};

namespace not_graphs {
struct empty {};
struct layers_without_names {
    std::vector<int> layers() const { return {}; }
    bool supports_kv_quant(std::string_view) const { return true; }
};
struct no_eligibility {
    std::vector<archetype::layer> layers() const { return {}; }
};
}  // namespace not_graphs

static_assert(kvcali::model_graph<archetype::graph>);
static_assert(kvcali::model_graph<foreign::ir>);
static_assert(kvcali::model_graph<kvcali::layer_table>);
static_assert(!kvcali::model_graph<not_graphs::empty>);
static_assert(!kvcali::model_graph<not_graphs::layers_without_names>);
static_assert(!kvcali::model_graph<not_graphs::no_eligibility>);
static_assert(!kvcali::model_graph<int>);

static_assert(kvcali::algorithm_policy<kvcali::ifmr_policy>);
static_assert(kvcali::algorithm_policy<kvcali::hfmg_policy>);
static_assert(!kvcali::algorithm_policy<not_graphs::empty>);
static_assert(kvcali::default_policies::algorithms.size() == 2);
static_assert(kvcali::default_policies::algorithms[0].act_algo == "ifmr");  // IFMR is the default algorithm
static_assert(kvcali::policy_list_type<kvcali::default_policies>);

int main() {
    foreign::ir g{{{"MatMul_0", "MatMul"}, {"Add_1", "Add"}}};
    const auto t = kvcali::extract_layers(g, [](std::string_view) {});
    return t.size() == 2 && t[0].eligible && !t[1].eligible ? 0 : 1;
}
