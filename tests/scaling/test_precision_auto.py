"""`precision: auto` on both kinds of host: the capability probe (forced either way by
SCALING_NATIVE_BF16, so the suite does not depend on the CPU it runs on), what a run
resolves and records, the resume rule, the warnings for an emulated bf16, and the results
column that keeps precisions apart."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import yaml

from contract.config import RunConfig, from_dict
from contract.errors import ConfigError
from scaling import precision
from tests.helpers.engine import TINY, make_run

AVX2_HOST = {"fpu", "sse4_2", "avx", "avx2", "fma", "f16c"}
"""The flags that matter of the AVX2-only AMD EPYC host that ran bf16 8.5x slower."""
BF16_HOST = AVX2_HOST | {"avx512f", "avx512bw", "avx512_bf16"}


@pytest.fixture
def native(monkeypatch):
    """Force the probe's answer: native(True) / native(False)."""
    def force(answer: bool) -> None:
        monkeypatch.setenv(precision.ENV, "1" if answer else "0")
    return force


# ------------------------------------------------------------------------------ the probe

def test_x86_flags_decide_bf16(monkeypatch):
    monkeypatch.delenv(precision.ENV, raising=False)
    monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")
    assert precision.cpu_bf16(BF16_HOST) == precision.Bf16Support(
        True, "avx512_bf16 in the CPU flags")
    assert precision.cpu_bf16(AVX2_HOST | {"amx_bf16"}).native
    assert not precision.cpu_bf16(AVX2_HOST).native
    assert not precision.cpu_bf16(set()).native  # no /proc/cpuinfo: never guess bf16


def test_arm_features_decide_bf16(monkeypatch):
    monkeypatch.delenv(precision.ENV, raising=False)
    monkeypatch.setattr(precision.platform, "machine", lambda: "aarch64")
    assert precision.cpu_bf16({"fp", "asimd", "sve", "bf16"}).native
    assert not precision.cpu_bf16({"fp", "asimd", "sve"}).native


def test_cpu_flags_reads_x86_and_arm_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512_bf16\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert precision.cpu_flags(x86) == {"fpu", "avx2", "avx512_bf16"}
    assert precision.cpu_flags(arm) == {"fp", "asimd", "bf16"}
    assert precision.cpu_flags(tmp_path / "missing") == set()


def test_the_environment_variable_overrides_the_flags(monkeypatch):
    monkeypatch.setenv(precision.ENV, "0")
    assert not precision.cpu_bf16(BF16_HOST).native
    monkeypatch.setenv(precision.ENV, "1")
    assert precision.cpu_bf16(AVX2_HOST).native
    monkeypatch.setenv(precision.ENV, "maybe")
    with pytest.raises(ConfigError, match=r"SCALING_NATIVE_BF16='maybe' is invalid: use 1"):
        precision.cpu_bf16(AVX2_HOST)


# ---------------------------------------------------------------------------- resolution

def test_auto_resolves_per_device_and_strategy(native):
    native(True)
    assert precision.resolve("auto", "cpu", "ddp")[0] == "bf16"
    assert precision.resolve("auto", "cuda", "ddp")[0] == "bf16"
    native(False)
    assert precision.resolve("auto", "cpu", "ddp")[0] == "fp32"
    # an older GPU: fp16 with loss scaling where the strategy runs it, else fp32
    assert precision.resolve("auto", "cuda", "ddp")[0] == "fp16"
    assert precision.resolve("auto", "cuda", "deepspeed")[0] == "fp32"
    # a concrete precision is never changed
    for p in ("fp32", "bf16", "fp16"):
        assert precision.resolve(p, "cpu", "ddp") == (p, "set in the config")


def test_auto_is_a_valid_config_value_and_a_typo_names_it():
    assert from_dict(RunConfig, {**TINY, "precision": "auto"}).precision == "auto"
    with pytest.raises(ConfigError, match=r"precision='bf61'.*fp32, bf16, fp16, auto"):
        from_dict(RunConfig, {**TINY, "precision": "bf61"})


# ------------------------------------------------------------------- a run, in-process

def _train(run_dir, capsys):
    from scaling.api import train

    phase = train(str(run_dir / "config.yaml"))
    out = capsys.readouterr()
    return phase, out.out, out.err, json.loads((run_dir / "state.json").read_text())


@pytest.mark.parametrize("is_native, ran", [(True, "bf16"), (False, "fp32")])
def test_a_run_resolves_auto_on_its_host_and_records_it(tmp_path, capsys, native,
                                                        is_native, ran):
    native(is_native)
    run_dir = make_run(tmp_path, precision="auto")
    phase, out, err, state = _train(run_dir, capsys)
    assert phase == "done"
    assert state["precision"] == ran
    assert f"precision=auto -> {ran} (SCALING_NATIVE_BF16=" in out
    assert "warning" not in err
    # the config (and so its hash) keeps what the user asked for
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["precision"] == "auto"
    # the checkpoint says what it was trained in
    meta = sorted((run_dir / "checkpoints").glob("*/meta.json"))
    assert meta and json.loads(meta[-1].read_text())["precision"] == ran


def test_explicit_bf16_without_native_support_trains_and_warns_once(tmp_path, capsys, native):
    native(False)
    run_dir = make_run(tmp_path, precision="bf16")
    phase, _, err, state = _train(run_dir, capsys)
    assert phase == "done" and state["precision"] == "bf16"
    lines = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1, err
    assert "precision=bf16 on a CPU without native bf16" in lines[0]
    assert "8.5x slower than fp32" in lines[0] and "precision: auto" in lines[0]


def test_explicit_bf16_on_a_native_host_says_nothing(tmp_path, capsys, native):
    native(True)
    _, _, err, _ = _train(make_run(tmp_path, precision="bf16"), capsys)
    assert "warning" not in err


def test_a_resumed_run_keeps_the_precision_it_started_in(tmp_path, capsys, native):
    """Started where bf16 is native, retried on a host without it: the run continues in
    bf16 from its checkpoint (one run, one numerics), and says why."""
    native(True)
    run_dir = make_run(tmp_path, precision="auto")
    _train(run_dir, capsys)
    # the run is retried from its checkpoints (as after a failure at export)
    shutil.rmtree(run_dir / "final")
    state = json.loads((run_dir / "state.json").read_text())
    state.update(train="failed", error="lost")
    (run_dir / "state.json").write_text(json.dumps(state))
    native(False)
    phase, out, _, state = _train(run_dir, capsys)
    assert phase == "done" and state["precision"] == "bf16"
    assert "precision=auto -> bf16 (the precision this run started in)" in out
    # without a checkpoint there is nothing to keep: the new host decides
    shutil.rmtree(run_dir / "checkpoints")
    shutil.rmtree(run_dir / "final")
    state.update(train="failed")
    (run_dir / "state.json").write_text(json.dumps(state))
    _, out, _, state = _train(run_dir, capsys)
    assert state["precision"] == "fp32" and "precision=auto -> fp32" in out


# -------------------------------------------------------------------------------- sweep

def _sweep_file(tmp_path, prec: str, device: str = "cpu", gpu: str = "H100"):
    base = {k: v for k, v in TINY.items() if k != "name"}
    base = json.loads(json.dumps(base))
    base["precision"] = prec
    base["resources"].update(device=device, gpu=gpu)
    path = tmp_path / f"{prec}-{device}.yaml"
    path.write_text(yaml.safe_dump({"name": f"p-{prec}-{device}-{gpu}", "base": base,
                                    "axes": {"seed": [0, 1, 2]}}))
    return path


@pytest.mark.parametrize("is_native, prec, device, gpu, warned", [
    (False, "bf16", "cpu", "H100", "precision=bf16 on a CPU without native bf16"),
    (True, "bf16", "cpu", "H100", None),
    (False, "auto", "cpu", "H100", None),
    (False, "fp32", "cpu", "H100", None),
    (True, "bf16", "cuda", "V100", "resources.gpu='V100': compute capability < 8.0"),
    (False, "bf16", "cuda", "H100", None),   # the GPU table, not this host, decides
])
@pytest.mark.integration
def test_sweep_warns_once_for_an_emulated_bf16(tmp_path, capsys, native, is_native, prec,
                                               device, gpu, warned):
    from scaling.api import sweep

    native(is_native)
    sweep(str(_sweep_file(tmp_path, prec, device, gpu)), root=str(tmp_path / "sweeps"))
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    if warned is None:
        assert lines == []
    else:
        assert len(lines) == 1 and warned in lines[0], lines  # three runs, one warning


# ----------------------------------------------------------------------------- results

def _fake(tmp_path, ran: dict):
    from analysis.fakes import make_sweep

    sweep = make_sweep(tmp_path, widths=(4,), vocabs=(1000,), images=(1000, 10000, 100000),
                       seeds=(0,), targets=("fine",), problems=False)
    for run_dir in sorted((sweep / "runs").iterdir()):
        state = json.loads((run_dir / "state.json").read_text())
        state["precision"] = ran.get(run_dir.name.split("-")[1], "bf16")
        (run_dir / "state.json").write_text(json.dumps(state))
    return sweep


def test_results_carry_the_precision_that_ran(tmp_path):
    from analysis import collect, precision_summary
    from analysis.collect import design_columns

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one precision: no warning
        df = collect(_fake(tmp_path, {}), write=False)
    assert set(df.precision) == {"bf16"}
    assert "precision" in design_columns(df)
    assert precision_summary(df) == "bf16 (3 runs)"


def test_mixed_precisions_are_never_mixed_unseen(tmp_path):
    from analysis import CollectWarning, FitWarning, collect, fit_groups

    sweep = _fake(tmp_path, {"n1000": "fp32"})
    with pytest.warns(CollectWarning, match=r"bf16 \(2 runs\), fp32 \(1 run\)"):
        df = collect(sweep, write=False)
    with pytest.warns(FitWarning, match="trained in bf16, fp32"):
        mixed = fit_groups(df, by=("width",), n_boot=20)
    assert "numerics differ" in mixed.warning.iloc[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        apart = fit_groups(df, by=("width", "precision"), n_boot=20)
    assert not apart.warning.str.contains("numerics differ").any()
