"""Fixtures for the analysis tests: fabricated sweep folders (see analysis.fakes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.fakes import make_sweep


@pytest.fixture
def sweep(tmp_path) -> Path:
    """The default fabricated sweep: 2 widths x 2 vocabs x 3 sizes x 3 seeds, 2 targets,
    plus a failed, a running (corrupt transfer file) and a never-started run."""
    return make_sweep(tmp_path)


@pytest.fixture
def make(tmp_path):
    """Factory: ``make(name=..., widths=..., ...)`` -> a fabricated sweep folder."""
    return lambda **kw: make_sweep(tmp_path, **kw)
