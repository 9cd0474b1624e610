"""`airflow backfill create` on a real scheduler and API server (`airflow standalone`, SQLite,
LocalExecutor), against the sandbox and the local BigQuery-API server, on a fresh Airflow as the README's
set-up leaves it: no pool created, the shared API allowance not opted into. Every process started here is
stopped here."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from revcent_sandbox import CustomerStore

from .conftest import API_KEY, unix
from .truth import assert_table_matches, table_rows

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAG_ID = "revcent_customers_to_bigquery"
TABLE = "revcent_backfill.customers"
FIRST_DAY, DAYS = 5, 10  # 2026-09-05 .. 2026-09-14


@pytest.fixture
def airflow_env(tmp_path: Path, sandbox, bigquery_server) -> tuple[dict[str, str], CustomerStore]:
    store = CustomerStore(seed=71, count=400, start=unix(2026, 9, 1), end=unix(2026, 9, 20))
    server = sandbox(store)
    home = tmp_path / "airflow"
    # Nothing inherited: no Airflow settings and no opt-in to the shared pool (REVCENT_API_POOL).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "REVCENT"))}
    env.update({
        # `airflow standalone` starts its components as `airflow ...` from PATH.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__API__PORT": str(port := _free_port()),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW_CONN_REVCENT_DEFAULT": json.dumps({"conn_type": "revcent", "host": server.url, "password": API_KEY,
                                                    "extra": {"max_concurrency": 4, "max_requests_per_second": 0}}),
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": bigquery_server.connection_uri_json(),
        "AIRFLOW_VAR_REVCENT_CUSTOMERS_TABLE": TABLE,
    })
    return env, store


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def airflow(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


@contextlib.contextmanager
def standalone(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen([AIRFLOW, "standalone"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def runs(env: dict[str, str], dag_id: str) -> list[dict[str, str]]:
    result = airflow(env, "dags", "list-runs", dag_id, "-o", "json")
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    return json.loads(lines[-1]) if lines else []


def wait_for(condition, what: str, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; scheduler log tail:\n{log.read_text()[-4000:]}")
        time.sleep(2)


@pytest.mark.timeout(900)
def test_backfill_of_ten_days_on_a_real_scheduler(airflow_env, bq_client, tmp_path):
    env, store = airflow_env
    log = tmp_path / "standalone.log"
    assert airflow(env, "db", "migrate", timeout=300).returncode == 0
    # A fresh Airflow: the sample DAG's tasks must run without anyone creating the pool revcent_api.
    pools = airflow(env, "pools", "list", "-o", "json")
    assert pools.returncode == 0 and "default_pool" in pools.stdout and "revcent_api" not in pools.stdout
    # Serialize the DAGs and create the backfill before any Airflow process runs: SQLite allows one
    # writer, and `backfill create` collides with the scheduler and dag-processor otherwise.
    reserialized = airflow(env, "dags", "reserialize", timeout=300)
    assert reserialized.returncode == 0, reserialized.stderr[-2000:]
    created = airflow(env, "backfill", "create", "--dag-id", DAG_ID, "--from-date", f"2026-09-{FIRST_DAY:02d}",
                      "--to-date", f"2026-09-{FIRST_DAY + DAYS - 1:02d}", "--max-active-runs", "2")
    # No lookback param: backfill runs read exactly their day (the store has customers from
    # 2026-09-01, so a lookback would land days outside the backfill and fail the comparison).
    assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]
    with standalone(env, log):
        def unpaused() -> bool:
            # `dags unpause` exits 0 even before the dag-processor has parsed the DAG; check the state.
            for dag_id in (DAG_ID, "revcent_customers_downstream"):
                airflow(env, "dags", "unpause", dag_id)
            listed = airflow(env, "dags", "list", "-o", "json").stdout.splitlines()
            dags = json.loads(next((line for line in reversed(listed) if line.startswith("[")), "[]"))
            return sum(1 for d in dags if str(d.get("is_paused")).lower() == "false") == 2

        wait_for(unpaused, "both DAGs to be parsed and unpaused", 180, log)

        def finished() -> bool:
            # The backfill's own runs (the scheduler also makes one for the latest day once unpaused).
            states = [r["state"] for r in runs(env, DAG_ID) if r["run_id"].startswith("backfill__")]
            print(time.strftime("%H:%M:%S"), "backfill run states:", states, flush=True)
            # A task in a pool that does not exist stays scheduled forever: say so now, not at the timeout.
            tail = log.read_text()
            assert "non-existent pool" not in tail, f"a task names a missing pool:\n{tail[-4000:]}"
            assert "failed" not in states, f"a backfill run failed; log tail:\n{log.read_text()[-4000:]}"
            return states.count("success") >= DAYS

        wait_for(finished, f"{DAYS} successful runs", 600, log)
        wait_for(lambda: any(r["state"] == "success" for r in runs(env, "revcent_customers_downstream")),
                 "the downstream DAG to run on the asset alias", 120, log)

    first, last = unix(2026, 9, FIRST_DAY), unix(2026, 9, FIRST_DAY + DAYS)
    rows = assert_table_matches(bq_client, TABLE, store.truth(first, last))
    for row in rows:  # every day's run covered its own day
        day = datetime.fromtimestamp(row["created_date_unix"], UTC).replace(hour=0, minute=0, second=0)
        assert row["_interval_start"] == day
        assert row["_run_id"].startswith("backfill__")
    assert len({r["_run_id"] for r in table_rows(bq_client, TABLE)}) == DAYS
