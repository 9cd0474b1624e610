"""The disk check that fails a run before its files fill the worker's disk."""

from __future__ import annotations

from collections import namedtuple

import pytest

from airflow_revcent.exceptions import RevCentDiskSpaceError
from airflow_revcent.rows.ndjson import BYTES_PER_CUSTOMER_GUESS, bytes_per_item, check_disk, estimate_open_bytes


def test_the_estimate_covers_the_windows_in_flight_not_the_whole_run():
    # Two windows open: 1,000 and 300 items, 200 and 0 written; windows staged or not opened count nothing.
    assert estimate_open_bytes({0: 1000, 1: 300}, {0: 200}, per_item=1000) == 1100 * 1000
    assert estimate_open_bytes({}, {}, per_item=1000) == 0
    assert estimate_open_bytes({0: 10}, {0: 12}, per_item=1000) == 0  # more read than counted: nothing left
    # The guess until 100 items were written, then their real size.
    assert bytes_per_item(50, 50 * 1000) == BYTES_PER_CUSTOMER_GUESS
    assert bytes_per_item(200, 200 * 1000) == 1000


def test_a_run_the_disk_cannot_hold_fails_naming_the_sizes_and_the_fix(monkeypatch, tmp_path):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("shutil.disk_usage", lambda path: usage(0, 0, 10_000_000))
    check_disk(tmp_path, needed=8_000_000, written=0)  # fits with headroom
    with pytest.raises(RevCentDiskSpaceError, match=r"needs about 0\.01 GB more .* only 0\.01 GB are free.*tmp_dir"):
        check_disk(tmp_path, needed=9_000_000, written=0)
    check_disk(tmp_path, needed=9_000_000, written=5_000_000)  # what is written is already on the disk
