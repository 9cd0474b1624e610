"""Issue 19: a retry of the same run resumes where the failed attempt stopped (the windows it staged are not read
again), a zombie attempt beside its retry leaves the table exact, a cleared task reads and applies again, a
marker of a recreated staging table is ignored, and local disk holds only the windows in flight."""

from __future__ import annotations

import math
import threading
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_revcent.api.windows import GUARD_SECONDS, Interval, split_windows
from airflow_revcent.exceptions import RevCentRetryBudgetExceeded
from airflow_revcent.hooks.revcent import RevCentHook
from airflow_revcent.transfers.customers_to_bigquery import CustomersToBigQueryOperator
from revcent_sandbox import CustomerStore

from .conftest import unix
from .truth import assert_table_matches

START, END = unix(2026, 1, 1), unix(2026, 3, 5)  # 63 days: 9 windows of 7 days
ARGS: dict[str, Any] = {"date_start": "2026-01-01", "date_end": "2026-03-05", "window_size": timedelta(days=7)}
RUN_ID = "scheduled__2026-03-05"
PAGE = 25


@pytest.fixture
def store() -> CustomerStore:
    return CustomerStore(seed=19, count=1500, start=START, end=END)


class Requests:
    """Every page request by attempt (the hook's ``attempt`` tag), and an outage that fails an attempt after
    ``fail_after[attempt]`` requests, as a spent retry budget does (a retryable task failure)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: dict[int, list[tuple[int, int]]] = {}
        self.fail_after: dict[int, int] = {}

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = RevCentHook.get_page
        requests = self

        def get_page(hook: Any, path: str, date_start: int, date_end: int, page: int, **kwargs: Any) -> Any:
            attempt = getattr(hook, "attempt", 0)
            with requests.lock:
                sent = requests.sent.setdefault(attempt, [])
                if len(sent) >= requests.fail_after.get(attempt, 1 << 30):
                    raise RevCentRetryBudgetExceeded(f"window starting {date_start}, page {page}: injected outage")
                sent.append((date_start, page))
            return original(hook, path, date_start, date_end, page, **kwargs)

        monkeypatch.setattr(RevCentHook, "get_page", get_page)


@pytest.fixture
def requests(store, sandbox, connections, monkeypatch) -> Requests:
    connections(sandbox(store), max_concurrency=4)
    recorder = Requests()
    recorder.install(monkeypatch)
    return recorder


def operator(table: str, attempt: int, **kwargs: Any) -> CustomersToBigQueryOperator:
    op = CustomersToBigQueryOperator(task_id="customers_to_bigquery", destination_table=table, **{**ARGS, **kwargs})
    op.revcent_hook.attempt = attempt  # type: ignore[attr-defined]  # the Requests tag
    return op


def run(op: CustomersToBigQueryOperator, attempt: int, run_id: str = RUN_ID) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="it", task_id=op.task_id, map_index=-1, try_number=attempt)
    context: Any = {"run_id": run_id, "ti": ti}  # a plain dict stands in for Airflow's Context
    return op.execute(context)


def pages_of(store: CustomerStore, window_start: int, window_end: int) -> int:
    """Pages one pass of a window takes (its request covers one guard second before it)."""
    return max(1, math.ceil(len(store.truth(window_start - GUARD_SECONDS, window_end + 1)) / PAGE))


def test_a_retry_reads_only_the_windows_the_failed_attempt_did_not_stage(store, requests, bq_client, table_name,
                                                                         record_property):
    first = operator(table_name, 1)
    windows = [(w.start, w.end) for w in split_windows(Interval(START, END), timedelta(days=7))]
    assert len(windows) >= 8
    total_pages = sum(pages_of(store, a, b) for a, b in windows)
    requests.fail_after[1] = int(total_pages * 0.8)
    with pytest.raises(RevCentRetryBudgetExceeded, match="injected outage"):
        run(first, 1)
    summary = run(operator(table_name, 2), 2)
    first_sent, second_sent = requests.sent[1], requests.sent[2]
    read_again = {start + GUARD_SECONDS for start, _ in second_sent}
    # Attempt 1 staged most windows before it failed; attempt 2 asked only for the others' pages (and one
    # verification request per window it read, at the end of its read).
    assert len(read_again) <= len(windows) // 2
    assert len(second_sent) <= sum(pages_of(store, a, b) + 1 for a, b in windows if a in read_again)
    assert summary["records_loaded"] == len(store.truth(START, END)) == summary["rows_inserted"]
    assert summary["windows"] == len(windows) and not summary["already_applied"]
    assert_table_matches(bq_client, table_name, store.truth(START, END))
    ratio = len(second_sent) / len(first_sent)
    record_property("resume_requests", f"{len(first_sent)} then {len(second_sent)} (ratio {ratio:.2f})")
    print(f"\nresume: attempt 1 sent {len(first_sent)} requests ({total_pages} pages in the run), attempt 2 sent "
          f"{len(second_sent)} for {len(read_again)} of {len(windows)} windows: ratio {ratio:.2f}")
    assert ratio < 0.5


def test_a_zombie_attempt_beside_its_retry_leaves_the_table_exact(store, requests, bq_client, table_name):
    errors: dict[int, BaseException] = {}
    results: dict[int, dict[str, Any]] = {}
    started = threading.Event()

    def attempt(n: int) -> None:
        try:
            op = operator(table_name, n)
            if n == 2:
                started.wait(timeout=120)  # the retry starts while the zombie is part-way through its windows
            results[n] = run(op, n)
        except BaseException as exc:
            errors[n] = exc

    zombie = threading.Thread(target=attempt, args=(1,))
    retry = threading.Thread(target=attempt, args=(2,))
    zombie.start()
    retry.start()
    while zombie.is_alive() and len(requests.sent.get(1, [])) < 40:
        zombie.join(timeout=0.05)
    started.set()
    zombie.join(timeout=600)
    retry.join(timeout=600)
    assert 2 not in errors, errors
    assert_table_matches(bq_client, table_name, store.truth(START, END))
    # The zombie may finish too, or find the run applied; it never fails in a way that leaves anything behind.
    assert set(errors) <= {1}
    assert not [t for t in bq_client.list_tables("demo.revcent_it")
                if t.table_id.startswith(f"_revcent_staging_{table_name.split('.')[1]}_")]


def test_a_cleared_task_reads_again_and_applies_its_new_reads(store, requests, bq_client, table_name):
    first = run(operator(table_name, 1), 1)
    assert first["rows_inserted"] == len(store.truth(START, END))
    changed = store.mutate(0.3, seed=5)
    again = run(operator(table_name, 2), 2)  # cleared: the same run, the next try
    assert not again["already_applied"] and again["rows_updated"] == len(
        [c for c in store.truth(START, END) if c["id"] in set(changed)])
    assert len(requests.sent[2]) >= len(requests.sent[1]) - 9  # everything read again (markers went with success)
    assert_table_matches(bq_client, table_name, store.truth(START, END))


def test_markers_of_a_recreated_staging_table_are_ignored(store, requests, bq_client, table_name):
    first = operator(table_name, 1)
    requests.fail_after[1] = 40
    with pytest.raises(RevCentRetryBudgetExceeded):
        run(first, 1)
    short = table_name.split(".")[1]
    tables = [t.table_id for t in bq_client.list_tables("demo.revcent_it")
              if t.table_id.startswith(f"_revcent_staging_{short}_")]
    [staging] = [t for t in tables if "_w" not in t[len(f"_revcent_staging_{short}_"):]]
    assert any(t.startswith(f"{staging}_w") for t in tables)  # attempt 1 marked some windows
    bq_client.delete_table(f"demo.revcent_it.{staging}")  # expired (or dropped by hand): its rows are gone
    summary = run(operator(table_name, 2), 2)
    read_again = {start for start, _ in requests.sent[2]}
    assert len(read_again) == summary["windows"]  # every window read again: the old markers did not count
    assert_table_matches(bq_client, table_name, store.truth(START, END))


def test_peak_local_disk_is_bounded_by_the_windows_in_flight(store, sandbox, connections, bq_client, table_name):
    connections(sandbox(store), max_concurrency=2)
    op = operator(table_name, 1, max_file_bytes=200_000)
    summary = run(op, 1)
    files = op._files
    assert files is not None and summary["windows"] >= 4
    # At most max_concurrency windows are open at once, and the files of a window are gone once it is staged:
    # the peak is a few windows' files, not the run's.
    assert files.peak_windows <= 2
    per_window = files.bytes / summary["windows"]
    assert 0 < files.peak_bytes <= 3 * per_window * 1.5 and files.peak_bytes < files.bytes / 2
    assert summary["peak_disk_bytes"] == files.peak_bytes
    assert_table_matches(bq_client, table_name, store.truth(START, END))
