// kvcali._kvcali: the C++ side of the Python module `kvcali` (see __init__.py, which walks the
// torch.nn.Module tree and turns tensors into pointers, shapes and strides). One translation unit.
//
// Every kvcali::error becomes the package's kvcali.Error (a ValueError) carrying every diagnostic;
// warnings go to a Python callable as they are found.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <kvcali/calibration/calibrator.hpp>
#include <kvcali/config_reader.hpp>
#include <kvcali/error.hpp>
#include <kvcali/generate.hpp>
#include <kvcali/layer_table.hpp>
#include <kvcali/quant_layers_json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;

namespace {

// kvcali.Error, registered by __init__.py (a handle kept alive for the process: no destructor runs
// after the interpreter is gone).
py::handle error_class;

py::dict diagnostic_dict(const kvcali::diagnostic& d) {
    py::dict out;
    out["severity"] = d.is_error() ? "error" : "warning";
    out["category"] = std::string(kvcali::to_string(d.category));
    out["message"] = d.message;
    out["file"] = d.where.file;
    out["line"] = d.where.line;
    out["column"] = d.where.column;
    out["layer"] = d.layer;
    out["json_path"] = d.json_path;
    out["text"] = d.to_string();
    return out;
}

[[noreturn]] void raise_error(const kvcali::error& e) {
    py::list diags;
    for (const auto& d : e.diagnostics()) diags.append(diagnostic_dict(d));
    if (!error_class) throw std::runtime_error(e.what());
    py::object exc = py::reinterpret_borrow<py::object>(error_class)(diags);
    PyErr_SetObject(error_class.ptr(), exc.ptr());
    throw py::error_already_set();
}

kvcali::warning_sink sink_of(const py::object& warn) {
    if (warn.is_none()) return {};
    return [warn](const kvcali::diagnostic& d) { warn(diagnostic_dict(d)); };
}

/// The quant_layers argument as JSON text (json.dumps of the Python value): `names_form` for a
/// list of names, else AMCT's object {"kv_cache_quant_layers": [...]}.
std::optional<kvcali::quant_layers> parse_layers(const std::optional<std::string>& json, bool names_form, bool strict,
                                                 const py::object& warn) {
    if (!json) return std::nullopt;
    kvcali::diagnostics diags(strict, sink_of(warn));
    auto layers = names_form ? kvcali::parse_layer_names_json(*json, "quant_layers", diags)
                             : kvcali::parse_quant_layers_json(*json, "quant_layers", diags);
    diags.throw_if_errors();
    return layers;
}

/// create_quant_cali_config over a layer table of (name, type) rows; eligible: type "Linear".
void create(const std::string& config_file, const std::vector<std::string>& names, const std::vector<std::string>& types,
            const std::optional<std::string>& layers_json, bool names_form, const std::optional<std::string>& config_definition,
            bool strict, const py::object& warn) {
    try {
        if (names.size() != types.size()) throw std::invalid_argument("names and types differ in length");
        const auto layers = parse_layers(layers_json, names_form, strict, warn);
        kvcali::layer_table table;
        table.reserve(names.size());
        kvcali::diagnostics dup;
        for (std::size_t i = 0; i < names.size(); ++i) {
            if (!table.add(names[i], types[i], types[i] == "Linear")) {
                dup.add({.severity = kvcali::severity::error,
                         .category = kvcali::errc::invalid_model,
                         .message = "the model has two layers named \"" + names[i] + "\"",
                         .where = {},
                         .layer = names[i],
                         .json_path = {}});
            }
        }
        dup.throw_if_errors();
        std::optional<std::filesystem::path> cfg;
        if (config_definition) cfg = *config_definition;
        kvcali::options opts;
        opts.strict = strict;
        opts.on_warning = sink_of(warn);
        kvcali::create_quant_cali_config(config_file, table, layers, cfg, opts);
    } catch (const kvcali::error& e) {
        raise_error(e);
    }
}

py::object param_to_python(const kvcali::param_desc& desc, const kvcali::param_value& v) {
    switch (v.type) {
        case kvcali::param_type::boolean: return py::bool_(v.boolean);
        case kvcali::param_type::uint32: return py::int_(v.uint);
        case kvcali::param_type::float32: return py::float_(static_cast<double>(v.real));
        case kvcali::param_type::enumeration:
            for (const auto& e : desc.enumerators) {
                if (e.number == v.enumerator) return py::str(std::string(e.name));
            }
            return py::int_(v.enumerator);
    }
    return py::none();
}

py::dict read_config(const std::string& path, bool strict, const py::object& warn) {
    try {
        kvcali::reader_options opts;
        opts.strict = strict;
        opts.on_warning = sink_of(warn);
        const kvcali::resolved_config doc = kvcali::read_quant_cali_config(path, opts);
        py::dict out;
        out["batch_num"] = doc.batch_num;
        out["activation_offset"] = doc.activation_offset;
        py::list layers;
        for (const auto& layer : doc.layers) {
            const kvcali::algorithm_desc& algo = doc.algorithm_of(layer);
            py::dict params;
            for (std::size_t i = 0; i < algo.params.size() && i < layer.values.size(); ++i) {
                if (!layer.values[i]) continue;
                params[py::str(std::string(algo.params[i].cfg_name))] = param_to_python(algo.params[i], *layer.values[i]);
            }
            py::dict l;
            l["name"] = layer.name;
            l["act_algo"] = std::string(algo.act_algo);
            l["params"] = params;
            layers.append(l);
        }
        out["layers"] = layers;
        return out;
    } catch (const kvcali::error& e) {
        raise_error(e);
    }
}

/// kvcali::calibrator over a config.json read back.
class calibrator_box {
public:
    explicit calibrator_box(const std::string& config_file) : cal_(make(config_file)) {}

    /// One batch at `address` (element (0, ..., 0)), of `type` ("float32", "float16", "bfloat16";
    /// anything else is invalid_data naming the layer), strides in elements (empty: C order).
    std::string observe(const std::string& layer, std::uintptr_t address, const std::string& type, const std::vector<std::int64_t>& shape,
                        const std::vector<std::int64_t>& strides) {
        try {
            kvcali::dtype t = kvcali::dtype::float32;
            if (type == "float32") {
                t = kvcali::dtype::float32;
            } else if (type == "float16") {
                t = kvcali::dtype::float16;
            } else if (type == "bfloat16") {
                t = kvcali::dtype::bfloat16;
            } else {
                (void)cal_.batches(layer);  // unknown_layer first, as observe does
                throw kvcali::error(kvcali::diagnostic{
                    .severity = kvcali::severity::error,
                    .category = kvcali::errc::invalid_data,
                    .message = "layer \"" + layer + "\": unsupported element type " + type + "; expected float32, float16 or bfloat16",
                    .where = {},
                    .layer = layer,
                    .json_path = {}});
            }
            const auto* data = reinterpret_cast<const void*>(address);  // NOLINT: an address from Python
            switch (cal_.observe(layer, data, t, shape, strides)) {
                case kvcali::batch_outcome::accepted: return "accepted";
                case kvcali::batch_outcome::finished: return "finished";
                case kvcali::batch_outcome::ignored: return "ignored";
            }
            return "accepted";
        } catch (const kvcali::error& e) {
            raise_error(e);
        }
    }

    bool complete() const { return cal_.complete(); }
    std::uint32_t batch_num() const { return cal_.batch_num(); }
    std::vector<std::string> pending_layers() const { return cal_.pending_layers(); }
    std::vector<std::string> finished_layers() const { return cal_.finished_layers(); }
    std::string record_text() const {
        try {
            return cal_.record_text();
        } catch (const kvcali::error& e) {
            raise_error(e);
        }
    }
    void write_record(const std::string& path) const {
        try {
            cal_.write_record(path);
        } catch (const kvcali::error& e) {
            raise_error(e);
        }
    }

private:
    static kvcali::calibrator make(const std::string& config_file) {
        try {
            return kvcali::calibrator(kvcali::read_quant_cali_config(config_file));
        } catch (const kvcali::error& e) {
            raise_error(e);
        }
    }

    kvcali::calibrator cal_;
};

}  // namespace

PYBIND11_MODULE(_kvcali, m) {
    m.doc() = "kvcali's C++ side; use the package kvcali";
    m.def("_register_error", [](const py::object& cls) {
        cls.inc_ref();  // kept for the process
        error_class = cls;
    });
    m.def("create", &create, py::arg("config_file"), py::arg("names"), py::arg("types"), py::arg("layers_json"), py::arg("names_form"),
          py::arg("config_definition"), py::arg("strict"), py::arg("warn"));
    m.def("read_quant_cali_config", &read_config, py::arg("path"), py::arg("strict") = false, py::arg("warn") = py::none());
    py::class_<calibrator_box>(m, "Calibrator")
        .def(py::init<const std::string&>(), py::arg("config_file"))
        .def("observe", &calibrator_box::observe, py::arg("layer"), py::arg("address"), py::arg("dtype"), py::arg("shape"),
             py::arg("strides"))
        .def("complete", &calibrator_box::complete)
        .def_property_readonly("batch_num", &calibrator_box::batch_num)
        .def("pending_layers", &calibrator_box::pending_layers)
        .def("finished_layers", &calibrator_box::finished_layers)
        .def("record_text", &calibrator_box::record_text)
        .def("write_record", &calibrator_box::write_record, py::arg("path"));
}
