// kvcali: the definitions for separate compilation. With KVCALI_SEPARATE_COMPILATION defined in
// every TU of the program, include this header in exactly one of them (e.g. a kvcali_src.cpp of
// its own): it defines every non-template function the public headers declare (see
// detail/config.hpp); the other TUs compile only declarations.
#pragma once

#if !defined(KVCALI_SEPARATE_COMPILATION)
#error "<kvcali/src.hpp> is for separate compilation: define KVCALI_SEPARATE_COMPILATION in every TU of the program"
#endif

#include "impl/accumulator.ipp"         // IWYU pragma: export
#include "impl/activations.ipp"         // IWYU pragma: export
#include "impl/calibrator.ipp"          // IWYU pragma: export
#include "impl/concat.ipp"              // IWYU pragma: export
#include "impl/config_reader.ipp"       // IWYU pragma: export
#include "impl/config_writer.ipp"       // IWYU pragma: export
#include "impl/error.ipp"               // IWYU pragma: export
#include "impl/export_json_text.ipp"    // IWYU pragma: export
#include "impl/export_plan.ipp"         // IWYU pragma: export
#include "impl/export_safetensors.ipp"  // IWYU pragma: export
#include "impl/export_writer.ipp"       // IWYU pragma: export
#include "impl/generate.ipp"            // IWYU pragma: export
#include "impl/hfmg.ipp"                // IWYU pragma: export
#include "impl/ifmr.ipp"                // IWYU pragma: export
#include "impl/io.ipp"                  // IWYU pragma: export
#include "impl/json_format.ipp"         // IWYU pragma: export
#include "impl/layer_buffer.ipp"        // IWYU pragma: export
#include "impl/layer_list.ipp"          // IWYU pragma: export
#include "impl/layout.ipp"              // IWYU pragma: export
#include "impl/npy.ipp"                 // IWYU pragma: export
#include "impl/policy.ipp"              // IWYU pragma: export
#include "impl/quant_cfg.ipp"           // IWYU pragma: export
#include "impl/quant_layers_json.ipp"   // IWYU pragma: export
#include "impl/record.ipp"              // IWYU pragma: export
#include "impl/report_build.ipp"        // IWYU pragma: export
#include "impl/report_figures.ipp"      // IWYU pragma: export
#include "impl/report_html.ipp"         // IWYU pragma: export
#include "impl/report_json.ipp"         // IWYU pragma: export
#include "impl/resolve.ipp"             // IWYU pragma: export
#include "impl/scale.ipp"               // IWYU pragma: export
#include "impl/selector.ipp"            // IWYU pragma: export
#include "impl/suggest.ipp"             // IWYU pragma: export
