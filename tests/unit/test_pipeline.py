"""The extract loop's per-window flow without servers: each window has its own files, staged and removed as
soon as it finishes, so disk holds the windows in flight; a window read again stages its new rows."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_revcent.api.paging import WindowStats
from airflow_revcent.api.reader import WindowBatch
from airflow_revcent.api.windows import Window
from airflow_revcent.exceptions import RevCentCancelled
from airflow_revcent.pipeline import StageWorker, extract
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


def test_peak_disk_is_the_windows_in_flight_not_the_run(tmp_path):
    _, _, files, _ = run(tmp_path, Hook([40, 10, 30, 20]), stage_queue=1)
    per_row = files.bytes / files.rows
    # One window read at a time here, and at most one read window waiting to be staged: the peak is at most
    # two neighbouring windows' files (40 + 10 or 30 + 20 rows), counted with the waiting one, never the run's.
    assert files.peak_windows == 1 and files.peak_pending == 1
    assert 39 * per_row < files.peak_bytes < 51 * per_row < files.bytes * 0.6


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


# -- staging overlaps reading ---------------------------------------------------------------------------------
# Ordering is asserted with events, not time: a wait with a timeout only guards against a hang (a run that staged
# on the reading thread would deadlock in these fakes).
GUARD = 10.0


def _wait_for(event: str, events: list[str]) -> None:
    deadline = time.monotonic() + GUARD
    while event not in events and time.monotonic() < deadline:
        time.sleep(0.001)


def _stage_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "revcent-stage"]


class Recording(Hook):
    """Records what was read (``read i`` when window i's first batch is yielded, ``finished i`` when the reader
    asks for more after window i finished) and what staging saw; stops like the real hook when cancelled."""

    def __init__(self, sizes: list[int], hold: dict[str, str] | None = None) -> None:
        super().__init__(sizes)
        self.hold = hold or {}  # event -> the event it waits for
        self.events: list[str] = []
        self.cancelled = threading.Event()
        self.closed = False

    def cancel(self) -> None:
        self.cancelled.set()

    def iter_pages(self, windows, **_):
        try:
            for batch in super().iter_pages(windows):
                if self.cancelled.is_set():
                    raise RevCentCancelled("stopped")
                if not batch.finished:
                    if f"read {batch.index}" in self.hold:
                        _wait_for(self.hold[f"read {batch.index}"], self.events)
                    self.events.append(f"read {batch.index}")
                yield batch
                if batch.finished:
                    self.events.append(f"finished {batch.index}")
        finally:
            self.closed = True


def _windows(count: int) -> list[Window]:
    return [Window(WINDOWS[0].start + i * DAY, WINDOWS[0].start + (i + 1) * DAY) for i in range(count)]


def _extract(tmp_path: Path, hook: Hook, stage, windows=None, **kwargs):
    windows = windows or _windows(len(hook.sizes))
    suffix = metadata_suffix(extracted_at=datetime.now(UTC), interval_start=windows[0].start,
                             interval_end=windows[-1].end, run_id="r")
    resource = customers_resource()
    with WindowFiles(suffix, directory=str(tmp_path)) as files:
        return files, extract(hook, resource, windows, filters=None, files=files, stage=stage,
                              converter=RecordConverter(resource.columns), page_size=25, on_invalid_record="fail",
                              fail_on_count_mismatch=False, started=time.monotonic(),
                              log=logging.getLogger("test"), **kwargs)


def test_reading_goes_on_while_a_window_is_staged(tmp_path):
    hook = Recording([4, 4, 4], hold={"read 1": "stage 0 start"})  # read window 1 once window 0's load began

    def stage(index, files, tally, stats, reconciled):
        hook.events.append(f"stage {index} start")
        if index == 0:  # window 0's load holds until the reader has read window 1
            _wait_for("read 1", hook.events)
        hook.events.append(f"stage {index} end")

    _extract(tmp_path, hook, stage)
    events = hook.events
    assert events.index("stage 0 start") < events.index("read 1") < events.index("stage 0 end")
    # Windows are staged in the order they finished, each once.
    assert [e for e in events if e.startswith("stage") and e.endswith("end")] == [
        "stage 0 end", "stage 1 end", "stage 2 end"]
    assert not _stage_threads()


def test_a_staging_failure_stops_the_read_and_is_raised_as_itself(tmp_path):
    class LoadFailed(Exception):
        pass

    hook = Recording([3, 3, 3, 3])
    failure = LoadFailed("load job failed")
    staged: list[int] = []

    def stage(index, files, tally, stats, reconciled):
        if index == 1:
            raise failure
        staged.append(index)

    with pytest.raises(LoadFailed) as raised:
        _extract(tmp_path, hook, stage)
    assert raised.value is failure  # the same exception a stage on the reading thread raised
    assert hook.cancelled.is_set() and hook.closed  # the read was stopped, its generator closed
    assert staged == [0] and "finished 3" not in hook.events
    assert not _stage_threads() and not list(tmp_path.glob("airflow-revcent-*"))


def test_a_read_failure_stages_the_windows_it_finished_then_is_raised(tmp_path):
    class Broken(Recording):
        def iter_pages(self, windows, **_):
            for batch in super().iter_pages(windows):
                if batch.index == 2:
                    raise RevCentCancelled("the API went away")
                yield batch

    hook = Broken([3, 3, 3])
    staged: list[int] = []
    with pytest.raises(RevCentCancelled, match="went away"):
        _extract(tmp_path, hook, lambda i, *_: staged.append(i))
    assert staged == [0, 1]  # a retry need not read them again
    assert not _stage_threads()


def test_no_more_than_the_queue_of_read_windows_wait_for_staging(tmp_path):
    gate = threading.Event()
    waiting: list[int] = []  # read windows not staged yet, each time the reader asks for more

    class Observing(Recording):
        def iter_pages(self, windows, **_):
            for batch in Recording.iter_pages(self, windows):
                waiting.append(len(files_seen[0].pending))
                if batch.index == 1 and batch.finished:
                    gate.set()  # windows 0 and 1 wait now: let staging go on
                yield batch

    hook = Observing([2] * 6)
    files_seen: list[WindowFiles] = []

    def stage(index, files, tally, stats, reconciled):
        assert gate.wait(GUARD)
        hook.events.append(f"stage {index} end")

    class Files(WindowFiles):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            files_seen.append(self)

    suffix = metadata_suffix(extracted_at=datetime.now(UTC), interval_start=0, interval_end=1, run_id="r")
    resource = customers_resource()
    windows = _windows(6)
    with Files(suffix, directory=str(tmp_path)) as files:
        extract(hook, resource, windows, filters=None, files=files, stage=stage,
                converter=RecordConverter(resource.columns), page_size=25, on_invalid_record="fail",
                fail_on_count_mismatch=False, started=time.monotonic(), log=logging.getLogger("test"),
                stage_queue=2)
    assert max(waiting) <= 2 and files.peak_pending == 2
    # Window 2 was handed over only once window 0 was staged (the reader blocked meanwhile).
    assert hook.events.index("stage 0 end") < hook.events.index("finished 2")


def test_a_full_queue_blocks_the_submitter_until_a_window_is_staged():
    gate, returned = threading.Event(), threading.Event()
    worker = StageWorker(max_pending=2)

    def submit_third() -> None:
        worker.submit(lambda: None)
        returned.set()

    def held() -> None:
        gate.wait(GUARD)

    worker.submit(held)
    worker.submit(lambda: None)
    thread = threading.Thread(target=submit_third)
    thread.start()
    assert not returned.wait(0.3)  # blocked: two windows wait already (a broken bound returns at once)
    gate.set()
    assert returned.wait(GUARD)
    thread.join()
    worker.drain()
    worker.close()
    assert worker.peak_pending == 2 and not _stage_threads()


def test_cancelling_stops_the_staging_thread_and_drops_the_waiting_windows(tmp_path):
    hook = Recording([3, 3, 3, 3])
    stopped = threading.Event()
    staged: list[int] = []

    def stage(index, files, tally, stats, reconciled):
        if index == 0:  # on_kill while window 0 loads and window 1 waits
            _wait_for("finished 1", hook.events)
            stopped.set()
            hook.cancel()
        staged.append(index)

    with pytest.raises(RevCentCancelled):
        _extract(tmp_path, hook, stage, stopped=stopped)
    assert staged == [0]  # window 1 was dropped, not staged after the cancel
    assert not _stage_threads() and not list(tmp_path.glob("airflow-revcent-*"))


def test_promotion_runs_on_the_staging_thread_before_the_windows_load(tmp_path):
    hook = Recording([3, 3])
    order: list[tuple[str, int, str]] = []

    def before_stage(writer, kinds):
        order.append(("promote", writer.rows, threading.current_thread().name))

    def stage(index, files, tally, stats, reconciled):
        order.append(("stage", tally.rows, threading.current_thread().name))

    _extract(tmp_path, hook, stage, before_stage=before_stage)
    assert order == [("promote", 3, "revcent-stage"), ("stage", 3, "revcent-stage")] * 2
