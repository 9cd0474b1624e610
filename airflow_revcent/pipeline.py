"""The extract loop: windows read through the hook, each item shaped into a row and streamed to NDJSON.

The operator composes it (:class:`~airflow_revcent.transfers.revcent_to_bigquery.RevCentToBigQueryOperator`);
it holds no Airflow or BigQuery state, so any task that reads windows of a resource shares it. What the
read found besides the rows (skipped items, count mismatches, repaired values) comes back as an
:class:`Extraction`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_revcent.exceptions import RevCentCountMismatchError
from airflow_revcent.ndjson import NdjsonWriter, check_disk, estimate_run_bytes, read_time_members
from airflow_revcent.paging import WindowStats
from airflow_revcent.records import InvalidPolicy, RecordConverter
from airflow_revcent.resources import Resource
from airflow_revcent.windows import Window

if TYPE_CHECKING:
    from airflow_revcent.api.reader import WindowBatch

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
    writer: NdjsonWriter,
    page_size: int,
    on_invalid_record: InvalidPolicy,
    fail_on_count_mismatch: bool,
    started: float,
    log: logging.Logger | Any,
) -> Extraction:
    """Read ``windows`` of ``resource`` through ``hook`` and write every new item as a row.

    :param hook: a :class:`~airflow_revcent.hooks.revcent.RevCentHook` (its ``iter_pages``).
    :param resource: the list resource.
    :param windows: the windows to read.
    :param filters: validated filters (``to_params()``).
    :param converter: shapes an item into a row.
    :param writer: where rows go.
    :param page_size: items per request.
    :param on_invalid_record: ``"keep"``: skip items without a usable key or creation time (counted) instead
        of failing (``"fail"``).
    :param fail_on_count_mismatch: fail before anything is loaded when a window's distinct items differ
        from the API's ``total_count``.
    :param started: when the run started (``time.monotonic()``), for rates and estimates.
    :param log: where progress goes.
    :raises RevCentCountMismatchError: counts differ and ``fail_on_count_mismatch``.
    """
    extraction = Extraction()
    finished: set[int] = set()
    totals: dict[int, int] = {}
    days = [(w.end - w.start) / 86400 for w in windows]
    batches: Any = hook.iter_pages(windows, filters=filters, page_size=page_size, on_invalid_record=on_invalid_record,
                                   resource=resource)
    for batch in batches:
        _check_disk(batch, totals, days, writer)
        if batch.repairs:
            _log_repairs(batch.repairs, extraction, resource, log)
        read_at = read_time_members(datetime.fromtimestamp(batch.received_at, UTC)) if batch.received_at else None
        for item in batch.customers:
            writer.write(converter.convert(item), read_at)
        if batch.finished:
            finished.add(batch.index)
            extraction.skipped_by_window[batch.index] = batch.finished.skipped
            _reconcile(batch.index, batch.finished, extraction, resource, log)
            _log_window(batch.index, len(windows), batch.finished, writer.rows, started=started,
                        done=len(finished), resource=resource, log=log)
    extraction.seconds = time.monotonic() - started
    if extraction.mismatches and fail_on_count_mismatch:
        raise RevCentCountMismatchError(
            f"{len(extraction.mismatches)} window(s) read a different number of {resource.name} than the API's "
            f"total_count: {'; '.join(extraction.mismatches)}. Nothing was loaded. Set "
            "on_count_mismatch='warn' to load anyway."
        )
    return extraction


def _check_disk(batch: WindowBatch, totals: dict[int, int], days: list[float], writer: NdjsonWriter) -> None:
    if batch.total_count is not None and totals.get(batch.index) != batch.total_count:
        # A window's first page says how many items it holds: check the disk before reading on.
        totals[batch.index] = batch.total_count
        check_disk(writer.folder, needed=estimate_run_bytes(days, totals, rows=writer.rows, written=writer.bytes),
                   written=writer.bytes)


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
                resource: Resource, log: Any) -> None:
    elapsed = time.monotonic() - started
    left = elapsed / done * (total - done)
    name = resource.name
    # Windows are read concurrently: the run's total includes items of windows still being read.
    log.info(
        "Window %d/%d %s done: %d %s from %d pages in %.1f s%s. Run so far: %d of %d windows done, "
        "%d %s from all windows, %.0f %s/s, about %.0f s left",
        index + 1, total, stats.window, stats.records, name, stats.requests, stats.seconds,
        f" ({stats.passes} passes: results shifted while paging)" if stats.passes > 1 else "",
        done, total, rows, name, rows / elapsed if elapsed else 0.0, name, left,
    )
