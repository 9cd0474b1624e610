"""RevCentToBigQueryTaskGroup for real: under `airflow dags test` and under the scheduler (`airflow standalone`,
LocalExecutor, SQLite), against the sandbox and the local BigQuery-API server. Two years of customers in at
least 8 windows; the table is exact; a window whose reads fail is retried alone and no other window is read
again (the sandbox's request log); every XCom value is small (the metadata database). The structure without
servers: tests/unit/transfers/test_task_group.py."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from revcent_sandbox import CustomerStore, FaultPlan

from .conftest import API_KEY, unix
from .test_backfill import _free_port, airflow, runs, standalone, wait_for
from .truth import assert_table_matches

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SINCE, UNTIL = unix(2024, 1, 1), unix(2026, 1, 1)
#: The most one XCom value may take: a plan, a window, counts; never rows or paths.
SMALL = 4096
DAG_ID = "revcent_group_history"
#: The test DAG: the group over two years in 60-day windows (13 windows), window retries after a second.
DAG_FILE = '''
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_revcent.transfers.revcent_to_bigquery import RevCentToBigQueryTaskGroup

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2020, 1, 1, tz="UTC"), catchup=False):
    RevCentToBigQueryTaskGroup(
        group_id="history", resource="customers", destination_table="{{{{ var.value.group_table }}}}",
        date_start="{{{{ dag_run.conf['since'] }}}}", date_end="{{{{ dag_run.conf['until'] }}}}",
        window_size=timedelta(days=60), retries=2, retry_delay=timedelta(seconds=1),
    )
'''


class RequestLog(FaultPlan):
    """The sandbox's fault plan as a request log: every customers request's key, in order; the requests of
    the one window that contains ``fail_at`` answer HTTP 500 ``failures`` times (page 1 first), so its task
    exhausts its request budget once and fails."""

    def __init__(self, fail_at: int | None = None, failures: int = 0) -> None:
        super().__init__(seed=0)
        #: The list requests' keys (pages), and how many times the document was read.
        self.keys: list[str] = []
        self.documents = 0
        self.fail_at, self.failures = fail_at, failures
        self._log_lock = threading.Lock()

    def decide(self, request_key: str) -> str | None:
        if "date_start=" not in request_key:  # the OpenAPI document, which every task reads once
            with self._log_lock:
                self.documents += 1
            return None
        with self._log_lock:
            self.keys.append(request_key)
            if self.failures and self.fail_at is not None and _contains(request_key, self.fail_at):
                self.failures -= 1
                return "500"
        return None


def _range(key: str) -> tuple[int, int]:
    query = parse_qs(key)
    return int(query["date_start"][0]), int(query["date_end"][0])


def _contains(key: str, instant: int) -> bool:
    start, end = _range(key)
    return start <= instant <= end


def _window_of(key: str, windows: list[tuple[int, int]]) -> int:
    start, end = _range(key)
    middle = (start + end) // 2
    return next(i for i, (lo, hi) in enumerate(windows) if lo <= middle < hi)


def _env(home: Path, dags: Path, server_url: str, bigquery_server: Any, retries: int = 2) -> dict[str, str]:
    # Nothing inherited from the test session's Airflow: a fresh home and DAGs folder.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "REVCENT"))}
    extra = {"max_concurrency": 4, "max_requests_per_second": 0, "retry_max_attempts": retries,
             "retry_initial_backoff": 0.05}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_REVCENT_DEFAULT": json.dumps({"conn_type": "revcent", "host": server_url, "password": API_KEY,
                                                    "extra": extra}),
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": bigquery_server.connection_uri_json(),
    })
    return env


def _xcoms(home: Path, dag_id: str) -> list[tuple[str, int, str, int, Any]]:
    """(task_id, map_index, key, size in bytes, value) of every XCom the run left in the metadata database."""
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute("SELECT task_id, map_index, key, value FROM xcom WHERE dag_id = ?", (dag_id,)).fetchall()
    out = []
    for task_id, map_index, key, value in rows:
        text = value.decode() if isinstance(value, bytes) else str(value)
        out.append((task_id, map_index, key, len(text.encode()), json.loads(text)))
    return out


def _tries(home: Path, dag_id: str, task_id: str) -> dict[int, tuple[str, int]]:
    """map_index -> (state, try_number) of a task's instances."""
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute("SELECT map_index, state, try_number FROM task_instance WHERE dag_id = ? AND task_id = ?",
                          (dag_id, task_id)).fetchall()
    return {m: (s, t) for m, s, t in rows}


def _assert_small_xcoms(home: Path, dag_id: str, group: str, windows: int) -> dict[tuple[str, int, str], Any]:
    xcoms = _xcoms(home, dag_id)
    assert xcoms, "the run left no XCom"
    too_big = [(t, m, k, size) for t, m, k, size, _ in xcoms if size > SMALL]
    assert not too_big, f"XCom values over {SMALL} bytes: {too_big}"
    values = {(t, m, k): v for t, m, k, _, v in xcoms}
    items = values[(f"{group}.plan", -1, "return_value")]
    assert [item["index"] for item in items] == list(range(windows))
    plan = values[(f"{group}.plan", -1, "plan")]
    assert len(plan["windows"]) == windows and plan["run_key"]
    counts = [v for (t, _, k), v in values.items() if t == f"{group}.windows" and k == "return_value"]
    assert len(counts) == windows and all(set(c) >= {"rows", "requests"} for c in counts)
    return values


def _write_dag(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{DAG_ID}.py").write_text(textwrap.dedent(DAG_FILE.format(dag_id=DAG_ID)))
    return folder


def _windows(step_days: int) -> list[tuple[int, int]]:
    step = step_days * 86_400
    return [(lo, min(lo + step, UNTIL)) for lo in range(SINCE, UNTIL, step)]


def _assert_retried_alone(log: RequestLog, windows: list[tuple[int, int]], failed: int, tries: dict[int, Any]) -> None:
    by_window: dict[int, Counter[str]] = {}
    for key in log.keys:
        by_window.setdefault(_window_of(key, windows), Counter())[key] += 1
    assert set(by_window) == set(range(len(windows))), "every window was read"
    for index, counted in by_window.items():
        if index == failed:
            assert max(counted.values()) >= 2, "the failing window was read again by its retry"
            continue
        again = {key: n for key, n in counted.items() if n > 1}
        assert not again, f"window {index} was read again: {again}"
    assert tries[failed] == ("success", 2), tries
    assert all(tries[i] == ("success", 1) for i in tries if i != failed), tries


@pytest.fixture(scope="module")
def store() -> CustomerStore:
    return CustomerStore(seed=19, count=1500, start=unix(2023, 11, 1), end=unix(2026, 2, 1))


@pytest.mark.timeout(600)
def test_the_full_history_sample_loads_two_years_under_dags_test(tmp_path, store, sandbox, bigquery_server,
                                                                 bq_client):
    log = RequestLog()
    server = sandbox(store, faults=log)
    env = _env(tmp_path / "airflow", ROOT / "dags", server.url, bigquery_server)
    env["AIRFLOW_VAR_REVCENT_DATASET"] = "revcent_group_sample"
    assert airflow(env, "db", "migrate", timeout=300).returncode == 0
    started = time.monotonic()
    result = airflow(env, "dags", "test", "revcent_full_history", "-c",
                     json.dumps({"since": "2024-01-01", "until": "2026-01-01"}), timeout=500)
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert API_KEY not in output
    print(f"airflow dags test revcent_full_history, two years: {seconds:.1f} s", flush=True)
    windows = _windows(89)  # the default window_size
    assert len(windows) >= 8
    assert_table_matches(bq_client, "revcent_group_sample.customers", store.truth(SINCE, UNTIL))
    _assert_small_xcoms(tmp_path / "airflow", "revcent_full_history", "customers_history", len(windows))
    # The other resources' groups were skipped by the branch, apply included.
    tries = _tries(tmp_path / "airflow", "revcent_full_history", "sales_history.apply")
    assert tries and all(state == "skipped" for state, _ in tries.values()), tries
    assert max(Counter(log.keys).values()) == 1, "no page was requested twice"


@pytest.mark.timeout(600)
def test_a_failing_window_is_retried_alone_under_dags_test(tmp_path, store, sandbox, bigquery_server, bq_client):
    windows = _windows(60)
    failed = 5
    log = RequestLog(fail_at=(windows[failed][0] + windows[failed][1]) // 2, failures=2)
    server = sandbox(store, faults=log)
    home = tmp_path / "airflow"
    env = _env(home, _write_dag(tmp_path / "dags"), server.url, bigquery_server, retries=2)
    env["AIRFLOW_VAR_GROUP_TABLE"] = "revcent_group_it.retried"
    assert airflow(env, "db", "migrate", timeout=300).returncode == 0
    started = time.monotonic()
    result = airflow(env, "dags", "test", DAG_ID, "-c",
                     json.dumps({"since": "2024-01-01", "until": "2026-01-01"}), timeout=500)
    seconds = time.monotonic() - started
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    print(f"airflow dags test, {len(windows)} windows, one retried: {seconds:.1f} s", flush=True)
    assert_table_matches(bq_client, "revcent_group_it.retried", store.truth(SINCE, UNTIL))
    _assert_retried_alone(log, windows, failed, _tries(home, DAG_ID, "history.windows"))
    _assert_small_xcoms(home, DAG_ID, "history", len(windows))


@pytest.mark.timeout(900)
def test_the_group_under_the_scheduler_retries_one_window_alone(tmp_path, store, sandbox, bigquery_server,
                                                                 bq_client):
    windows = _windows(60)
    failed = 9
    log = RequestLog(fail_at=(windows[failed][0] + windows[failed][1]) // 2, failures=2)
    server = sandbox(store, faults=log)
    home = tmp_path / "airflow"
    env = _env(home, _write_dag(tmp_path / "dags"), server.url, bigquery_server, retries=2)
    env.update({
        "AIRFLOW_VAR_GROUP_TABLE": "revcent_group_it.scheduled",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__API__PORT": str(port := _free_port()),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
    })
    assert airflow(env, "db", "migrate", timeout=300).returncode == 0
    # Serialize and trigger before any Airflow process runs: SQLite allows one writer (test_backfill.py).
    reserialized = airflow(env, "dags", "reserialize", timeout=300)
    assert reserialized.returncode == 0, reserialized.stderr[-2000:]
    triggered = airflow(env, "dags", "trigger", DAG_ID, "-c", json.dumps({"since": "2024-01-01",
                                                                          "until": "2026-01-01"}))
    assert triggered.returncode == 0, triggered.stdout[-2000:] + triggered.stderr[-2000:]
    standalone_log = tmp_path / "standalone.log"
    started = time.monotonic()
    with standalone(env, standalone_log):
        def unpaused() -> bool:
            airflow(env, "dags", "unpause", DAG_ID)
            listed = airflow(env, "dags", "list", "-o", "json").stdout.splitlines()
            dags = json.loads(next((line for line in reversed(listed) if line.startswith("[")), "[]"))
            return any(d.get("dag_id") == DAG_ID and str(d.get("is_paused")).lower() == "false" for d in dags)

        wait_for(unpaused, "the DAG to be parsed and unpaused", 180, standalone_log)

        def finished() -> bool:
            states = [r["state"] for r in runs(env, DAG_ID)]
            assert "failed" not in states, f"the run failed; log tail:\n{standalone_log.read_text()[-4000:]}"
            return "success" in states

        wait_for(finished, "the run to succeed", 600, standalone_log)
    seconds = time.monotonic() - started
    print(f"scheduler (LocalExecutor), {len(windows)} windows, one retried: {seconds:.1f} s", flush=True)
    assert_table_matches(bq_client, "revcent_group_it.scheduled", store.truth(SINCE, UNTIL))
    _assert_retried_alone(log, windows, failed, _tries(home, DAG_ID, "history.windows"))
    _assert_small_xcoms(home, DAG_ID, "history", len(windows))
