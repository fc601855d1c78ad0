"""The `scaling` logger: what a run says on the terminal and in its job log (torch-free).

Modules log with ``logging.getLogger(__name__)``; `setup` (called by the CLI and by each
phase's entry, idempotent) gives the `scaling` logger its one handler. Info goes to stdout
as a plain line, warnings and errors to stderr as ``warning: ...`` / ``error: ...``, as
the commands always printed them. Only rank 0 speaks, so a 16-rank job logs one line per
event, except for records marked ``extra=ALL_RANKS`` (where each rank rendezvoused,
resumed, stopped); with several ranks every line starts with ``[rank R]``.
SCALING_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR; default INFO) sets what is shown.
"""

from __future__ import annotations

import logging
import os
import sys

from contract.errors import ConfigError

ROOT = "scaling"
ALL_RANKS = {"all_ranks": True}
"""``log.info(..., extra=ALL_RANKS)``: every rank says it, not only rank 0."""
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_rank: int | None = None
_world: int | None = None


def set_rank(rank: int, world_size: int) -> None:
    """This process's rank, once the launcher's environment is read (scaling/dist.py)."""
    global _rank, _world
    _rank, _world = int(rank), int(world_size)


def rank_and_world() -> tuple[int, int]:
    """The rank set by `set_rank`, else the launcher's variables (torchrun, then srun)."""
    if _rank is not None and _world is not None:
        return _rank, _world
    from contract.jobenv import JobEnvironment

    try:
        env = JobEnvironment.from_env()
    except ValueError:  # a garbled launcher variable: dist.setup reports it; log as rank 0
        return 0, 1
    return env.rank, env.world_size


class _RankZero(logging.Filter):
    """Drop records on ranks other than 0 unless the record says ``all_ranks``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return rank_and_world()[0] == 0 or bool(getattr(record, "all_ranks", False))


class _Line(logging.Formatter):
    """``[rank R] warning: message``: the rank only with several ranks, the level only
    for warnings and errors."""

    def format(self, record: logging.LogRecord) -> str:
        line = record.getMessage()
        if record.levelno >= logging.ERROR:
            line = f"error: {line}"
        elif record.levelno >= logging.WARNING:
            line = f"warning: {line}"
        rank, world = rank_and_world()
        return f"[rank {rank}] {line}" if world > 1 else line


class _Std(logging.Handler):
    """Info to stdout, warnings and errors to stderr: the streams looked up at each record,
    so a replaced sys.stdout (a notebook, a test's capture) receives it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def level() -> int:
    """SCALING_LOG_LEVEL as a logging level (a one-line error when it is not one)."""
    name = os.environ.get("SCALING_LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if name not in LEVELS:
        raise ConfigError(f"SCALING_LOG_LEVEL={name!r} is invalid: use one of "
                          f"{', '.join(LEVELS)}")
    return getattr(logging, name)


def setup() -> logging.Logger:
    """Give the `scaling` logger its handler once per process; the level is re-read from
    SCALING_LOG_LEVEL on each call."""
    logger = logging.getLogger(ROOT)
    logger.setLevel(level())
    if not any(isinstance(h, _Std) for h in logger.handlers):
        handler = _Std()
        handler.setFormatter(_Line())
        handler.addFilter(_RankZero())
        logger.addHandler(handler)
        logger.propagate = False  # one line per record, even where the root logger prints
    return logger
