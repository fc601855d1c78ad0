"""The user-error types (stdlib only): bad input or a run that cannot proceed, one line each.

`UserError` marks bad input or a run that cannot proceed: the CLI prints it as one line
and exits non-zero. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of every error caused by input or environment rather than by a bug."""

    exit_code = 1


class ConfigError(UserError, ValueError):
    """Bad input caught at the boundary (config load, sweep file, CLI)."""

    exit_code = 2


class RunError(UserError, RuntimeError):
    """A run cannot proceed (e.g. transfer on an unfinished trunk); the message is one line."""


def check(ok: bool, field: str, value, fix: str) -> None:
    """Raise ``ConfigError("field=value is invalid: fix")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{field}={value!r} is invalid: {fix}")
