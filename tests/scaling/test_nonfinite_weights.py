"""Weights that turn non-finite in a step whose loss was still finite (the loss is taken
before the update) are refused before they are checkpointed or exported: the run fails
naming the step, and no checkpoint or trunk holds them."""

from __future__ import annotations

import pytest
import torch

from contract.config import load_run_config
from contract.errors import RunError
from scaling import dist
from scaling.engine import Trainer
from tests.helpers.engine import make_run


class Overflowing(Trainer):
    """A trainer whose first optimizer step leaves one weight infinite (what an update
    that overflows does), after a finite loss."""

    def optimizer_step(self) -> None:
        super().optimizer_step()
        if self.step == 1:
            with torch.no_grad():
                weight = next(self.strategy.model.parameters())
                weight[(0,) * weight.dim()] = float("inf")


@pytest.mark.parametrize("steps, what", [(3, "checkpoint"), (1, "export")])
def test_non_finite_weights_are_never_checkpointed_or_exported(tmp_path, steps, what):
    # 3 steps: the checkpoint after step 1 is due; 1 step: the final export follows it
    run = make_run(tmp_path, optim__images_seen=16 * steps, checkpoint__every_steps=1)
    trainer = Overflowing(load_run_config(run / "config.yaml"), dist.DistEnv(), run)
    with pytest.raises(RunError, match="the weights are not finite at step 1: training "
                                       "diverged, no checkpoint or trunk was written"):
        trainer.fit()
    assert not (run / "final").exists(), f"non-finite weights reached the {what}"
    assert not list(run.glob("checkpoints/*/COMPLETE")), f"non-finite weights reached a {what}"
