"""Fixtures the engine's transfer tests share."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers.engine import make_run
from tests.scaling.test_transfer import SMALL_WORLD, _train


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny pretrained trunk (8 novel classes), reused through `clone`."""
    torch.set_num_threads(1)
    run = make_run(tmp_path_factory.mktemp("trunk"), "trunk", data__world=SMALL_WORLD,
                   optim__images_seen=160)
    _train(run)
    return run
