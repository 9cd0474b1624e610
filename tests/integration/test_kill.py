"""A worker killed (SIGKILL) during extraction, the load job or the final MERGE, then retried."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_revcent.rows.ndjson import sweep_stale_dirs
from revcent_sandbox import CustomerStore

from .conftest import run_operator, unix
from .truth import assert_table_matches, table_rows

ROOT = Path(__file__).resolve().parents[2]
START, END = unix(2026, 6, 1), unix(2026, 8, 1)
RUN_ID = "scheduled__2026-08-01"
ARGS = {"date_start": "2026-06-01", "date_end": "2026-08-01"}


def start_child(table: str, tmp: Path) -> subprocess.Popen[str]:
    config = {"run_id": RUN_ID, "operator": {"destination_table": table, **ARGS}}
    env = dict(os.environ, TMPDIR=str(tmp))
    return subprocess.Popen([sys.executable, "-m", "tests.integration._child", json.dumps(config)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_when(child: subprocess.Popen[str], condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert child.poll() is None, f"the task ended before the kill point:\n{child.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, "kill point never reached"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()


@pytest.fixture
def store() -> CustomerStore:
    return CustomerStore(seed=41, count=700, start=START, end=END)


def staging_tables(bq_client, table_name: str) -> list:
    from google.api_core.exceptions import NotFound

    short = table_name.split(".")[1]
    try:
        tables = list(bq_client.list_tables("demo.revcent_it"))
    except NotFound:  # the run has not created the dataset yet (this test running first)
        return []
    return [t for t in tables if t.table_id.startswith(f"_revcent_staging_{short}_")]


def merge_jobs(bq_client) -> list[str]:
    return [j.job_id for j in bq_client.list_jobs(max_results=200) if j.job_id.startswith("revcent_apply_")]


def test_killed_during_extraction_then_retried(store, sandbox, connections, bq_client, table_name, tmp_path):
    server = sandbox(store, latency_ms=60)
    connections(server, max_concurrency=2)
    child = start_child(table_name, tmp_path)
    kill_when(child, lambda: server.stats.list_requests >= 5)
    assert table_rows(bq_client, table_name) == []  # nothing was applied
    leftovers = list(tmp_path.glob("airflow-revcent-*"))
    assert leftovers and (leftovers[0] / "owner.pid").exists()
    assert sweep_stale_dirs(str(tmp_path), older_than=0) == [str(p) for p in leftovers]  # owner is dead
    run_operator(run_id=RUN_ID, destination_table=table_name, **ARGS)
    assert_table_matches(bq_client, table_name, store.truth(START, END))


def test_killed_during_the_load_job_then_retried(store, sandbox, connections, bq_client, table_name, tmp_path):
    connections(sandbox(store))
    child = start_child(table_name, tmp_path)
    kill_when(child, lambda: bool(staging_tables(bq_client, table_name)))
    # Killed once its staging table exists: usually during the load job, but on a busy machine the child may
    # have submitted its transaction first, which BigQuery then runs to the end. All or nothing, never part.
    rows = table_rows(bq_client, table_name)
    assert rows == [] or len(rows) == len(store.truth(START, END))
    staging = staging_tables(bq_client, table_name)
    assert staging and staging[0].expires is not None  # it expires on its own
    summary = run_operator(run_id=RUN_ID, destination_table=table_name, **ARGS)
    assert_table_matches(bq_client, table_name, store.truth(START, END))
    assert summary["rows_inserted"] == len(store.truth(START, END))
    assert staging_tables(bq_client, table_name) == []  # the retry dropped it (applied it, or found it applied)


def test_killed_during_the_merge_then_retried_applies_it_once(store, sandbox, connections, bq_client, table_name,
                                                              tmp_path):
    connections(sandbox(store))
    known = set(merge_jobs(bq_client))
    child = start_child(table_name, tmp_path)
    kill_when(child, lambda: bool(set(merge_jobs(bq_client)) - known))
    rows = table_rows(bq_client, table_name)
    assert rows == [] or len(rows) == len(store.truth(START, END))  # all or nothing, never part
    summary = run_operator(run_id=RUN_ID, destination_table=table_name, **ARGS)
    assert summary["already_applied"] is True
    assert set(summary["bigquery_job_ids"]) <= set(merge_jobs(bq_client))
    assert_table_matches(bq_client, table_name, store.truth(START, END))


def test_a_retry_after_success_does_not_apply_the_merge_twice(store, sandbox, connections, bq_client, table_name):
    connections(sandbox(store))
    first = run_operator(run_id=RUN_ID, destination_table=table_name, **ARGS)
    rows = sorted(table_rows(bq_client, table_name), key=lambda r: r["id"])
    again = run_operator(run_id=RUN_ID, destination_table=table_name, **ARGS)
    assert again["already_applied"] is True
    assert again["bigquery_job_ids"] == [first["bigquery_job_ids"][-1]]
    assert sorted(table_rows(bq_client, table_name), key=lambda r: r["id"]) == rows
