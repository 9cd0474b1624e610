"""A hostile API. Each fault alone and mixed; the table must equal the sandbox's truth.

Every test here also checks that the API key appears in no captured output, no exception and no
XCom summary (the `no_key_in_output` fixture).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest

from airflow_revcent.exceptions import RevCentRetryBudgetExceeded, RevCentWindowUnsettledError
from revcent_sandbox import CustomerStore, FaultPlan

from .conftest import API_KEY, run_operator, unix
from .truth import assert_table_matches, table_rows

START, END = unix(2026, 3, 1), unix(2026, 5, 1)
FAST_RETRIES = {"retry_initial_backoff": 0.05, "retry_max_attempts": 8, "read_timeout": 1.0}


@pytest.fixture(autouse=True)
def no_key_in_output(capsys, caplog):
    yield
    captured = capsys.readouterr()
    for text in (captured.out, captured.err, caplog.text):
        assert API_KEY not in text


@pytest.fixture
def store() -> CustomerStore:
    return CustomerStore(seed=31, count=250, start=START, end=END)


def load(table_name: str, **kwargs: Any) -> dict:
    summary = run_operator(destination_table=table_name, date_start="2026-03-01", date_end="2026-05-01",
                           window_size=timedelta(days=20), **kwargs)
    assert API_KEY not in json.dumps(summary)
    return summary


@pytest.mark.parametrize("kind", ["429", "429_no_retry_after", "500", "502", "503", "504", "code0", "truncated",
                                  "reset", "hang", "slow"])
def test_each_fault_alone_still_lands_exactly(kind, store, sandbox, connections, bq_client, table_name):
    plan = FaultPlan(seed=7, rates={kind: 0.35}, max_faults_per_request=2, hang_seconds=2.5, slow_ms=300)
    server = sandbox(store, faults=plan)
    connections(server, **FAST_RETRIES)
    load(table_name)
    assert server.stats.faults.get(kind, 0) >= 1, "the fault was injected"
    assert_table_matches(bq_client, table_name, store.truth(START, END))


def test_all_faults_mixed_with_latency_land_exactly(sandbox, connections, bq_client, table_name):
    store = CustomerStore(seed=32, count=900, start=START, end=END)
    plan = FaultPlan.mixed(seed=11, rate=0.4, max_faults_per_request=3, slow_ms=200)
    server = sandbox(store, faults=plan, latency_ms=10, jitter_ms=10)
    connections(server, **FAST_RETRIES)
    load(table_name)
    assert len(server.stats.faults) >= 6, server.stats.faults
    assert_table_matches(bq_client, table_name, store.truth(START, END))


def test_pages_shifting_during_extraction_end_with_every_customer_once(store, sandbox, connections, bq_client,
                                                                       table_name):
    plan = FaultPlan(seed=3, rates={"shift": 0.3}, shift_size=4, max_shifts=4)
    server = sandbox(store, faults=plan, latency_ms=5, order="desc")
    connections(server, **FAST_RETRIES)
    before = len(store.truth(START, END))
    summary = load(table_name)
    after = store.truth(START, END)
    assert len(after) > before, "customers were created during extraction"
    assert_table_matches(bq_client, table_name, after)
    assert summary["records_loaded"] == len(after)


def test_a_window_that_never_settles_fails_and_changes_nothing(store, sandbox, connections, bq_client, table_name):
    load_ok = sandbox(store)
    connections(load_ok)
    load(table_name)
    before = sorted(table_rows(bq_client, table_name), key=lambda r: r["id"])
    endless = sandbox(store, faults=FaultPlan(seed=1, rates={"shift": 1.0}, shift_size=3, max_shifts=None))
    connections(endless, **FAST_RETRIES)
    with pytest.raises(RevCentWindowUnsettledError, match=r"Window \[.*\) did not settle after 5 passes") as info:
        load(table_name)
    assert API_KEY not in str(info.value)
    assert sorted(table_rows(bq_client, table_name), key=lambda r: r["id"]) == before


def test_spent_retry_budget_names_window_page_attempts_and_last_error(store, sandbox, connections, bq_client,
                                                                      table_name):
    plan = FaultPlan(seed=2, rates={"502": 1.0}, max_faults_per_request=100)
    connections(sandbox(store, faults=plan), retry_initial_backoff=0.01, retry_max_attempts=3)
    with pytest.raises(RevCentRetryBudgetExceeded) as info:
        load(table_name)
    message = str(info.value)
    assert re.search(r"the window \[2026-\d\d-\d\dT00:00:00Z, 2026-\d\d-\d\dT00:00:00Z\), page 1 ", message)
    assert "after 3 attempts" in message and "HTTP 502" in message and "retry_max_attempts" in message
    assert API_KEY not in message
    assert table_rows(bq_client, table_name) == []


def test_time_budget_stops_retries_early(store, sandbox, connections, table_name):
    plan = FaultPlan(seed=2, rates={"503": 1.0}, max_faults_per_request=100)
    connections(sandbox(store, faults=plan), retry_initial_backoff=1.0, retry_max_attempts=50,
                retry_max_seconds=2)
    with pytest.raises(RevCentRetryBudgetExceeded, match=r"budget: 50 attempts, 2 s"):
        load(table_name)


def test_unknown_fields_are_kept_and_reported(store, sandbox, connections, bq_client, table_name):
    changed = set(store.add_unknown_fields(0.3, seed=4))
    connections(sandbox(store))
    summary = load(table_name)
    assert summary["unknown_fields"], summary
    rows = {r["id"]: r for r in assert_table_matches(bq_client, table_name, store.truth(START, END))}
    in_range = changed & set(rows)
    assert in_range and all(rows[i]["_unknown_fields"] for i in in_range)
