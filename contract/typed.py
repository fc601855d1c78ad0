"""The typed reader of YAML configs (stdlib and PyYAML): dataclasses from mappings, strict.

Every typed config of the project is read by these rules, the run config
(contract/config.py) and analysis' findings config alike: an integer field takes integers
only ("5", 5.0 and 1e20 are refused), floats accept integers, an unknown key is an error
naming the closest valid field, and each dataclass's `__post_init__` checks its values.
YAML is read and written with libyaml where it is installed (about 10x faster per run).
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from contract.errors import ConfigError


def field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def closest(name: str, options) -> str:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.0)
    return match[0] if match else ""


# long by design: the typed reader's one dispatch over annotation kinds
def _coerce(value, hint, path: str):  # noqa: C901
    """Light type checking of YAML scalars (ints stay ints, floats accept ints)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, prefix=path)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{path}={value!r} is invalid")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}={value!r} is invalid: use true or false")
    if hint is int:
        # strict: 1.0e+20 or "5" is refused the same way by `sweep` and `train` (a float
        # silently truncated, or a quoted number, is usually a mistake in the YAML)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}={value!r} is invalid: use an integer written without "
                              "quotes, a decimal point or an exponent (e.g. 100000)")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}={value!r} is invalid: use a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}={value!r} is invalid: use a string")
        return value
    if hint is list or origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}={value!r} is invalid: use a list")
        return list(value)
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}={value!r} is invalid: use a mapping")
        return dict(value)
    return value


def from_dict(cls, data: Optional[dict], prefix: str = "", root: str = "config"):
    """Build dataclass ``cls`` from a (possibly partial) mapping; unknown keys are errors.
    Any typed config (the run config, analysis' findings config) is read by these rules."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or root}={data!r} is invalid: use a mapping")
    types = field_types(cls)
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in types:
            raise ConfigError(f"unknown field {path!r}: did you mean "
                              f"{(prefix + '.' if prefix else '') + closest(str(key), types)!r}?")
        kwargs[key] = _coerce(value, types[key], path)
    return cls(**kwargs)  # __post_init__ checks raise ConfigError (the world's included)


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def set_path(mapping: dict, dotted: str, value) -> None:
    """Set `a.b.c` in a nested dict, creating levels as needed."""
    keys = dotted.split(".")
    node = mapping
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {key!r} is not a section")
    node[keys[-1]] = value


def get_path(mapping: dict, dotted: str):
    node = mapping
    for key in dotted.split("."):
        node = node[key]
    return node


_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: ~10x faster per run
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Union[str, Path]) -> dict:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a folder: give a run's config.yaml "
                          "(e.g. a sweep's runs/<run_id>/config.yaml)")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist: check the path")
    try:
        data = yaml.load(path.read_text(), Loader=_Loader) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8"
                          ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}{where} is not valid YAML: fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds {type(data).__name__}: a config is a mapping")
    return data


def dump_yaml(data: dict) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=None)
