"""Data the user points at that cannot be used is one line naming what is wrong with it:
a corrupt parquet file of an `hf:` target, an empty class folder of an imagefolder target,
a WebDataset whose every record is unreadable, a dedup `--n_test` below one. Each
message's fix is followed and leads somewhere."""

from __future__ import annotations

import io
import os
import shutil
import tarfile

import pytest

from contract.errors import ConfigError, RunError
from contract.target_spec import parse_target
from data.targets import check_target
from tests.helpers.cli_checks import cli, make_run
from tests.scaling.transfer_helpers import CLASSES, class_image, make_imagefolder, png

os.environ["HF_DATASETS_OFFLINE"] = "1"


def _parquet_target(root):
    """An `hf:` target as parquet files: train-0.parquet and test-0.parquet."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for split in ("train", "test"):
        labels = [i % len(CLASSES) for i in range(12)]
        images = [{"bytes": png(class_image(c, rng)), "path": None} for c in labels]
        pq.write_table(pa.table({"image": images, "label": [CLASSES[c] for c in labels]}),
                       root / f"{split}-0.parquet")
    return root


def test_a_corrupt_parquet_file_of_a_target_is_named(tmp_path):
    root = _parquet_target(tmp_path / "pets")
    spec = parse_target(f"hf:{root}")
    assert check_target(spec) == {"train": 12, "test": 12}
    bad = root / "train-1.parquet"
    bad.write_bytes(b"PAR1 this is not parquet at all PAR1")
    with pytest.raises(ConfigError) as info:
        check_target(spec)
    message = str(info.value)
    assert "\n" not in message and message.startswith(
        f"transfer target 'pets' (hf:{root}): {bad} is not a readable parquet file (")
    assert message.endswith("): replace it or remove it")
    bad.unlink()  # the advice
    assert check_target(spec) == {"train": 12, "test": 12}


def test_an_empty_class_folder_is_not_a_class(tmp_path):
    root = make_imagefolder(tmp_path / "pets", per_class=4)
    spec = parse_target(f"imagefolder:{root}")
    (root / "train" / "zebra").mkdir()
    with pytest.raises(ConfigError) as info:
        check_target(spec)
    assert str(info.value) == (f"transfer target 'pets' (imagefolder:{root}): class folder "
                               f"{root / 'train' / 'zebra'} holds no images (1 such "
                               "folder(s)): add images or remove the folder")
    (root / "train" / "zebra").rmdir()  # the advice
    assert check_target(spec) == {"train": 12, "test": 12}


def test_a_webdataset_with_no_readable_record_says_so(tmp_path):
    from contract.config import DataConfig
    from contract.world_config import WorldConfig
    from data import build_pretrain_set
    from data.materialize import materialize

    cfg = DataConfig(source="synthetic", path=None, images=16, vocab="all", seed=0,
                     cache=False, world=WorldConfig())
    folder = materialize(cfg, 16, str(tmp_path / "wds"), "webdataset", n=16, shard_size=16)
    shard = next(folder.glob("*.tar"))
    with tarfile.open(shard) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers() if m.isfile()]
    with tarfile.open(shard, "w") as tf:
        for member, data in members:
            if not member.name.endswith(".json"):
                data = b"not an image"
                member.size = len(data)
            tf.addfile(member, io.BytesIO(data))
    broken = DataConfig(source="webdataset", path=str(folder), images=16, vocab="all",
                        cache=False, max_corrupt_frac=1.0)
    with pytest.raises(RunError, match=r"all 16 records are unreadable \(missing, truncated "
                       r"or undecodable images or malformed tags\): the webdataset files are "
                       r"corrupt: repair or replace them"):
        build_pretrain_set(broken, 16)


@pytest.mark.parametrize("n_test", ["-5", "0"])
def test_dedup_n_test_below_one_is_refused(tmp_path, capsys, n_test):
    run = make_run(tmp_path)
    code, _, line = cli(capsys, "data", "dedup", run / "config.yaml", tmp_path / "out",
                        "--n_test", n_test)
    assert code == 2 and line == (f"error: n_test={int(n_test)} is invalid: use at least 1 "
                                  "test image (leave it out for the run's "
                                  "transfer.test_images)")
    assert not (tmp_path / "out").exists()


def test_dedup_without_n_test_checks_the_runs_test_images(tmp_path, capsys):
    import json

    run = make_run(tmp_path, transfer__test_images=40)
    code, out, line = cli(capsys, "data", "dedup", run / "config.yaml", tmp_path / "out")
    assert code == 0, line
    written = next((tmp_path / "out" / "dedup").glob("*.json"))
    assert json.loads(written.read_text())["n_test"] == 40
    shutil.rmtree(tmp_path / "out")
    code, out, line = cli(capsys, "data", "dedup", run / "config.yaml", tmp_path / "out",
                          "--n_test", "7")
    assert code == 0 and json.loads(next((tmp_path / "out" / "dedup").glob("*.json"))
                                    .read_text())["n_test"] == 7
