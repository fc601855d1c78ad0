import csv

import pytest
import yaml

from contract.config import load_run_config
from contract.errors import ConfigError
from contract.runfolder import update_state
from scaling.sweep import expand, expand_sweep

BASE = {"model": {"arch": "resnext", "depth": 11, "stages": 3, "cardinality": 8,
                  "width_per_group": 4, "base_width": 16, "stem": "small", "image_size": 32},
        "data": {"images": 1000}, "optim": {"global_batch": 32, "images_seen": 640},
        "resources": {"device": "cpu"}}


def write_sweep(tmp_path, **spec):
    spec.setdefault("name", "s")
    spec.setdefault("base", BASE)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def manifest(sweep_dir):
    with (sweep_dir / "manifest.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow  # 8-16 s on the 2-core host: too slow for make test-unit
def test_grid_zip_seeds_and_grids_expand_to_the_union(tmp_path):
    path = write_sweep(
        tmp_path,
        axes={"model.width_per_group": [4, 8], "data.vocab": [100, "matched:fine"]},
        zip=[{"data.images": [1000, 10000], "optim.images_seen": [640, 6400]}],
        seeds=[0, 1],
        grids=[{"axes": {"data.resample": ["natural", "sqrt"]}}])
    sweep_dir = expand_sweep(path, tmp_path / "root")
    rows = manifest(sweep_dir)
    # grid: 2 widths x 2 vocabs x 2 zipped x 2 seeds = 16; extra grid: 2 resamples x 2 seeds
    # = 4, of which natural duplicates nothing in the main grid (base images 1000, seen 640,
    # width 4, vocab all) -> all 20 distinct
    assert len(rows) == 20
    assert len({r["config_hash"] for r in rows}) == 20
    ids = {r["run_id"] for r in rows}
    assert "w4-vm-fine-n1k-i640-s0" in ids
    cfg = load_run_config(sweep_dir / "runs" / "w8-v100-n10k-i6.4k-s1" / "config.yaml")
    assert (cfg.model.width_per_group, cfg.data.vocab, cfg.data.images, cfg.seed) == \
        (8, 100, 10000, 1)
    assert cfg.optim.images_seen == 6400
    row = next(r for r in rows if r["run_id"] == "w8-v100-n10k-i6.4k-s1")
    assert int(row["params"]) > 0 and int(row["flops_per_image"]) > 0
    assert int(row["pretrain_flops"]) == 3 * int(row["flops_per_image"]) * 6400


@pytest.mark.slow  # 8-16 s on the 2-core host: too slow for make test-unit
def test_duplicate_points_across_grids_are_deduplicated(tmp_path):
    path = write_sweep(tmp_path, axes={"model.width_per_group": [4, 8]},
                       grids=[{"axes": {"model.width_per_group": [8, 16]}}])
    rows = manifest(expand_sweep(path, tmp_path / "root"))
    assert sorted(r["run_id"] for r in rows) == ["w16", "w4", "w8"]


@pytest.mark.parametrize("spec, message", [
    ({"axes": {"model.widht_per_group": [4]}}, "did you mean 'model.width_per_group'"),
    ({"axis": {"model.width_per_group": [4]}}, "did you mean 'axes'"),
    ({"zip": [{"data.images": [1, 2], "optim.images_seen": [640]}]}, "same length"),
    ({"axes": {"data.resample": ["natural", "sqrtt"]}}, "data.resample='sqrtt'"),
    ({"seeds": "0"}, "seeds='0'"),
    ({"set": {"data.sed": 3}}, r"set.data.sed: .*did you mean 'data.seed'"),
    ({"set": [{"data.seed": 3}]}, "set=.* use a mapping field -> value"),
    ({"set": {"data.seed": 3}, "grids": [{"axes": {"data.seed": [3, 5]}}]},
     "set.data.seed is also an axis"),
    ({"set": {"seed": 1}, "seeds": [0, 1]}, "set.seed and `seeds`"),
    ({"set": {"name": "x"}}, "set.name is invalid"),
    ({"set": {"data.resample": "sqrtt"}, "axes": {"model.width_per_group": [4]}},
     "^set: .*data.resample='sqrtt'"),
])
def test_bad_sweep_files_fail_before_writing_anything(tmp_path, spec, message):
    path = write_sweep(tmp_path, **spec)
    with pytest.raises(ConfigError, match=message):
        expand_sweep(path, tmp_path / "root")
    assert not (tmp_path / "root").exists()


@pytest.mark.slow  # 8-16 s on the 2-core host: too slow for make test-unit
def test_regenerating_adds_runs_and_refuses_to_change_a_done_run(tmp_path):
    path = write_sweep(tmp_path, axes={"model.width_per_group": [4]})
    sweep_dir = expand_sweep(path, tmp_path / "root")
    update_state(sweep_dir / "runs" / "w4", train="done")
    before = (sweep_dir / "runs" / "w4" / "config.yaml").read_text()

    path = write_sweep(tmp_path, axes={"model.width_per_group": [4, 8]})
    expand_sweep(path, tmp_path / "root")
    assert sorted(r["run_id"] for r in manifest(sweep_dir)) == ["w4", "w8"]
    assert (sweep_dir / "runs" / "w4" / "config.yaml").read_text() == before

    changed = dict(BASE, optim={"global_batch": 32, "images_seen": 1280})
    path = write_sweep(tmp_path, base=changed, axes={"model.width_per_group": [4]})
    with pytest.raises(ConfigError, match=r"run w4 is done .*optim.images_seen: 640 -> 1280"):
        expand_sweep(path, tmp_path / "root")
    assert (sweep_dir / "runs" / "w4" / "config.yaml").read_text() == before


def test_base_path_is_resolved_next_to_the_sweep_file(tmp_path, repo_root):
    sweep_dir = expand_sweep(repo_root / "configs" / "demo.yaml", tmp_path)
    rows = manifest(sweep_dir)
    assert len(rows) == 6 and rows[0]["run_id"].startswith("w4-n1k")


@pytest.mark.slow  # 8-16 s on the 2-core host: too slow for make test-unit
def test_set_fixes_a_field_for_every_grid_without_naming_runs(tmp_path):
    path = write_sweep(tmp_path, set={"data.seed": 7, "transfer.targets": ["coarse"]},
                       axes={"model.width_per_group": [4, 8]},
                       grids=[{"axes": {"data.images": [64]}}])
    sweep_dir = expand_sweep(path, tmp_path / "root")
    rows = manifest(sweep_dir)
    assert sorted(r["run_id"] for r in rows) == ["n64", "w4", "w8"]
    for row in rows:
        config = load_run_config(sweep_dir / "runs" / row["run_id"] / "config.yaml")
        assert config.data.seed == 7 and config.transfer.targets == ["coarse"]
    # a set value that changes is a changed config: a done run is not silently re-seeded
    update_state(sweep_dir / "runs" / "w4", train="done")
    path = write_sweep(tmp_path, set={"data.seed": 9, "transfer.targets": ["coarse"]},
                       axes={"model.width_per_group": [4, 8]},
                       grids=[{"axes": {"data.images": [64]}}])
    with pytest.raises(ConfigError, match=r"run w4 is done .*data.seed: 7 -> 9"):
        expand_sweep(path, tmp_path / "root")


def test_world_seed_and_list_axes_get_readable_run_ids(tmp_path):
    path = write_sweep(tmp_path, axes={"data.seed": [5], "transfer.targets": [["fine", "coarse"]]},
                       seeds=[0])
    rows = manifest(expand_sweep(path, tmp_path / "root"))
    assert [r["run_id"] for r in rows] == ["world5-tfine-coarse-s0"]


def test_paper_mini_runs_the_finding_grids_on_untuned_worlds(tmp_path, repo_root):
    rows = manifest(expand_sweep(repo_root / "configs" / "paper-mini.yaml", tmp_path))
    configs = [load_run_config(tmp_path / "paper-mini" / "runs" / r["run_id"] / "config.yaml")
               for r in rows]
    # replicate r: world 100 + r (never used by an earlier record), init seed r
    assert {(c.data.seed, c.seed) for c in configs} == {(100, 0), (101, 1), (102, 2)}
    assert {c.precision for c in configs} == {"auto"}  # bf16 only where it is native
    assert {c.model.width_per_group for c in configs} == {4, 16}
    assert {str(c.data.vocab) for c in configs} == {"16", "random:16", "all", "matched:coarse"}
    assert {c.data.resample for c in configs} == {"natural", "uniform"}
    assert {c.data.label_noise for c in configs} == {0.0, 0.1, 0.25}
    assert all("fine" in c.transfer.targets for c in configs)
    # finding 6 fine-tunes the width-16 25k trunks, probed on novel and fine
    finetuned = [c for c in configs if "finetune" in c.transfer.protocols]
    assert len(finetuned) == 3 and all("linear" in c.transfer.protocols for c in finetuned)
    assert {(c.model.width_per_group, c.data.images, tuple(c.transfer.targets))
            for c in finetuned} == {(16, 25000, ("fine", "novel"))}
    # the vocabulary and resampling grid: a 96k set seen twice
    vocab = [c for c in configs if str(c.data.vocab) != "all" or c.data.resample != "natural"]
    assert {(c.data.images, c.optim.images_seen) for c in vocab} == {(96000, 192000)}
    points: dict = {}
    for c in configs:
        point = (c.model.width_per_group, c.data.images, c.optim.images_seen, str(c.data.vocab),
                 c.data.resample, c.data.label_noise)
        points.setdefault(point, set()).add(c.seed)
    assert all(s == {0, 1, 2} for s in points.values()), points  # 3 replicates everywhere
    for width in (4, 16):  # four sizes over two decades for finding 1's curvature
        assert {n for (w, n, seen, *_rest) in points if w == width and seen == 96000
                } == {250, 1000, 5000, 25000}
    assert len(configs) == 45


def test_replicates_tie_each_world_to_its_init_seed(tmp_path):
    """Replicate r trains on world worlds_from + r with seed r, in every grid; a grid's own
    count (or list) overrides the top level's; runs shared between grids are shared."""
    path = write_sweep(tmp_path, replicates={"worlds_from": 100, "count": 3},
                       axes={"model.width_per_group": [4, 8]},
                       grids=[{"axes": {"data.resample": ["natural", "sqrt"]},
                               "replicates": [0, 4]}])
    sweep_dir = expand_sweep(path, tmp_path / "root")
    rows = manifest(sweep_dir)
    ids = sorted(r["run_id"] for r in rows)
    assert ids == sorted(["w4-r0", "w4-r1", "w4-r2", "w8-r0", "w8-r1", "w8-r2",
                          "rsqrt-r0", "rsqrt-r4", "rnatural-r4"])  # natural r0 is w4-r0
    for row in rows:
        config = load_run_config(sweep_dir / "runs" / row["run_id"] / "config.yaml")
        r = int(row["replicate"])
        assert (config.seed, config.data.seed) == (r, 100 + r)
        assert row["run_id"].endswith(f"-r{r}")


@pytest.mark.parametrize("spec, message", [
    ({"seeds": [0, 1]}, r"^seeds and replicates both give the run seed: keep one"),
    ({"set": {"data.seed": 3}}, r"^set.data.seed and replicates both give data.seed"),
    ({"axes": {"seed": [0, 1]}}, r"^axes varies seed and replicates gives it"),
    ({"grids": [{"zip": [{"data.seed": [1, 2], "data.images": [64, 128]}]}]},
     r"^grids\[0\].zip varies data.seed and replicates gives it"),
])
def test_replicates_refuse_another_source_of_seed_or_world(tmp_path, spec, message):
    path = write_sweep(tmp_path, replicates={"worlds_from": 100, "count": 2},
                       **{"axes": {"model.width_per_group": [4]}, **spec})
    with pytest.raises(ConfigError, match=message) as caught:
        expand_sweep(path, tmp_path / "root")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "root").exists()
    # the fix the message gives (keep one): drop the other source, and the sweep expands
    spec.pop("seeds", None)
    spec.pop("set", None)
    spec.pop("grids", None)
    spec["axes"] = {"model.width_per_group": [4]}
    runs, _ = expand({"name": "s", "replicates": {"worlds_from": 100, "count": 2}, **spec},
                     BASE)
    assert [(run_id, c.seed, c.data.seed) for run_id, c, _ in runs] == [
        ("w4-r0", 0, 100), ("w4-r1", 1, 101)]


@pytest.mark.parametrize("spec, message", [
    ({"replicates": 3}, r"^replicates=3 is invalid: use a mapping"),
    ({"replicates": {"worlds_form": 1}}, r"did you mean 'worlds_from'"),
    ({"replicates": {"count": 2}}, r"^replicates.worlds_from=None is invalid"),
    ({"replicates": {"worlds_from": 1, "count": 0}}, r"^replicates.count=0 is invalid"),
    ({"replicates": {"worlds_from": 1}, "grids": [{"replicates": [1, 1]}]},
     r"^grids\[0\].replicates=\[1, 1\] is invalid"),
    ({"grids": [{"axes": {"data.images": [64]}, "replicates": 2}]},
     r"^grids\[0\].replicates needs the top-level `replicates"),
])
def test_bad_replicates_are_one_line_errors(tmp_path, spec, message):
    path = write_sweep(tmp_path, **spec)
    with pytest.raises(ConfigError, match=message):
        expand_sweep(path, tmp_path / "root")
