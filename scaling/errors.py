"""Errors users see: one line naming the field, the value and the fix (stdlib only).

`UserError` marks bad input or a run that cannot proceed: the CLI prints it as one line
and exits non-zero. Anything else is a bug and keeps its traceback. `user_message` is the
single place that decides which exceptions are the user's (the CLI's one error path).
"""

from __future__ import annotations

import errno
from typing import Optional

from contract.errors import ConfigError, RunError, UserError, check

__all__ = ["ConfigError", "RunError", "UserError", "check", "user_message"]


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
# plain exceptions that the boundary raises for bad input (data sources, file checks)
_PLAIN = (FileNotFoundError, FileExistsError, NotImplementedError, ValueError)


def user_message(exc: BaseException) -> Optional[tuple[str, int]]:
    """(one-line message, exit code) when ``exc`` is the user's to fix, else None (a bug)."""
    if isinstance(exc, UnicodeDecodeError):
        return (f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}): "
                "save it as UTF-8", 2)
    if isinstance(exc, OSError) and exc.errno in _OS_FIXES:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}: {_OS_FIXES[exc.errno]}", 1
    if isinstance(exc, (UserError,) + _PLAIN):
        return " ".join(str(exc).split()) or type(exc).__name__, getattr(exc, "exit_code", 1)
    return None
