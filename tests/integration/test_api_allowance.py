"""One RevCent account's allowance shared by tasks that run at once, through an Airflow pool's slots."""

from __future__ import annotations

import json
import threading
import time

from revcent_sandbox import CustomerStore

from .conftest import API_KEY, run_operator, unix

RATE = 10.0
SLOTS = 2


def test_two_tasks_at_once_stay_within_the_account_rate(sandbox, bigquery_server, monkeypatch, table_name):
    store = CustomerStore(seed=71, count=2400, start=unix(2026, 1, 1), end=unix(2026, 3, 1))
    server = sandbox(store, rate_limit=RATE)
    # The account's allowance on the connection; the pool (API_POOL, SLOTS slots) lets SLOTS tasks run at once.
    monkeypatch.setenv("AIRFLOW_CONN_REVCENT_DEFAULT", json.dumps(
        {"conn_type": "revcent", "host": server.url, "password": API_KEY,
         "extra": {"account_requests_per_second": RATE, "account_pool_slots": SLOTS, "max_concurrency": 4}}))
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", bigquery_server.connection_uri_json())
    time.sleep(1.1)  # a full bucket, as after any idle second
    errors: list[BaseException] = []
    summaries: list[dict] = []

    def task(name: str, start: str, end: str) -> None:
        try:
            summaries.append(run_operator(run_id=name, destination_table=f"{table_name}_{name}", date_start=start,
                                          date_end=end))
        except BaseException as exc:
            errors.append(exc)

    began = time.monotonic()
    threads = [threading.Thread(target=task, args=("a", "2026-01-01", "2026-01-31")),
               threading.Thread(target=task, args=("b", "2026-01-31", "2026-03-01"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    elapsed = time.monotonic() - began
    assert not errors, errors
    stats = server.stats
    requests = sum(s["requests"] for s in summaries)
    assert requests >= 90  # long enough that the bucket's first burst does not decide the outcome
    rate = stats.requests / elapsed
    print(f"{stats.requests} requests in {elapsed:.1f} s = {rate:.2f}/s for R={RATE}; {stats.rate_limited} got 429")
    assert rate <= RATE * 1.05
    assert stats.rate_limited < 0.02 * stats.requests

