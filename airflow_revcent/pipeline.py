"""The extract loop: windows read through the hook, each item shaped into a row and streamed to NDJSON.

The operator composes it (:class:`~airflow_revcent.transfers.revcent_to_bigquery.RevCentToBigQueryOperator`);
it holds no Airflow or BigQuery state, so any task that reads windows of a resource shares it. Each window
has its own files (:class:`~airflow_revcent.rows.ndjson.WindowFiles`), opened on its first row; when the
window finishes they are handed to ``stage`` (the operator loads them into the run's staging) and removed
once staged, so local disk holds only the windows in flight. What the read found besides the rows (skipped
items, count mismatches, repaired values) comes back as an :class:`Extraction`.

Staging overlaps reading: a finished window goes to one background thread (:class:`StageWorker`) that
stages the windows one at a time, in the order they finished, while the reader goes on with the next
pages. At most :data:`STAGE_QUEUE` read windows wait for it (the one being staged included); the reader
blocks past that, so disk stays bounded. A staging failure stops the read (``hook.cancel()``) and is
raised by ``extract`` as it was raised by ``stage``; a failure of the read first stages the windows it
finished (a retry need not read them again), then is raised.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_revcent.api.paging import WindowStats
from airflow_revcent.api.windows import Window
from airflow_revcent.exceptions import RevCentCancelled, RevCentCountMismatchError
from airflow_revcent.resources import Resource
from airflow_revcent.rows.ndjson import (
    NdjsonWriter,
    WindowFiles,
    bytes_per_item,
    check_disk,
    estimate_open_bytes,
    read_time_members,
)
from airflow_revcent.rows.records import InvalidPolicy, RecordConverter

#: Repaired values are logged one by one up to this many per run; the summary counts them all.
LOGGED_REPAIRS = 50
#: The most read windows waiting to be staged, the one being staged included: one loads while the next
#: waits, and the reader blocks past that (each waiting window's files are on disk).
STAGE_QUEUE = 2
#: How often a blocked wait looks again at a cancellation: ``stopped`` is set from a signal handler (on_kill),
#: which cannot take the worker's lock to wake it.
_POLL_SECONDS = 0.1
#: How long a cancelled run waits for the staging thread (its load job is being cancelled) before it leaves
#: it behind (a daemon thread: it never holds the process open).
_CANCEL_JOIN_SECONDS = 30.0


@dataclass
class Extraction:
    """What reading the windows found besides the items themselves (per window: a window read
    again after verification reports its final numbers)."""

    skipped_by_window: dict[int, int] = field(default_factory=dict)
    mismatch_by_window: dict[int, str] = field(default_factory=dict)
    #: Unknown fields promoted to columns after the read, path -> type.
    promoted: dict[str, str] = field(default_factory=dict)
    #: Time spent reading the API and writing the files.
    seconds: float = 0.0
    #: (item id, field path) of each value whose lone surrogates were replaced by U+FFFD.
    replaced_surrogates: list[tuple[str, str]] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return sum(self.skipped_by_window.values())

    @property
    def mismatches(self) -> list[str]:
        return [self.mismatch_by_window[i] for i in sorted(self.mismatch_by_window)]


@dataclass
class WindowTally:
    """What one window's rows held across its passes (each pass's files are staged, then removed)."""

    rows: int = 0
    #: Order-independent digest of the rows (their content hashes summed modulo 2**256).
    digest: int = 0
    created_min: int | None = None
    created_max: int | None = None

    def add(self, writer: NdjsonWriter) -> None:
        """Count a segment's rows (after any rewrite)."""
        self.rows += writer.rows
        self.digest = (self.digest + int(writer.digest, 16)) % (1 << 256)
        for value in (writer.created_min, writer.created_max):
            if value is not None:
                self.created_min = value if self.created_min is None else min(self.created_min, value)
                self.created_max = value if self.created_max is None else max(self.created_max, value)

    @property
    def hexdigest(self) -> str:
        return f"{self.digest:064x}"


#: Stages a finished window: (run window index, its files of this pass, what it holds in all, its read stats,
#: whether its counts reconciled). Called before the files are removed, on the staging thread.
Stage = Callable[[int, Sequence[Path], WindowTally, WindowStats, bool], None]
#: Called on the staging thread with a finished window's writer and the unknown fields seen when it finished
#: (path -> kinds of value), before it is staged: promotion changes the tables and rewrites the files here,
#: serially, so no load is in flight meanwhile.
BeforeStage = Callable[[NdjsonWriter, Mapping[str, set[str]]], None]


class StageWorker:
    """Runs staging tasks on one background thread, in the order they were submitted, while the caller reads.

    :param max_pending: the most tasks submitted but not finished (the one running included); :meth:`submit`
        blocks past it.
    :param stopped: set by whoever cancels the run (on_kill): tasks still queued are dropped, waits end.
    :param on_error: called on the worker thread when a task fails, to stop the reader (``hook.cancel``).
    :param name: the thread's name.
    """

    def __init__(self, *, max_pending: int = STAGE_QUEUE, stopped: threading.Event | None = None,
                 on_error: Callable[[], None] | None = None, name: str = "revcent-stage") -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending={max_pending!r} must be at least 1.")
        self.max_pending = max_pending
        self.stopped = stopped if stopped is not None else threading.Event()
        self._on_error = on_error
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Callable[[], None]] = deque()
        self._pending = 0
        self._closing = False
        #: The first task's failure (the worker stops at it).
        self.error: BaseException | None = None
        #: The most tasks submitted but not finished at once.
        self.peak_pending = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Tasks submitted but not finished (the one running included)."""
        return self._pending

    def submit(self, task: Callable[[], None]) -> None:
        """Queue ``task``; block while :attr:`max_pending` tasks are unfinished.

        :raises BaseException: the failure of an earlier task (the same exception object).
        :raises RevCentCancelled: the run was cancelled.
        """
        with self._cond:
            self._wait_for_room()
            self._queue.append(task)
            self._pending += 1
            self.peak_pending = max(self.peak_pending, self._pending)
            self._cond.notify_all()

    def wait_for_room(self) -> None:
        """Block while :attr:`max_pending` tasks are unfinished (then the next :meth:`submit` of this caller does
        not block): the reader keeps a finished window's files as they are until staging can take them.

        :raises BaseException: the failure of an earlier task (the same exception object).
        :raises RevCentCancelled: the run was cancelled.
        """
        with self._cond:
            self._wait_for_room()

    def _wait_for_room(self) -> None:
        while self._pending >= self.max_pending and self.error is None and not self.stopped.is_set():
            self._cond.wait(_POLL_SECONDS)
        self._raise()

    def check(self) -> None:
        """Raise an earlier task's failure, if any, at once (the reader calls it at every batch)."""
        if self.error is not None:
            raise self.error

    def drain(self) -> None:
        """Wait until every submitted task finished; raise the first failure."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            while self._pending and self.error is None and not self.stopped.is_set():
                self._cond.wait(_POLL_SECONDS)
            self._raise()

    def close(self) -> None:
        """Drop the tasks not started and wait for the thread to end (a cancelled run waits a bounded time)."""
        with self._cond:
            self._closing = True
            self._pending -= len(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        self._thread.join(_CANCEL_JOIN_SECONDS if self.stopped.is_set() else None)

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error
        if self.stopped.is_set():
            raise RevCentCancelled("The run was stopped: the windows read but not yet staged are not staged.")

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing and not self.stopped.is_set():
                    self._cond.wait(_POLL_SECONDS)
                if self.stopped.is_set() or not self._queue:
                    return
                task = self._queue.popleft()
            try:
                task()
            except BaseException as exc:  # handed to the reader, which raises it
                with self._cond:
                    self.error = exc
                    self._cond.notify_all()
                if self._on_error is not None:
                    self._on_error()
                return
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()


def item_noun(resource: Resource) -> str:
    """What messages call one item: ``customer`` for customers, else ``<name> item``.

    :param resource: the resource being read.
    """
    return "customer" if resource.name == "customers" else f"{resource.name} item"


def extract(
    hook: Any,
    resource: Resource,
    windows: Sequence[Window],
    *,
    filters: Any,
    converter: RecordConverter,
    files: WindowFiles,
    stage: Stage,
    page_size: int,
    on_invalid_record: InvalidPolicy,
    fail_on_count_mismatch: bool,
    started: float,
    log: logging.Logger | Any,
    before_stage: BeforeStage | None = None,
    indexes: Sequence[int] | None = None,
    total: int | None = None,
    stage_queue: int = STAGE_QUEUE,
    stopped: threading.Event | None = None,
) -> Extraction:
    """Read ``windows`` of ``resource`` through ``hook``, write every new item as a row of its window's files,
    and stage each window as soon as it finishes, on a staging thread while the read goes on.

    :param hook: a :class:`~airflow_revcent.hooks.revcent.RevCentHook` (its ``iter_pages``).
    :param resource: the list resource.
    :param windows: the windows to read.
    :param filters: validated filters (``to_params()``).
    :param converter: shapes an item into a row.
    :param files: the windows' files.
    :param stage: loads a finished window's files (see :data:`Stage`; on the staging thread); they are
        removed right after.
    :param page_size: items per request.
    :param on_invalid_record: ``"keep"``: skip items without a usable key or creation time (counted) instead
        of failing (``"fail"``).
    :param fail_on_count_mismatch: fail (after the read, before anything is applied) when a window's distinct
        items differ from the API's ``total_count``; such a window is staged but not marked done.
    :param started: when the run started (``time.monotonic()``), for rates and estimates.
    :param log: where progress goes.
    :param before_stage: called on the staging thread with a finished window's writer and the unknown fields
        seen by then, before the window is staged (see :data:`BeforeStage`; promotion rewrites it).
    :param indexes: each window's index in the run (default: its position in ``windows``).
    :param total: windows in the run (default: ``len(windows)``).
    :param stage_queue: the most read windows waiting to be staged (the one being staged included).
    :param stopped: set by whoever cancels the run (on_kill): windows not yet staged are dropped.
    :raises RevCentCountMismatchError: counts differ and ``fail_on_count_mismatch``.
    :raises BaseException: whatever ``stage`` or ``before_stage`` raised (the read stops at it).
    """
    extraction = Extraction()
    indexes = list(range(len(windows))) if indexes is None else list(indexes)
    total = len(windows) if total is None else total
    finished: set[int] = set()
    totals: dict[int, int] = {}
    tallies: dict[int, WindowTally] = {}  # the staging thread's alone
    batches: Any = hook.iter_pages(windows, filters=filters, page_size=page_size, on_invalid_record=on_invalid_record,
                                   resource=resource)
    stager = StageWorker(max_pending=stage_queue, stopped=stopped, on_error=getattr(hook, "cancel", None))
    try:
        for batch in batches:
            stager.check()
            index = indexes[batch.index]
            if batch.customers:
                _write_batch(batch, index, files=files, converter=converter, totals=totals, extraction=extraction,
                             resource=resource, log=log)
            if batch.finished:
                finished.add(index)
                extraction.skipped_by_window[index] = batch.finished.skipped
                _reconcile(index, batch.finished, extraction, resource, log)
                # What promotion sees is what was seen when the window finished (the reader goes on adding).
                kinds = ({p: set(k) for p, k in converter.unknown_kinds.items()} if before_stage is not None
                         else {})
                stager.wait_for_room()
                stager.submit(functools.partial(
                    _stage_window, index, files.detach(index), batch.finished,
                    not (fail_on_count_mismatch and index in extraction.mismatch_by_window), kinds,
                    files=files, tallies=tallies, stage=stage, before_stage=before_stage))
                totals.pop(index, None)
                _log_window(index, total, batch.finished, files.rows, started=started, done=len(finished),
                            windows=len(windows), resource=resource, log=log)
        stager.drain()
    except BaseException as exc:
        failed = stager.error
        if failed is not None and failed is not exc:
            raise failed from None  # the read stopped because staging failed: that is the failure
        if failed is None and not stager.stopped.is_set():
            _stage_what_was_read(stager, log)
        raise
    finally:
        if hasattr(batches, "close"):
            batches.close()  # stop the reader's threads now, not when the generator is collected
        stager.close()
    extraction.seconds = time.monotonic() - started
    if extraction.mismatches and fail_on_count_mismatch:
        raise RevCentCountMismatchError(
            f"{len(extraction.mismatches)} window(s) read a different number of {resource.name} than the API's "
            f"total_count: {'; '.join(extraction.mismatches)}. Nothing was loaded into the destination (those "
            "windows are read again by a retry). Set on_count_mismatch='warn' to load anyway."
        )
    return extraction


def _write_batch(batch: Any, index: int, *, files: WindowFiles, converter: RecordConverter, totals: dict[int, int],
                 extraction: Extraction, resource: Resource, log: Any) -> None:
    """Write a batch's items as rows of window ``index``'s files (the disk checked on a window's first page)."""
    writer = files.writer(index)
    _check_disk(index, batch.total_count, totals, files)
    if batch.repairs:
        _log_repairs(batch.repairs, extraction, resource, log)
    at = read_time_members(datetime.fromtimestamp(batch.received_at, UTC)) if batch.received_at else None
    for item in batch.customers:
        writer.write(converter.convert(item), at)
    files.note()


def _stage_what_was_read(stager: StageWorker, log: Any) -> None:
    """The read failed: stage the windows it finished before it is raised (a retry need not read them again)."""
    try:
        stager.drain()
    except Exception as late:  # the read's failure is the one raised
        log.warning("A window read before the failure could not be staged (a retry reads it again): %s", late)


def _stage_window(index: int, writer: NdjsonWriter, stats: WindowStats, reconciled: bool,
                  kinds: Mapping[str, set[str]], *, files: WindowFiles, tallies: dict[int, WindowTally], stage: Stage,
                  before_stage: BeforeStage | None) -> None:
    """On the staging thread: promote, count and stage one finished window, then remove its files."""
    if before_stage is not None:
        before_stage(writer, kinds)
        files.note()
    tally = tallies.setdefault(index, WindowTally())
    tally.add(writer)
    stage(index, writer.flush(), tally, stats, reconciled)
    files.release(writer)


def _check_disk(index: int, total_count: int | None, totals: dict[int, int], files: WindowFiles) -> None:
    if total_count is not None and totals.get(index) != total_count:
        # A window's first page says how many items it holds: check the disk for the windows in flight.
        totals[index] = total_count
        per_item = bytes_per_item(files.rows, files.bytes)
        rows = {i: w.rows for i, w in files.open.items()}
        open_bytes = files.bytes_on_disk
        needed = estimate_open_bytes(totals, rows, per_item=per_item) + open_bytes
        check_disk(files.directory, needed=needed, written=open_bytes)


def _log_repairs(repairs: Sequence[tuple[str, str]], extraction: Extraction, resource: Resource, log: Any) -> None:
    for item_id, path in repairs:
        if len(extraction.replaced_surrogates) < LOGGED_REPAIRS:
            log.warning(
                "%s %r: field %s held a lone surrogate (text cut inside a character, e.g. an emoji); "
                "it was stored as U+FFFD, the rest of the value intact.", item_noun(resource).capitalize(),
                item_id, path,
            )
        elif len(extraction.replaced_surrogates) == LOGGED_REPAIRS:
            log.warning("More values held lone surrogates; see replaced_surrogates in the summary.")
        extraction.replaced_surrogates.append((item_id, path))


def _reconcile(index: int, stats: WindowStats, extraction: Extraction, resource: Resource, log: Any) -> None:
    extraction.mismatch_by_window.pop(index, None)
    if stats.total_count is None or stats.distinct == stats.total_count:
        return
    message = (f"window {stats.window}: the API's total_count is {stats.total_count} but {stats.distinct} "
               f"distinct {resource.name} were read")
    extraction.mismatch_by_window[index] = message
    log.warning("Count mismatch: %s", message)


def _log_window(index: int, total: int, stats: WindowStats, rows: int, *, started: float, done: int,
                windows: int, resource: Resource, log: Any) -> None:
    elapsed = time.monotonic() - started
    left = elapsed / done * (windows - done)
    name = resource.name
    # Windows are read concurrently: the run's total includes items of windows still being read.
    log.info(
        "Window %d/%d %s done: %d %s from %d pages in %.1f s%s. Run so far: %d of %d windows done, "
        "%d %s from all windows, %.0f %s/s, about %.0f s left",
        index + 1, total, stats.window, stats.records, name, stats.requests, stats.seconds,
        f" ({stats.passes} passes: results shifted while paging)" if stats.passes > 1 else "",
        done, windows, rows, name, rows / elapsed if elapsed else 0.0, name, left,
    )
