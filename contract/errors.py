"""Errors users see: one line naming the field, the value and the fix (stdlib only).

One module for every package: the engine, the executors and the CLI alike.

`UserError` marks bad input or a run that cannot proceed: the CLI prints it as one line
and exits non-zero. Anything else is a bug and keeps its traceback. `user_message` is the
single place that decides which exceptions are the user's (the CLI's one error path).

The rule:
- `UserError` (`ConfigError` for bad input, exit 2; `RunError`, exit 1) is the user's.
  Every check of input raises one of them (`contract.errors`, importable from data/ and
  models/ too). A plain `ValueError`, `NotImplementedError` or any other exception is a bug.
- `FileNotFoundError` / `FileExistsError` raised by this project's code with a message
  (no errno) name a path the user gave (data.path, --profile, a sweep folder, --out):
  the project raises them only there.
- An OS error (errno set) about the user's files or machine (permissions, full disk, a
  missing or existing path) is one line with its fix, unless the file lies inside this
  project's own packages: a missing template or profile shipped with the code is a bug.
- A file that is not UTF-8 text is the user's.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Optional


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


def one_line(exc: BaseException) -> str:
    """`Type: message` on one line (at most 300 characters): what state.json, a job log
    and the executor's summary record of an exception."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


# OS errors that describe the user's files or machine, not a bug (errno -> the fix)
_OS_FIXES = {
    errno.EACCES: "check the folder's permissions",
    errno.EPERM: "check the folder's permissions",
    errno.EROFS: "the file system is read-only: write somewhere else",
    errno.ENOSPC: "the disk is full: free space and rerun",
    errno.EDQUOT: "the disk quota is exceeded: free space and rerun",
    errno.ENAMETOOLONG: "use a shorter name",
    errno.ENOENT: "check the path",
    errno.EEXIST: "remove it or pick another name",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "give a file, not a folder",
}
# raised by the boundary with a message naming a path the user gave (see the rule above)
_USER_PATHS = (FileNotFoundError, FileExistsError)
# this project's own packages: an OS error about a file in them is a bug, not the user's
_OWN = tuple(Path(__file__).resolve().parent.parent / name
             for name in ("contract", "scaling", "models", "data", "analysis", "slurm"))


def _is_own_file(filename) -> bool:
    try:
        path = Path(filename).resolve()
    except (TypeError, ValueError, OSError):
        return False
    return any(path == own or own in path.parents for own in _OWN)


def user_message(exc: BaseException) -> Optional[tuple[str, int]]:
    """(one-line message, exit code) when ``exc`` is the user's to fix, else None (a bug)."""
    if isinstance(exc, UnicodeDecodeError):
        return (f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}): "
                "save it as UTF-8", 2)
    if isinstance(exc, OSError) and exc.errno in _OS_FIXES:
        if exc.filename and _is_own_file(exc.filename):
            return None
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}: {_OS_FIXES[exc.errno]}", 1
    if isinstance(exc, UserError) or (isinstance(exc, _USER_PATHS) and exc.errno is None):
        return " ".join(str(exc).split()) or type(exc).__name__, getattr(exc, "exit_code", 1)
    return None
