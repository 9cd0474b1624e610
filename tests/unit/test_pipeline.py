"""The extract loop's per-window flow without servers: each window has its own files, staged and removed as
soon as it finishes, so disk holds the windows in flight; a window read again stages its new rows."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_revcent.api.paging import WindowStats
from airflow_revcent.api.reader import WindowBatch
from airflow_revcent.api.windows import Window
from airflow_revcent.pipeline import extract
from airflow_revcent.resources.descriptor import customers_resource
from airflow_revcent.rows.ndjson import WindowFiles, metadata_suffix
from airflow_revcent.rows.records import RecordConverter

DAY = 86400
WINDOWS = [Window(1_767_225_600 + i * DAY, 1_767_225_600 + (i + 1) * DAY) for i in range(4)]


def _customer(window: Window, n: int) -> dict:
    return {"id": f"{window.start:010d}{n:010d}", "created_date_unix": window.start + n}


class Hook:
    """Yields the windows one after another (as the reader finishes them), in ``pages`` batches each."""

    def __init__(self, sizes: list[int], *, again: int | None = None) -> None:
        self.sizes, self.again = sizes, again

    def iter_pages(self, windows, **_):
        for index, (window, size) in enumerate(zip(windows, self.sizes, strict=True)):
            people = [_customer(window, n) for n in range(size)]
            yield WindowBatch(index, window, people[: size // 2], total_count=size)
            yield WindowBatch(index, window, people[size // 2:], total_count=size,
                              finished=WindowStats(window, requests=2, records=size, total_count=size, distinct=size))
        if self.again is not None:  # verification found one more item in a window finished before
            window, count = windows[self.again], self.sizes[self.again] + 1
            yield WindowBatch(self.again, window, [_customer(window, 999)], total_count=count,
                              finished=WindowStats(window, requests=3, records=1, total_count=count, distinct=count))


def run(tmp_path: Path, hook: Hook, windows=WINDOWS, **kwargs):
    staged: list[tuple[int, int, int, bool]] = []  # (window, rows of this pass, rows in all, marked)
    on_disk: list[list[Path]] = []

    def stage(index, files, tally, stats, reconciled):
        assert all(path.exists() for path in files)
        on_disk.append(list(files))
        staged.append((index, sum(len(p.read_bytes().splitlines()) for p in files), tally.rows, reconciled))

    suffix = metadata_suffix(extracted_at=datetime.now(UTC), interval_start=windows[0].start,
                             interval_end=windows[-1].end, run_id="r")
    resource = customers_resource()
    with WindowFiles(suffix, directory=str(tmp_path)) as files:
        extraction = extract(hook, resource, windows, filters=None, files=files, stage=stage,
                             converter=RecordConverter(resource.columns), page_size=25, on_invalid_record="fail",
                             fail_on_count_mismatch=False, started=time.monotonic(),
                             log=logging.getLogger("test"), **kwargs)
    return staged, on_disk, files, extraction


def test_each_window_is_staged_as_it_finishes_and_its_files_removed_at_once(tmp_path):
    staged, on_disk, files, _ = run(tmp_path, Hook([40, 10, 30, 20]))
    assert [(i, rows) for i, rows, _, _ in staged] == [(0, 40), (1, 10), (2, 30), (3, 20)]
    assert not any(path.exists() for paths in on_disk for path in paths)
    assert files.rows == 100 and not files.open


def test_peak_disk_is_the_largest_window_in_flight_not_the_run(tmp_path):
    _, _, files, _ = run(tmp_path, Hook([40, 10, 30, 20]))
    per_row = files.bytes / files.rows
    # One window in flight at a time here: the peak is the largest window's files, not the run's.
    assert files.peak_windows == 1
    assert 39 * per_row < files.peak_bytes < 41 * per_row < files.bytes / 2


def test_a_window_read_again_stages_its_new_rows_with_what_it_holds_in_all(tmp_path):
    staged, _, _, _ = run(tmp_path, Hook([4, 6], again=0), windows=WINDOWS[:2])
    assert staged[-1] == (0, 1, 5, True)  # one new row; the window's marker says five


def test_indexes_name_the_runs_windows(tmp_path):
    staged, _, _, extraction = run(tmp_path, Hook([3, 5]), windows=WINDOWS[2:], indexes=[2, 3], total=4)
    assert [i for i, *_ in staged] == [2, 3] and set(extraction.skipped_by_window) == {2, 3}


def test_a_count_mismatch_with_fail_stages_the_window_unmarked_and_fails_after_the_read(tmp_path):
    from airflow_revcent.exceptions import RevCentCountMismatchError

    class Short(Hook):
        def iter_pages(self, windows, **_):
            for batch in super().iter_pages(windows):
                if batch.index == 1 and batch.finished:
                    batch.finished.total_count = 7
                yield batch

    staged: list = []
    suffix = metadata_suffix(extracted_at=datetime(2026, 1, 1, tzinfo=UTC), interval_start=0, interval_end=1,
                             run_id="r")
    resource = customers_resource()
    with WindowFiles(suffix, directory=str(tmp_path)) as files, \
            pytest.raises(RevCentCountMismatchError, match="Nothing was loaded into the destination"):
        extract(Short([3, 5]), resource, WINDOWS[:2], filters=None, files=files,
                stage=lambda i, f, t, s, ok: staged.append((i, ok)), converter=RecordConverter(resource.columns),
                page_size=25, on_invalid_record="fail", fail_on_count_mismatch=True, started=time.monotonic(),
                log=logging.getLogger("test"))
    assert staged == [(0, True), (1, False)]  # window 1 staged but not done: a retry reads it again
