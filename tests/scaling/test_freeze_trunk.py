"""`transfer.finetune.freeze_trunk`: fine-tuning that trains the new head only (finding 6's
breaker, tests/findings/test_breakers.py). The trunk's weights AND its batch-norm statistics
must come out as pretrained, while the head trains; the same run without the flag changes
the trunk (so the comparison can fail). A frozen trunk is refused outside ddp in one line
whose advice works, and the flag at its default leaves every earlier config hash alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import scaling.finetune as F
import scaling.transfer as T
from contract.config import RunConfig, config_hash, load_run_config, read_run_config, to_dict
from contract.errors import ConfigError
from models import create_model
from scaling.checkpoint import load_tensors
from scaling.final import load_trunk
from tests.scaling.test_transfer import FT, clone


def test_a_frozen_trunk_keeps_batch_norm_in_eval_mode_and_trains_the_head_only():
    model = create_model("resnext", num_classes=3, depth=11, stages=3, cardinality=2,
                         width_per_group=2, base_width=8, stem="small")
    model.freeze_trunk()
    model.train()
    norms = [m for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    assert model.fc.training and model.training
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}


def _fine_tuned_weights(trained, tmp_path, monkeypatch, **finetune) -> tuple[Path, dict]:
    """The run folder and the network's state at the end of fine-tuning (read where it is
    evaluated)."""
    seen: dict = {}
    evaluate = F.evaluate

    def keep(strategy, *args, **kwargs):
        module = getattr(strategy.model, "module", strategy.model)
        seen.update({k: v.detach().clone() for k, v in module.state_dict().items()})
        return evaluate(strategy, *args, **kwargs)

    monkeypatch.setattr(F, "evaluate", keep)
    run = clone(trained, tmp_path, protocols=["finetune"],
                finetune={**FT, "images_seen": 320, **finetune})
    T.transfer(load_run_config(run / "config.yaml"), run)
    assert (run / "transfer" / "novel__finetune.json").is_file()
    return run, seen


@pytest.mark.parametrize("frozen", [True, False])
def test_fine_tuning_moves_the_trunk_only_when_it_is_not_frozen(trained, tmp_path,
                                                                 monkeypatch, frozen):
    pretrained = load_tensors(trained / "final" / "trunk.pt", map_location="cpu")
    run, after = _fine_tuned_weights(trained, tmp_path, monkeypatch, freeze_trunk=frozen)
    moved = [k for k, v in pretrained.items() if not torch.equal(v, after[k])]
    stats = [k for k in moved if k.endswith(("running_mean", "running_var"))]
    if frozen:
        assert moved == [], moved[:5]
    else:  # the control: the same fine-tune without the flag moves weights and statistics
        assert len(moved) > len(pretrained) // 2 and stats, moved[:5]
    # the head fine-tuning started from (finetune() seeds it with the run's seed + 1)
    config = load_run_config(run / "config.yaml")
    start = load_trunk(run, seed=config.seed + 1,
                       num_classes=after["fc.weight"].shape[0]).state_dict()["fc.weight"]
    assert not torch.equal(start, after["fc.weight"])  # the head trained either way


def _config(**shard) -> dict:
    config = to_dict(RunConfig())
    config["transfer"].update(protocols=["linear", "finetune"],
                              finetune={"freeze_trunk": True})
    config["shard"].update(shard)
    return config


def test_a_frozen_trunk_outside_ddp_is_refused_with_advice_that_works():
    with pytest.raises(ConfigError) as caught:
        read_run_config(_config(strategy="fsdp2"))
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert "transfer.finetune.freeze_trunk" in message and "fsdp2" in message
    assert "set shard.strategy: ddp" in message
    assert read_run_config(_config(strategy="ddp")).transfer.finetune.freeze_trunk is True


def test_the_flag_counts_in_the_hash_only_when_set():
    plain = read_run_config(to_dict(RunConfig()))
    frozen = read_run_config(_config(strategy="ddp"))
    unfrozen = _config(strategy="ddp")
    unfrozen["transfer"]["finetune"]["freeze_trunk"] = False
    assert config_hash(frozen) != config_hash(read_run_config(unfrozen))
    # a config written before the field existed (no key) hashes as the default does
    old = to_dict(RunConfig())
    del old["transfer"]["finetune"]["freeze_trunk"]
    assert config_hash(read_run_config(old)) == config_hash(plain)


def test_a_registered_run_keeps_its_recorded_hash(repo_root):
    """records/: w4-n250-i96k-tfine-r0 of the registered paper-mini study was hashed
    50e85a87745c before the field existed; rebuilt from the shipped sweep, it still is."""
    from scaling.sweep import expand, load_sweep, resolve_base

    sweep = repo_root / "configs" / "paper-mini.yaml"
    spec = load_sweep(sweep)
    runs = {run_id: config for run_id, config, _ in expand(spec, resolve_base(spec["base"],
                                                                              sweep))[0]}
    assert config_hash(runs["w4-n250-i96k-tfine-r0"]) == "50e85a87745c"
