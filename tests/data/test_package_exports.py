"""The `data` package's lazy exports stay the objects they name."""

from __future__ import annotations

import importlib
import pkgutil

import data


def test_no_export_shares_a_submodule_name():
    # importing a submodule binds its name on the package, replacing a lazy export of the
    # same name with the module (`from data import materialize` once gave the module)
    submodules = {m.name for m in pkgutil.iter_modules(data.__path__)}
    assert not submodules & set(data.__all__)


def test_every_export_is_what_its_module_defines():
    for name in data.__all__:
        module = importlib.import_module(data._EXPORTS[name])
        assert getattr(data, name) is getattr(module, name)
