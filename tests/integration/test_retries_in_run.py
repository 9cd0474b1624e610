"""Airflow retries a task inside the same run: after some of its load jobs finished, with pages arriving in
another order, and with the earlier attempt still running beside the retry (a zombie)."""

from __future__ import annotations

import itertools
import json
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_revcent.exceptions import RevCentBigQueryError
from revcent_sandbox import CustomerStore

from . import bqproxy
from .conftest import API_KEY, run_operator, unix
from .truth import assert_table_matches

START, END = unix(2026, 3, 1), unix(2026, 3, 20)
ARGS: dict[str, Any] = {"date_start": "2026-03-01", "date_end": "2026-03-20", "max_file_bytes": 60_000}


def _ti(try_number: int) -> Any:
    return SimpleNamespace(dag_id="it", task_id="customers_to_bigquery", map_index=-1, try_number=try_number)


@pytest.fixture
def store() -> CustomerStore:
    return CustomerStore(seed=37, count=300, start=START, end=END)


@pytest.fixture
def pointed(store, sandbox, bq_proxy, bigquery_server, monkeypatch):
    # Latency jitter with several requests in flight: each attempt receives the pages in another order.
    server = sandbox(store, latency_ms=10, jitter_ms=60)
    monkeypatch.setenv("AIRFLOW_CONN_REVCENT_DEFAULT", json.dumps(
        {"conn_type": "revcent", "host": server.url, "password": API_KEY,
         "extra": {"max_requests_per_second": 0, "max_concurrency": 6}}))
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(
        {"conn_type": "google_cloud_platform",
         "extra": {"project": bigquery_server.project, "api_endpoint": bq_proxy.url, "is_anonymous": True}}))
    return bq_proxy.client(bigquery_server.project)


def _is_load(body: Any) -> bool:
    return isinstance(body, dict) and "load" in body.get("configuration", {})


def test_a_retry_after_some_load_jobs_finished_loads_exactly_its_own_rows(store, pointed, bq_proxy, table_name):
    loads = itertools.count()
    bq_proxy.add_fault(bqproxy.job_failed("invalid", "Error while reading data (injected)", first=None,
                                          when=lambda body: _is_load(body) and next(loads) == 2))
    with pytest.raises(RevCentBigQueryError, match="BigQuery job revcent_load_it__customers_to_bigquery_"):
        run_operator(destination_table=table_name, context={"ti": _ti(1)}, **ARGS)
    first = [j["job_id"] for j in bq_proxy.load_jobs()]
    assert len(first) == 3  # two finished, the third failed: the attempt failed after part of its loads
    summary = run_operator(destination_table=table_name, context={"ti": _ti(2)}, **ARGS)
    second = [j["job_id"] for j in bq_proxy.load_jobs()][3:]
    assert len(second) >= 3 and not set(second) & set(first)  # nothing of attempt 1 was reused
    # Staging belongs to the run (issue 19): the retry appends to the table attempt 1 loaded part of its window
    # into, and the apply keeps one row per customer (the latest read).
    assert {j["destination"]["tableId"] for j in bq_proxy.load_jobs()} == {
        bq_proxy.load_jobs()[0]["destination"]["tableId"]}
    assert summary["records_loaded"] == len(store.truth(START, END)) == summary["rows_inserted"]
    assert_table_matches(pointed, table_name, store.truth(START, END))


def test_a_zombie_attempt_beside_its_retry_leaves_each_customer_once(store, pointed, table_name):
    errors: list[BaseException] = []

    def attempt(n: int) -> None:
        try:
            run_operator(destination_table=table_name, context={"ti": _ti(n)}, **ARGS)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors
    assert_table_matches(pointed, table_name, store.truth(START, END))
