"""Real torch.nn.Module trees from layer lists (model.json), for the Python module's tests.

The layer table is tests/models/make_models.py's layer_table() (dotted prefixes are `Module`
containers placed before their first descendant; a later entry naming one sets its type).
`Linear` is torch.nn.Linear, `MyLinear` a subclass of it named MyLinear, `Module` nn.Module, any
other type an nn.Module subclass of that name. Children are put in `_modules` directly, so that a
layer may be named like an nn.Module attribute (`forward`, `training`, ...).
"""
import os
import sys

from torch import nn

ROOT = os.environ.get("KVCALI_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
from make_models import layer_table  # noqa: E402  (the one rule, reused)

_classes = {}


def make_module(typ, make_linear=None):
    if typ == "Linear":
        return make_linear() if make_linear else nn.Linear(1, 1, bias=False)
    if typ == "Module":
        return nn.Module()
    if typ not in _classes:
        base = nn.Linear if typ == "MyLinear" else nn.Module
        _classes[typ] = type(typ, (base,), {"__module__": "kvcali_test_models"})
    return _classes[typ](1, 1, bias=False) if typ == "MyLinear" else _classes[typ]()


def build(table, root=None, special=None):
    """An nn.Module whose named_modules() minus the root are the table's rows; `special` maps a
    layer name to the module to use for it."""
    root = root if root is not None else nn.Module()
    modules = {"": root}
    for name, typ in table:
        parent, _, leaf = name.rpartition(".")
        m = special[name] if special and name in special else make_module(typ)
        modules[parent]._modules[leaf] = m
        modules[name] = m
    return root
