"""Suite-wide rules: GPU tests are deselected (not skipped) without CUDA, with CI=true a
skip is a failure, so CI can never pass by skipping, and a test that starts a Python process
must say so (marked integration, slow or slurm), so `make test-unit` stays in-process and
fast."""

from __future__ import annotations

import multiprocessing.process
import os
import subprocess
import sys
from pathlib import Path

import pytest

ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    kept, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("gpu") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


SPAWN_MARKERS = ("integration", "slow", "slurm")
"""A test with one of these markers may start Python processes; any other may not."""

_current: list = []  # the test item now running (setup, call or teardown), if any
_fixtures: list = []  # the fixtures being set up now, innermost last
_spawning_fixtures: set = set()  # fixtures that started one (a module fixture runs once)
_spawned = pytest.StashKey[str]()


def _program(argv) -> str:
    if isinstance(argv, (str, bytes)):
        argv = os.fsdecode(argv).split()
    elif isinstance(argv, os.PathLike):
        argv = [argv]
    try:
        return os.fsdecode(list(argv)[0])
    except (IndexError, TypeError):
        return ""


def _is_python(argv) -> bool:
    """Whether a Popen argv starts a Python process of the project: this interpreter, any
    python binary, or a console script of this venv (scaling, torchrun)."""
    first = _program(argv)
    name = os.path.basename(first)
    bindir = os.path.dirname(sys.executable)
    if not first:
        return False
    return (first == sys.executable or name.startswith("python")
            or name in ("torchrun", "scaling")
            or os.path.dirname(first) == bindir and name != "git")


def _note_spawn(what: str) -> None:
    if _fixtures:
        _spawning_fixtures.add(_fixtures[-1])
    if _current and _spawned not in _current[-1].stash:
        _current[-1].stash[_spawned] = what


class _GuardedPopen(subprocess.Popen):
    def __init__(self, args, *rest, **kwargs):
        if _is_python(args):
            _note_spawn(f"subprocess {_program(args)}")
        super().__init__(args, *rest, **kwargs)


_process_start = multiprocessing.process.BaseProcess.start


def _guarded_start(self):
    _note_spawn(f"multiprocessing {type(self).__name__}")
    return _process_start(self)


def pytest_configure(config):
    subprocess.Popen = _GuardedPopen
    multiprocessing.process.BaseProcess.start = _guarded_start


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    _fixtures.append(fixturedef.argname)
    try:
        yield
    finally:
        _fixtures.pop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _current.append(item)
    try:
        yield
    finally:
        _current.pop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    what = item.stash.get(_spawned, None)
    if not what and report.when == "call":
        shared = sorted(_spawning_fixtures.intersection(getattr(item, "fixturenames", ())))
        what = f"through the fixture {shared[0]}" if shared else None
    if (what and report.when == "call" and report.passed
            and not any(item.get_closest_marker(m) for m in SPAWN_MARKERS)):
        report.outcome = "failed"
        report.longrepr = (f"this test starts a Python process ({what}): mark it "
                           "@pytest.mark.integration (or slow), or keep it in-process")
    if ON_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true (nothing may skip in CI): {report.longrepr}"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


TEST_CPU_PEAK = 2.0e10
"""The CPU peak (FLOP/s) every test process reads from its cache, so MFU in tests is an
exact, checkable number instead of depending on how busy the machine is."""


@pytest.fixture(scope="session", autouse=True)
def known_cpu_peak(tmp_path_factory):
    """Point SCALING_CACHE (inherited by every subprocess) at a cache holding a trusted
    peak of TEST_CPU_PEAK for this host at 1 and 2 threads."""
    import json

    from scaling import telemetry, walltime

    root = tmp_path_factory.mktemp("scaling-cache")
    entries = {}
    for threads in (1, 2):
        key = telemetry._host_key(threads)
        entries[key] = {"flops": TEST_CPU_PEAK, "threads": threads, "trusted": True,
                        "host": key, "measured_at": "test", "load_1min": 0.0}
    (root / "cpu_peak.json").write_text(json.dumps(entries))
    # a sweep's estimate times a phase process's start-up in a subprocess once per cache
    # (walltime.measure_startup): a fixed figure here keeps in-process sweeps in-process
    (root / "walltime.json").write_text(json.dumps({walltime.host_key(): {"startup": 1.0}}))
    before = os.environ.get("SCALING_CACHE")
    os.environ["SCALING_CACHE"] = str(root)
    telemetry.cpu_peak.cache_clear()
    yield root
    if before is None:
        os.environ.pop("SCALING_CACHE", None)
    else:
        os.environ["SCALING_CACHE"] = before
