"""The one atomic-write helper: a reader never sees half a file (docs/design.md, "Every file
is written atomically"). A temporary file in the same folder is written, flushed to disk
and renamed over the target with `os.replace`; on any failure the temporary file goes and
the old file, if any, stays as it was."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Union


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: Union[str, Path], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; once the block has written it, it replaces
    `path` (for writers that want a file name: parquet, torch.save, papermill). `suffix`
    ends the temporary name, for writers that judge a file by its extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        # mkstemp's 0600 -> what open() would make, but never writable by group or others,
        # whatever the umask (a run's files must not be editable by another user)
        os.chmod(tmp, 0o666 & ~(_umask() | 0o022))
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno is None or exc.filename:
            raise
        # a write that failed without naming its file (a full disk: `write()` says only
        # ENOSPC) is about `path`: name it, so the one-line error says where
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Union[str, Path], text: str) -> Path:
    """Write `text` to `path` atomically; returns `path`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w") as handle:
            handle.write(text)
    return path
