"""The disk check that fails a run before its files fill the worker's disk."""

from __future__ import annotations

from collections import namedtuple

import pytest

from airflow_revcent.exceptions import RevCentDiskSpaceError
from airflow_revcent.ndjson import BYTES_PER_CUSTOMER_GUESS, check_disk, estimate_run_bytes


def test_unknown_windows_are_assumed_as_dense_as_the_known_ones():
    # 3 windows of 10 days; the first holds 1,000 customers: the run holds about 3,000.
    assert estimate_run_bytes([10, 10, 10], {0: 1000}, rows=0, written=0) == 3000 * BYTES_PER_CUSTOMER_GUESS
    # Once customers were written, their real size replaces the guess.
    assert estimate_run_bytes([10, 10], {0: 100, 1: 300}, rows=200, written=200 * 1000) == 400 * 1000
    assert estimate_run_bytes([10], {}, rows=0, written=0) == 0


def test_a_run_the_disk_cannot_hold_fails_naming_the_sizes_and_the_fix(monkeypatch, tmp_path):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("shutil.disk_usage", lambda path: usage(0, 0, 10_000_000))
    check_disk(tmp_path, needed=8_000_000, written=0)  # fits with headroom
    with pytest.raises(RevCentDiskSpaceError, match=r"needs about 0\.01 GB more .* only 0\.01 GB are free.*tmp_dir"):
        check_disk(tmp_path, needed=9_000_000, written=0)
    check_disk(tmp_path, needed=9_000_000, written=5_000_000)  # what is written is already on the disk
