"""contract/retry.py: one rule for which phase of a run starts next, shared by the local
executor and `scaling submit`, and for how many times a preempted task requeues itself."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace

from contract.retry import may_requeue, next_phase, should_run
from contract.runfolder import PHASES, read_state
from slurm import local
from slurm.profile import load_profile
from slurm.submit import plan
from tests.helpers.slurm_runs import write_sweep


def test_unfinished_phases_rerun_failed_ones_only_on_request_and_done_never():
    for phase in ("pending", "running", "preempted", "cancelled"):
        assert should_run(phase) and should_run(phase, retry_failed=True), phase
    assert not should_run("failed") and should_run("failed", retry_failed=True)
    assert not should_run("done") and not should_run("done", retry_failed=True)


def test_transfer_runs_next_only_on_a_done_trunk():
    assert next_phase({"train": "preempted", "transfer": "pending"}) == "train"
    assert next_phase({"train": "done", "transfer": "cancelled"}) == "transfer"
    assert next_phase({"train": "failed", "transfer": "pending"}) is None
    assert next_phase({"train": "failed", "transfer": "pending"}, retry_failed=True) == "train"
    assert next_phase({"train": "done", "transfer": "failed"}) is None
    assert next_phase({"train": "done", "transfer": "done"}, retry_failed=True) is None


def test_a_preempted_task_requeues_until_it_has_started_max_attempts_times():
    assert [may_requeue(n, 3) for n in (1, 2, 3, 4)] == [True, True, False, False]


class _RecordingChildren(local.Children):
    """Starts nothing: records which phase's task script would run, and fails it (so the
    executor goes no further, as after a real failure)."""

    def __init__(self) -> None:
        super().__init__()
        self.phases: list[str] = []

    def run(self, argv, **kwargs):
        self.phases.append(Path(argv[1]).name.removesuffix("_task.sh"))
        return 1


def test_the_local_executor_and_submit_start_the_same_phase_of_every_run(tmp_path):
    combos = list(itertools.product(PHASES, PHASES))  # (train, transfer) in every state
    sweep = write_sweep(tmp_path, "grid", {f"r{i}": {} for i in range(len(combos))})
    for i, (train, transfer) in enumerate(combos):
        (sweep / "runs" / f"r{i}" / "state.json").write_text(
            json.dumps({"train": train, "transfer": transfer}))
    local.write_task_scripts(sweep, "python3")
    profile = load_profile()
    for retry_failed in (False, True):
        submitted = plan(sweep, profile, retry_failed=retry_failed, active={})
        by_submit = {}
        for array in submitted.arrays:
            if array.phase == "train" or array.after is None:  # a train array's transfer follows it
                by_submit.update({run_id: array.phase for run_id in array.run_ids})
        by_local = {}
        for i in range(len(combos)):
            run_dir = sweep / "runs" / f"r{i}"
            children = _RecordingChildren()
            local.run_one(run_dir, retry_failed, children=children)
            assert len(children.phases) <= 1  # the first phase failed: nothing after it
            if children.phases:
                by_local[run_dir.name] = children.phases[0]
            assert by_local.get(run_dir.name) == next_phase(read_state(run_dir), retry_failed)
        assert by_local == by_submit, retry_failed
        assert set(by_submit) | set(submitted.skipped) == {f"r{i}" for i in range(len(combos))}
    # with retry_failed: every train not done (5 states x 6), every transfer not done on a
    # done trunk (5)
    assert sum(p == "train" for p in by_local.values()) == 5 * len(PHASES)
    assert sum(p == "transfer" for p in by_local.values()) == 5


def test_the_engine_requeues_a_preempted_run_only_below_max_attempts(tmp_path, monkeypatch):
    from scaling import engine

    calls = []
    monkeypatch.setattr(engine, "requeue_self", lambda: calls.append(1) or True)
    config = SimpleNamespace(resources=SimpleNamespace(max_attempts=3))
    main = SimpleNamespace(is_main=True)
    for attempts, requeued in ((2, True), (3, False)):
        calls.clear()
        (tmp_path / "state.json").write_text(json.dumps({"train": "running",
                                                          "transfer": "pending",
                                                          "attempts": attempts}))
        assert engine._stop_on_signal(tmp_path, main, engine.PREEMPT, config) == "preempted"
        state = read_state(tmp_path)
        assert bool(calls) is requeued, attempts
        assert ("not requeued" in (state["error"] or "")) is not requeued, state


def test_the_local_executor_sheds_slurm_variables_before_starting_a_task(tmp_path,
                                                                         monkeypatch):
    sweep = write_sweep(tmp_path, "s", {"r0": {}})
    local.write_task_scripts(sweep, "python3")
    seen = {}

    class Capture(local.Children):
        def run(self, argv, **kwargs):
            seen.update(kwargs["env"])
            return 1

    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    local.run_one(sweep / "runs" / "r0", children=Capture())
    assert seen and not any(k.startswith("SLURM_") for k in seen)
