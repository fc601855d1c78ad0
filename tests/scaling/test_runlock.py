"""run.lock as found on disk: a lock that holds valid JSON but not an object (a hand edit,
another tool) has no holder, so it is taken over like a torn lock, never a traceback."""

from __future__ import annotations

import json
import os
import time

import pytest

from scaling.runlock import LOCK, RunLock, read_holder


@pytest.mark.parametrize("text", ["[1, 2]", '"held"', "7", "null", "true"])
def test_a_lock_holding_json_that_is_not_an_object_is_taken_over(tmp_path, text):
    lock = tmp_path / LOCK
    lock.write_text(text + "\n")
    past = time.time() - 10  # older than the few seconds a lock being written may take
    os.utime(lock, (past, past))
    holder = read_holder(tmp_path)
    assert holder is not None and holder["pid"] is None and holder["age_s"] > 5
    taken = RunLock(tmp_path, "train").acquire()
    try:
        mine = json.loads(lock.read_text())
        assert mine["pid"] == os.getpid() and mine["phase"] == "train"
    finally:
        taken.release()
    assert not lock.exists()
