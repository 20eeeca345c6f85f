// kvcali export: calibrated KV-cache scales into the checkpoints serving engines read (MindIE and
// vLLM-Ascend's msModelSlim C8 layout, vLLM's compressed-tensors, vLLM's older scales JSON).
// The umbrella header of the export folder; see ../shared/spec/export.md.
#pragma once

#include "export/json_text.hpp"    // IWYU pragma: export
#include "export/plan.hpp"         // IWYU pragma: export
#include "export/safetensors.hpp"  // IWYU pragma: export
#include "export/writer.hpp"       // IWYU pragma: export
