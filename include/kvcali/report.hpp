// kvcali report: per-layer quality figures of calibrated KV-cache scales
// (figures.hpp), built from config.json, the activations and the record
// (build.hpp), written as JSON (json.hpp) and as one self-contained HTML page
// (html.hpp).
#pragma once

#include "report/build.hpp"
#include "report/figures.hpp"
#include "report/html.hpp"
#include "report/json.hpp"
