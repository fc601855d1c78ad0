"""Errors users see: one line naming the field, the value and the fix (stdlib only)."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad input caught at the boundary (config load, sweep file, CLI)."""


class RunError(RuntimeError):
    """A run cannot proceed (e.g. transfer on an unfinished trunk); the message is one line."""


def check(ok: bool, field: str, value, fix: str) -> None:
    """Raise ``ConfigError("field=value is invalid: fix")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{field}={value!r} is invalid: {fix}")
