"""The extract loop: windows read through the hook, each item shaped into a row and streamed to NDJSON.

The operator composes it (:class:`~airflow_revcent.transfers.revcent_to_bigquery.RevCentToBigQueryOperator`);
it holds no Airflow or BigQuery state, so any task that reads windows of a resource shares it. Each window
has its own files (:class:`~airflow_revcent.rows.ndjson.WindowFiles`), opened on its first row; when the
window finishes they are handed to ``stage`` (the operator loads them into the run's staging) and removed
at once, so local disk holds only the windows in flight. What the read found besides the rows (skipped
items, count mismatches, repaired values) comes back as an :class:`Extraction`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_revcent.api.paging import WindowStats
from airflow_revcent.api.windows import Window
from airflow_revcent.exceptions import RevCentCountMismatchError
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
#: whether its counts reconciled). Called before the files are removed.
Stage = Callable[[int, Sequence[Path], WindowTally, WindowStats, bool], None]


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
    before_stage: Callable[[NdjsonWriter], None] | None = None,
    indexes: Sequence[int] | None = None,
    total: int | None = None,
) -> Extraction:
    """Read ``windows`` of ``resource`` through ``hook``, write every new item as a row of its window's files,
    and stage each window as soon as it finishes.

    :param hook: a :class:`~airflow_revcent.hooks.revcent.RevCentHook` (its ``iter_pages``).
    :param resource: the list resource.
    :param windows: the windows to read.
    :param filters: validated filters (``to_params()``).
    :param converter: shapes an item into a row.
    :param files: the windows' files.
    :param stage: loads a finished window's files (see :data:`Stage`); they are removed right after.
    :param page_size: items per request.
    :param on_invalid_record: ``"keep"``: skip items without a usable key or creation time (counted) instead
        of failing (``"fail"``).
    :param fail_on_count_mismatch: fail (after the read, before anything is applied) when a window's distinct
        items differ from the API's ``total_count``; such a window is staged but not marked done.
    :param started: when the run started (``time.monotonic()``), for rates and estimates.
    :param log: where progress goes.
    :param before_stage: called with a finished window's writer before it is staged (promotion rewrites it).
    :param indexes: each window's index in the run (default: its position in ``windows``).
    :param total: windows in the run (default: ``len(windows)``).
    :raises RevCentCountMismatchError: counts differ and ``fail_on_count_mismatch``.
    """
    extraction = Extraction()
    indexes = list(range(len(windows))) if indexes is None else list(indexes)
    total = len(windows) if total is None else total
    finished: set[int] = set()
    totals: dict[int, int] = {}
    tallies: dict[int, WindowTally] = {}
    batches: Any = hook.iter_pages(windows, filters=filters, page_size=page_size, on_invalid_record=on_invalid_record,
                                   resource=resource)
    for batch in batches:
        index = indexes[batch.index]
        if batch.customers:
            writer = files.writer(index)
            _check_disk(index, batch.total_count, totals, files)
            if batch.repairs:
                _log_repairs(batch.repairs, extraction, resource, log)
            at = read_time_members(datetime.fromtimestamp(batch.received_at, UTC)) if batch.received_at else None
            for item in batch.customers:
                writer.write(converter.convert(item), at)
            files.note()
        if batch.finished:
            finished.add(index)
            extraction.skipped_by_window[index] = batch.finished.skipped
            _reconcile(index, batch.finished, extraction, resource, log)
            writer = files.writer(index)
            if before_stage is not None:
                before_stage(writer)
            files.note()
            tally = tallies.setdefault(index, WindowTally())
            tally.add(writer)
            stage(index, writer.flush(), tally, batch.finished,
                  not (fail_on_count_mismatch and index in extraction.mismatch_by_window))
            files.close(index)
            totals.pop(index, None)
            _log_window(index, total, batch.finished, files.rows, started=started, done=len(finished),
                        windows=len(windows), resource=resource, log=log)
    extraction.seconds = time.monotonic() - started
    if extraction.mismatches and fail_on_count_mismatch:
        raise RevCentCountMismatchError(
            f"{len(extraction.mismatches)} window(s) read a different number of {resource.name} than the API's "
            f"total_count: {'; '.join(extraction.mismatches)}. Nothing was loaded into the destination (those "
            "windows are read again by a retry). Set on_count_mismatch='warn' to load anyway."
        )
    return extraction


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
