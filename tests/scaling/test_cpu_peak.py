"""MFU on CPU is computed against a peak measured on a quiet host, or not at all."""

from __future__ import annotations

import json
import math

import pytest

from scaling import telemetry


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_CACHE", str(tmp_path))
    telemetry.cpu_peak.cache_clear()
    yield tmp_path
    telemetry.cpu_peak.cache_clear()


def test_peak_measured_on_a_busy_host_is_not_trusted_or_cached(empty_cache, monkeypatch):
    monkeypatch.setattr(telemetry.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    entry = telemetry.measure_cpu_peak(1)
    assert entry["flops"] > 0 and not entry["trusted"]
    assert entry["other_load_per_core"] > telemetry.QUIET_LOAD
    assert not (empty_cache / "cpu_peak.json").exists()
    assert math.isnan(telemetry.measured_cpu_peak(1))  # MFU becomes NaN/null, never a guess


def test_peak_measured_on_a_quiet_host_is_cached_with_its_provenance(empty_cache, monkeypatch):
    monkeypatch.setattr(telemetry.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    entry = telemetry.measure_cpu_peak(1)
    assert entry["trusted"]
    cached = json.loads((empty_cache / "cpu_peak.json").read_text())[telemetry._host_key(1)]
    assert cached["flops"] == entry["flops"] and cached["measured_at"] and cached["host"]
    # a later process on a busy host uses the quiet measurement instead of measuring again
    monkeypatch.setattr(telemetry.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    monkeypatch.setattr(telemetry, "_matmul_flops", lambda threads: 1.0)
    assert telemetry.measured_cpu_peak(1) == entry["flops"]
    assert telemetry.cpu_peak(1)["source"] == "cache"


def test_cached_peak_of_another_thread_count_is_not_used(empty_cache, monkeypatch):
    monkeypatch.setattr(telemetry.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    telemetry.measure_cpu_peak(1)
    monkeypatch.setattr(telemetry.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    assert math.isnan(telemetry.measured_cpu_peak(2))


def test_busy_host_without_a_cached_peak_does_not_measure_one(empty_cache, monkeypatch):
    """A measurement on a busy host could never be trusted, so `scaling train` does not
    spend its start-up on one: MFU is NaN either way."""
    monkeypatch.setattr(telemetry.os, "getloadavg", lambda: (9.0, 9.0, 9.0))

    def measured(threads):
        raise AssertionError("measured on a busy host")

    monkeypatch.setattr(telemetry, "_matmul_flops", measured)
    entry = telemetry.cpu_peak(1)
    assert not entry["trusted"] and entry["source"] == "not measured (host busy)"
    assert math.isnan(telemetry.measured_cpu_peak(1))
