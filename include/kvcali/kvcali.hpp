// kvcali: KV-cache quantization configs (AMCT-compatible) for any model graph.
// The umbrella header: everything of the core.
#pragma once

#include "config_reader.hpp"      // IWYU pragma: export
#include "config_writer.hpp"      // IWYU pragma: export
#include "customization.hpp"      // IWYU pragma: export
#include "error.hpp"              // IWYU pragma: export
#include "generate.hpp"           // IWYU pragma: export
#include "io.hpp"                 // IWYU pragma: export
#include "json_format.hpp"        // IWYU pragma: export
#include "layer_list.hpp"         // IWYU pragma: export
#include "layer_table.hpp"        // IWYU pragma: export
#include "model_graph.hpp"        // IWYU pragma: export
#include "policy.hpp"             // IWYU pragma: export
#include "quant_cfg.hpp"          // IWYU pragma: export
#include "quant_layers_json.hpp"  // IWYU pragma: export
#include "resolve.hpp"            // IWYU pragma: export
#include "resolved_config.hpp"    // IWYU pragma: export
#include "selector.hpp"           // IWYU pragma: export
#include "simple_config.hpp"      // IWYU pragma: export
#include "suggest.hpp"            // IWYU pragma: export
#include "version.hpp"            // IWYU pragma: export
