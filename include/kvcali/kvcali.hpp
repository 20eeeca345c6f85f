// kvcali: KV-cache quantization configs (AMCT-compatible) for any model graph.
// The umbrella header: everything of the core, calibration included (the export and the quality
// report have their own: <kvcali/export.hpp>, <kvcali/report.hpp>).
#pragma once

#include "calibration/accumulator.hpp"  // IWYU pragma: export
#include "calibration/activations.hpp"  // IWYU pragma: export
#include "calibration/calibrator.hpp"   // IWYU pragma: export
#include "calibration/hfmg.hpp"         // IWYU pragma: export
#include "calibration/ifmr.hpp"         // IWYU pragma: export
#include "calibration/layout.hpp"       // IWYU pragma: export
#include "calibration/npy.hpp"          // IWYU pragma: export
#include "calibration/record.hpp"       // IWYU pragma: export
#include "calibration/scale.hpp"        // IWYU pragma: export
#include "calibration/settings.hpp"     // IWYU pragma: export
#include "config_reader.hpp"            // IWYU pragma: export
#include "config_writer.hpp"            // IWYU pragma: export
#include "customization.hpp"            // IWYU pragma: export
#include "error.hpp"                    // IWYU pragma: export
#include "generate.hpp"                 // IWYU pragma: export
#include "io.hpp"                       // IWYU pragma: export
#include "json_format.hpp"              // IWYU pragma: export
#include "layer_list.hpp"               // IWYU pragma: export
#include "layer_table.hpp"              // IWYU pragma: export
#include "model_graph.hpp"              // IWYU pragma: export
#include "policy.hpp"                   // IWYU pragma: export
#include "quant_cfg.hpp"                // IWYU pragma: export
#include "quant_layers_json.hpp"        // IWYU pragma: export
#include "resolve.hpp"                  // IWYU pragma: export
#include "resolved_config.hpp"          // IWYU pragma: export
#include "selector.hpp"                 // IWYU pragma: export
#include "simple_config.hpp"            // IWYU pragma: export
#include "suggest.hpp"                  // IWYU pragma: export
#include "version.hpp"                  // IWYU pragma: export
