"""kvcali: AMCT-compatible KV-cache quantization configs and calibration, from Python.

A drop-in for AMCT's KV-cache calls on torch.nn.Module models::

    from kvcali import create_quant_cali_config   # was: from amct_pytorch import create_quant_cali_config
    create_quant_cali_config("config.json", model, config_defination="quant.cfg")

The layers of a model are ``model.named_modules()`` minus the root, each with ``type(m).__name__``
as its type; a layer can be KV-cache quantized when that type is exactly ``Linear``. Every problem is
one ``kvcali.Error`` (a ValueError) carrying all diagnostics; warnings go to ``warnings.warn`` with
the category ``kvcali.Warning`` (errors with ``strict=True``).
"""
import json as _json
import os as _os
import warnings as _warnings

from . import _kvcali

__all__ = ["Error", "Warning", "Diagnostic", "create_quant_cali_config", "read_quant_cali_config", "Calibrator", "calibrate",
           "layers_of"]


class Diagnostic:
    """One problem found: severity ("error"/"warning"), category (e.g. "unknown_layer"), message,
    file, line, column (0 when unknown), layer, json_path. Also readable as d["category"]."""

    __slots__ = ("severity", "category", "message", "file", "line", "column", "layer", "json_path", "text")

    def __init__(self, severity, category, message, file="", line=0, column=0, layer="", json_path="", text=None):
        self.severity, self.category, self.message = severity, category, message
        self.file, self.line, self.column, self.layer, self.json_path = file, line, column, layer, json_path
        self.text = text if text is not None else f"{severity}: {message} [{category}]"

    def __getitem__(self, key):
        return getattr(self, key)

    def __str__(self):
        return self.text

    def __repr__(self):
        return f"Diagnostic({self.severity!r}, {self.category!r}, {self.message!r}, layer={self.layer!r})"


class Error(ValueError):
    """Every error kvcali raises; ``.diagnostics`` lists every problem found (errors and warnings)."""

    def __init__(self, diagnostics):
        self.diagnostics = [d if isinstance(d, Diagnostic) else Diagnostic(**d) for d in diagnostics]
        super().__init__("\n".join(d.text for d in self.diagnostics))

    @property
    def categories(self):
        """The categories of the error diagnostics."""
        return [d.category for d in self.diagnostics if d.severity == "error"]


class Warning(UserWarning):  # noqa: A001 (kvcali.Warning, as kvcali.Error)
    """The category of the warnings kvcali reports through warnings.warn."""


_kvcali._register_error(Error)


def _warn(d):
    _warnings.warn(d["text"], Warning, stacklevel=3)


def _error(category, message, layer=""):
    return Error([Diagnostic("error", category, message, layer=layer, text=f"error: {message} [{category}]")])


def layers_of(model):
    """The layer table of a torch.nn.Module: [(name, type name)] from named_modules(), root left out."""
    it = iter(model.named_modules())
    next(it, None)  # the root (name "")
    return [(name, type(m).__name__) for name, m in it]


def create_quant_cali_config(config_file, model, quant_layers=None, config_defination=None, *, strict=False):
    """Writes config_file as AMCT's create_quant_cali_config does (byte for byte as the C++ library).

    quant_layers: AMCT's dict {'kv_cache_quant_layers': [names]} or a plain list of names; used only
    when no config_defination (a quant.cfg path) is given. Raises kvcali.Error; then nothing is written.
    """
    names, types = [], []
    it = iter(model.named_modules())
    next(it, None)
    for name, m in it:
        names.append(name)
        types.append(type(m).__name__)
    layers_json, names_form = None, False
    if quant_layers is not None:
        names_form = isinstance(quant_layers, (list, tuple))
        try:
            layers_json = _json.dumps(list(quant_layers) if names_form else quant_layers)
        except (TypeError, ValueError) as e:
            raise _error("invalid_argument", f"the quant_layers argument is not JSON data: {e}") from None
    cfg = None if config_defination is None else _os.fspath(config_defination)
    _kvcali.create(_os.fspath(config_file), names, types, layers_json, names_form, cfg, bool(strict), _warn)


def read_quant_cali_config(path, *, strict=False):
    """config.json read back and validated: {batch_num, activation_offset, layers: [{name, act_algo, params}]}."""
    return _kvcali.read_quant_cali_config(_os.fspath(path), bool(strict), _warn)


_TORCH_DTYPES = None


def _torch_dtypes(torch):
    global _TORCH_DTYPES
    if _TORCH_DTYPES is None:
        _TORCH_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
    return _TORCH_DTYPES


class Calibrator:
    """Calibrates the layers of a config.json (kvcali::calibrator): observe each layer's batches,
    then write_record. observe takes torch tensors (CPU or CUDA) and numpy arrays of float32,
    float16 (and bfloat16 tensors); returns "accepted", "finished" or "ignored"."""

    def __init__(self, config_file):
        self._cal = _kvcali.Calibrator(_os.fspath(config_file))

    @property
    def batch_num(self):
        return self._cal.batch_num

    def observe(self, layer, tensor):
        if type(tensor).__module__.startswith("torch"):
            import torch
            if isinstance(tensor, torch.Tensor):
                t = tensor.detach()
                if t.device.type != "cpu":
                    t = t.cpu()
                kind = _torch_dtypes(torch).get(t.dtype)
                if kind is None:
                    return self._cal.observe(layer, 0, str(t.dtype).replace("torch.", ""), list(t.shape), [])
                return self._cal.observe(layer, t.data_ptr(), kind, list(t.shape), list(t.stride()))
        return self._observe_array(layer, tensor)

    def _observe_array(self, layer, a):
        import numpy as np
        if not isinstance(a, np.ndarray):
            a = np.asarray(a)
        if a.dtype.kind != "f" or a.dtype.itemsize not in (2, 4):
            return self._cal.observe(layer, 0, str(a.dtype), list(a.shape), [])
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
        size = a.dtype.itemsize
        if any(s % size for s in a.strides):
            a = np.ascontiguousarray(a)
        kind = "float32" if size == 4 else "float16"
        address = a.__array_interface__["data"][0]
        return self._cal.observe(layer, address, kind, list(a.shape), [s // size for s in a.strides])

    def complete(self):
        """Whether every layer has its batch_num batches."""
        return self._cal.complete()

    def pending_layers(self):
        return self._cal.pending_layers()

    def finished_layers(self):
        return self._cal.finished_layers()

    def record_text(self):
        return self._cal.record_text()

    def write_record(self, path):
        self._cal.write_record(_os.fspath(path))
        return path


def calibrate(model, config_file, record_file, batches):
    """Runs model(*batch) under torch.no_grad() for each batch with a forward hook on every layer of
    config_file observing the layer's output, then writes record_file. A batch that is not a tuple
    or list is passed as the single argument. Returns record_file; with record_file None nothing is
    written and None is returned (the layers must still all finish: incomplete_calibration).
    Raises kvcali.Error (e.g. incomplete_calibration when a layer got fewer than batch_num batches)."""
    import torch
    cal = Calibrator(config_file)
    config = read_quant_cali_config(config_file)
    modules = dict(model.named_modules())
    handles = []
    try:
        for layer in config["layers"]:
            name = layer["name"]
            m = modules.get(name)
            if m is None:
                raise _error("unknown_layer", f"layer \"{name}\" of {_os.fspath(config_file)} is not a module of the model", name)

            def hook(_module, _inputs, output, _name=name):
                out = output[0] if isinstance(output, (tuple, list)) else output
                cal.observe(_name, out)

            handles.append(m.register_forward_hook(hook))
        with torch.no_grad():
            for batch in batches:
                if isinstance(batch, (tuple, list)):
                    model(*batch)
                else:
                    model(batch)
    finally:
        for h in handles:
            h.remove()
    if record_file is None:
        cal.record_text()  # incomplete_calibration when a layer is unfinished
        return None
    cal.write_record(record_file)
    return record_file
