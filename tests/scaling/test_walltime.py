"""Wall-time estimates from the host: how a run's seconds are composed from the measured
figures, which figures are cached (quiet host) or not (busy host), the schedule the local
executor follows, its running ETA, and what `scaling sweep` prints."""

from __future__ import annotations

import json

import pytest
import yaml

from contract.config import RunConfig, from_dict
from scaling import walltime
from slurm import eta
from tests.helpers.engine import TINY

FIGURES = {"startup": 4.0, "render 16": {"build_s": 0.5, "render_ips": 1000.0}}
RATE = {"train_ips": 100.0, "eval_ips": 400.0, "basis": "timed"}
PROBE = 2.0


@pytest.fixture
def quiet_cache(tmp_path, monkeypatch):
    """A cache whose measurements are fixed numbers, on a quiet host."""
    monkeypatch.setenv("SCALING_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SCALING_NATIVE_BF16", "0")
    monkeypatch.setattr(walltime, "other_load", lambda: 0.0)
    monkeypatch.setattr(walltime, "measure_startup", lambda: FIGURES["startup"])
    monkeypatch.setattr(walltime, "measure_render", lambda size: dict(FIGURES["render 16"]))
    monkeypatch.setattr(walltime, "measure_step", lambda shape, flops: dict(RATE))
    monkeypatch.setattr(walltime, "measure_probe", lambda *a: PROBE)
    return walltime.Cache()


def _config(**changes) -> RunConfig:
    raw = json.loads(json.dumps(TINY))
    for dotted, value in changes.items():
        node = raw
        *path, last = dotted.split(".")
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return from_dict(RunConfig, raw)


def test_a_run_is_composed_from_the_measured_figures(quiet_cache):
    config = _config(**{"transfer.targets": ["fine"], "transfer.protocols": ["linear"],
                        "transfer.floor": True})
    tc = config.transfer
    est = walltime.Estimator(quiet_cache).run(config, 40, 10**6, 256)
    render = FIGURES["render 16"]
    train = (FIGURES["startup"] + render["build_s"] + config.data.images / 1000.0
             + config.optim.images_seen / RATE["train_ips"])
    n = tc.train_images + tc.test_images
    # the first run with this floor key extracts and probes the random trunk too
    transfer = (FIGURES["startup"] + render["build_s"] + n / 1000.0 + 2 * n / RATE["eval_ips"]
                + 2 * PROBE)
    assert est.train_s == pytest.approx(train)
    assert est.transfer_s == pytest.approx(transfer)
    assert est.basis.startswith("measured on this host (") and est.basis.endswith(", fp32")


def test_the_floor_is_counted_once_per_key_as_transfer_caches_it(quiet_cache):
    clock = walltime.Estimator(quiet_cache)
    first = clock.run(_config(), 40, 10**6, 256)
    other_size = clock.run(_config(**{"data.images": 128}), 40, 10**6, 256)
    other_seed = clock.run(_config(seed=1), 40, 10**6, 256)
    n = TINY["transfer"]["train_images"] + TINY["transfer"]["test_images"]
    assert first.transfer_s - other_size.transfer_s == pytest.approx(
        n / RATE["eval_ips"] + PROBE)
    assert other_seed.transfer_s == pytest.approx(first.transfer_s)  # its own floor


def test_fine_tuning_adds_its_own_training(quiet_cache):
    linear = walltime.Estimator(quiet_cache).run(_config(), 40, 10**6, 256)
    both = walltime.Estimator(quiet_cache).run(
        _config(**{"transfer.protocols": ["linear", "finetune"]}), 40, 10**6, 256)
    ft = RunConfig().transfer.finetune
    added = ft.images_seen / RATE["train_ips"] + TINY["transfer"]["test_images"] / RATE[
        "eval_ips"]
    assert both.transfer_s - linear.transfer_s == pytest.approx(added)


def test_cuda_runs_use_the_gpu_table(quiet_cache):
    est = walltime.Estimator(quiet_cache).run(_config(**{"resources.device": "cuda",
                                                         "resources.gpu": "A100"}),
                                              40, 10**6, 256)
    assert est.basis.startswith("GPU table (A100, assumed MFU 0.35")
    assert est.train_s > 0 and est.transfer_s == 0


def test_figures_from_a_quiet_host_are_cached_and_a_busy_host_is_not(tmp_path, monkeypatch,
                                                                     quiet_cache):
    calls = []
    quiet_cache.get("x", lambda: calls.append(1) or 1.0)
    quiet_cache.get("x", lambda: calls.append(1) or 1.0)
    quiet_cache.save()
    assert calls == [1] and "x" in json.loads(walltime.cache_path().read_text())[
        walltime.host_key()]
    monkeypatch.setattr(walltime, "other_load", lambda: 2.0)
    busy = walltime.Cache()
    assert busy.get("x", lambda: 9.0) == 1.0          # the quiet figure is kept
    assert busy.get("y", lambda: 5.0) == 5.0 and busy.busy == 2.0
    busy.save()
    assert "y" not in json.loads(walltime.cache_path().read_text())[walltime.host_key()]
    clock = walltime.Estimator(busy)
    assert "measured while the host was busy (2.0 other load per core)" in clock.busy_note()


def test_a_step_too_large_to_time_is_estimated_from_flops(monkeypatch):
    import scaling.telemetry

    monkeypatch.setattr(scaling.telemetry, "measured_cpu_peak", lambda threads: 1e11)
    shape = walltime.Shape("resnext", (), 224, 1000, "fp32", 256, 1, True)
    per_image = int(walltime.STEP_FLOPS_BUDGET)  # 3x this per image is over the budget
    rate = walltime.measure_step(shape, per_image)
    assert rate["basis"] == "flops"
    assert rate["train_ips"] == pytest.approx(1e11 * walltime.CPU_FLOP_EFFICIENCY
                                              / (3 * per_image))


def test_a_real_measurement_of_a_tiny_shape():
    shape = walltime.Shape("resnext", (("base_width", 16), ("cardinality", 4), ("depth", 11),
                                       ("stages", 3), ("stem", "small"),
                                       ("width_per_group", 4)), 16, 40, "fp32", 16, 1, True)
    rate = walltime.measure_step(shape, 10**6)
    assert rate["basis"] == "timed" and rate["train_ips"] > 0 and rate["eval_ips"] > 0


# ---------------------------------------------------------------- schedule, summary, ETA

def test_schedule_is_costliest_first_on_the_slots():
    assert eta.schedule([3, 5, 3, 4], 2) == 8        # 5+3 | 4+3
    assert eta.schedule([3, 5, 3, 4], 1) == 15
    assert eta.schedule([1, 1], 4) == 1
    assert eta.schedule([2], 2, busy=[5, 1]) == 5    # slots busy for 5 and 1 s first
    assert eta.schedule([], 2) == 0


def _rows(seconds, basis="measured on this host (cpu), fp32"):
    return [{"run_id": f"r{i}", "est_train_s": str(s), "est_transfer_s": "10",
             "est_basis": basis} for i, s in enumerate(seconds)]


def test_the_sweep_summary_is_parallel_aware():
    rows = _rows([110, 50, 50])   # 120, 60, 60 s with transfer
    assert eta.sweep_summary(rows, 2) == (
        "estimated wall time on this host: 2.0 min at --parallel 2 (3 runs: 3.5 min "
        "training, 30 s transfer; measured on this host (cpu), fp32)")
    assert "4.0 min at --parallel 1" in eta.sweep_summary(rows, 1)
    gpu = eta.sweep_summary(_rows([7200], "GPU table (H100, assumed MFU 0.35)"), 2)
    assert gpu.startswith("estimated run time: 2.0 h in all")
    assert eta.sweep_summary([{"run_id": "old"}], 2) is None  # an older manifest


def test_the_eta_rescales_by_the_runs_that_finished():
    clock = eta.Eta({"a": 100.0, "b": 100.0, "c": 100.0}, parallel=1)
    assert clock.left(0.0) == 300
    clock.start("a", 0.0)
    clock.finish("a", 200.0)             # took twice its estimate
    assert clock.scale() == 2.0
    assert clock.left(200.0) == 400      # b and c, each twice as long
    clock.start("b", 200.0)
    assert clock.left(250.0) == 350      # b has 150 s left, then c 200
    assert eta.Eta({"a": None}, 1).left(0.0) is None


# ----------------------------------------------------------------------- from the CLI

def test_scaling_sweep_prints_the_estimate_and_writes_it(tmp_path, quiet_cache, capsys):
    from contract.runfolder import read_manifest
    from scaling.api import sweep

    base = {k: v for k, v in TINY.items() if k != "name"}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "est", "base": base, "axes": {"seed": [0, 1]}}))
    out = sweep(str(path), root=str(tmp_path / "sweeps"), parallel=1)
    printed = capsys.readouterr().out
    rows = read_manifest(out / "manifest.csv")
    assert {"est_train_s", "est_transfer_s", "est_basis"} <= set(rows[0])
    total = sum(float(r["est_train_s"]) + float(r["est_transfer_s"]) for r in rows)
    assert f"estimated wall time on this host: {eta.describe(total)} at --parallel 1" in printed


@pytest.mark.integration
def test_sweep_refuses_a_bad_parallel_in_one_line(tmp_path):
    from tests.helpers.slurm_runs import scaling

    proc = scaling("sweep", "missing.yaml", "--parallel", "0", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: parallel=0 is invalid: use at least 1 run at a "
                                   "time")
