"""What `checkpoint.verify` promises (scaling/checkpoint.py): a checkpoint whose folder
holds a file its COMPLETE marker does not list (added afterwards) is refused before
anything is read, wherever the file sits, and `choose` falls back to the previous one."""

from __future__ import annotations

import hashlib
import json

import pytest

from scaling import checkpoint
from scaling.dist import DistEnv


def _fake(root, step: int):
    """A checkpoint folder as `save` leaves it: files, then a marker with their SHA-256."""
    target = root / f"{step:09d}"
    (target / "rng").mkdir(parents=True)
    (target / "meta.json").write_text(json.dumps({"step": step}) + "\n")
    (target / "state.pt").write_bytes(bytes(range(256)) * 4)
    (target / "rng" / "0.pt").write_bytes(b"rng")
    files = {str(p.relative_to(target)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(target.rglob("*")) if p.is_file()}
    (target / "COMPLETE").write_text(json.dumps({"schema_version": 2, "step": step,
                                                 "files": files}))
    return target


def test_an_untouched_checkpoint_verifies(tmp_path):
    assert checkpoint.verify(_fake(tmp_path, 5)) is None


@pytest.mark.parametrize("added", ["extra.pt", "rng/1.pt", "rng/COMPLETE", ".hidden",
                                   "dcp/__0_0.distcp"])
def test_a_file_added_after_the_marker_is_refused(tmp_path, added):
    ckpt = _fake(tmp_path, 5)
    (ckpt / added).parent.mkdir(parents=True, exist_ok=True)
    (ckpt / added).write_bytes(b"not written by save")
    assert checkpoint.verify(ckpt) == (f"{added} is not listed in its COMPLETE marker "
                                       "(added afterwards)")


def test_choose_skips_a_newest_checkpoint_with_an_added_file(tmp_path, caplog):
    older, newest = _fake(tmp_path, 5), _fake(tmp_path, 10)
    (newest / "rng" / "COMPLETE").write_text("{}")
    assert checkpoint.choose(tmp_path, DistEnv()) == older
    assert f"checkpoint {newest} skipped: rng/COMPLETE is not listed" in caplog.text
