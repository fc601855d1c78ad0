"""Integer fields take integers only (1.0e+20 and "5" are refused alike by
`sweep` and `train`), sizes are bounded by what the source serves and by host memory for
the uint8 cache, and the manifest's memory estimate counts that cache."""

from __future__ import annotations

import csv
import json

import pytest

from tests.helpers.cli_checks import BASE, cli, make_run, set_dotted
from tests.helpers.slurm_runs import write_sweep_file

INTEGER = "use an integer written without quotes, a decimal point or an exponent"


def _base(**dotted) -> dict:
    base = json.loads(json.dumps(BASE))
    for key, value in dotted.items():
        set_dotted(base, key.replace("__", "."), value)
    return base


@pytest.mark.parametrize("value", [1.0e+20, 5.0, "5"])
def test_sweep_refuses_a_non_integer_image_count(tmp_path, capsys, value):
    sweep_file = write_sweep_file(tmp_path, base=_base(data__images=value))
    code, _, line = cli(capsys, "sweep", sweep_file, "--root", tmp_path / "sweeps")
    assert code == 2
    assert f"data.images={value!r} is invalid: {INTEGER}" in line
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize("value", [1.0e+20, "5"])
def test_train_refuses_the_same_values_with_the_same_message(tmp_path, capsys, value):
    run = make_run(tmp_path, data__images=value)
    code, _, line = cli(capsys, "train", "--config", run / "config.yaml")
    assert code == 2
    assert f"data.images={value!r} is invalid: {INTEGER}" in line
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]  # nothing started


def test_every_integer_field_is_strict(tmp_path, capsys):
    sweep_file = write_sweep_file(tmp_path, base=_base(optim__global_batch=16.0))
    code, _, line = cli(capsys, "sweep", sweep_file, "--root", tmp_path / "sweeps")
    assert code == 2 and f"optim.global_batch=16.0 is invalid: {INTEGER}" in line
    sweep_file = write_sweep_file(tmp_path, base=_base(data__world__num_coarse="8"))
    code, _, line = cli(capsys, "sweep", sweep_file, "--root", tmp_path / "sweeps")
    assert code == 2 and f"data.world.num_coarse='8' is invalid: {INTEGER}" in line


def test_images_beyond_what_the_synthetic_world_serves_are_refused(tmp_path, capsys):
    sweep_file = write_sweep_file(tmp_path, base=_base(data__images=2 ** 40 + 1, data__cache=False))
    code, _, line = cli(capsys, "sweep", sweep_file, "--root", tmp_path / "sweeps")
    assert code == 2 and "serves at most 2**40" in line


def test_a_cache_larger_than_host_memory_is_refused_with_its_size(tmp_path, capsys):
    # 10M images at 224 px: 1.4 TiB of uint8 cache, far beyond resources.mem_gb=8
    base = _base(data__images=10_000_000, model__image_size=224, resources__mem_gb=8)
    code, _, line = cli(capsys, "sweep", write_sweep_file(tmp_path, base=base),
                        "--root", tmp_path / "sweeps")
    assert code == 2
    assert "1401.9 GiB of uint8 cache" in line and "data.cache=false" in line


def test_manifest_host_memory_estimate_counts_the_cache(tmp_path, capsys):
    rows = {}
    for cache in (True, False):
        base = _base(data__images=200_000, data__cache=cache)
        name = f"c{int(cache)}"
        code, _, line = cli(capsys, "sweep", write_sweep_file(tmp_path, name=name, base=base),
                            "--root", tmp_path / "sweeps")
        assert code == 0, line
        with open(tmp_path / "sweeps" / name / "manifest.csv") as f:
            rows[cache] = next(csv.DictReader(f))
    cache_gib = 200_000 * 3 * 16 * 16 / 2 ** 30  # 0.143 GiB
    with_cache = float(rows[True]["est_host_mem_per_node_gb"])
    without = float(rows[False]["est_host_mem_per_node_gb"])
    assert with_cache - without == pytest.approx(cache_gib, abs=0.002)
    assert without > 0  # CPU ranks' own memory is host memory too
