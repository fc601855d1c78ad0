"""The `scaling` CLI as a user runs it (its console script, in any working folder), tiny
sweep files over the engine's TINY config, and a snapshot of a folder's files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tests.helpers.engine import TINY


class Result:
    """What `scaling ...` printed and returned when run in this process (torch is then
    imported once per session, not once per command)."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def main(capsys, *args) -> Result:
    from scaling.cli import main as scaling_main

    capsys.readouterr()
    rc = scaling_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return Result(rc, out, err)


def one_error_line(proc) -> str:
    """The single `error: ...` line a user error prints (and no traceback)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def tiny_config(**overrides) -> dict:
    config = json.loads(json.dumps(TINY))
    for dotted, value in overrides.items():
        node = config
        *path, last = dotted.split(".")
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return config


def snapshot(root: Path, skip=()) -> dict:
    """{relative path: sha256 or 'dir'} of everything under root (except paths in skip)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if any(rel == s or rel.startswith(s + os.sep) for s in skip):
            continue
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out
