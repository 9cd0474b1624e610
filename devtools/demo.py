"""The README's first command: run the sample DAG end to end on this machine, no credentials.

1. starts the RevCent sandbox (generated customers) and a local BigQuery-API server;
2. points ``revcent_default`` and ``google_cloud_default`` at them through environment variables;
3. runs ``airflow dags test revcent_customers_to_bigquery`` over a few days, then once more
   (a re-run must change nothing);
4. prints what landed: rows, customers per day, a sample, and whether the table equals the
   sandbox's customers for those days;
5. runs ``airflow dags test revcent_resources_to_bigquery`` (customers, sales and transactions into one
   dataset) over the same days and prints each other resource's rows and whether they equal the sandbox's.

Options: ``--days N`` (default 5), ``--customers N`` (default 1500), ``--keep`` to leave the
servers running afterwards for exploring: it prints the BigQuery project and dataset, a command that
queries the table, the sandbox's key and a request to it, and the one command that runs the DAG again
against the same servers (Ctrl-C or SIGTERM stops both servers). ``--state DIR`` (default
``.local/demo``) holds Airflow's home, the logs, the BigQuery data and ``env.sh`` (the settings).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType

from devtools import localbq
from revcent_sandbox import CustomerStore, SandboxServer

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".local" / "demo"
AIRFLOW = Path(sys.executable).with_name("airflow")
DAG_ID = "revcent_customers_to_bigquery"
RESOURCES_DAG_ID = "revcent_resources_to_bigquery"
TABLE = "revcent.customers"
#: The dataset the resources DAG writes (its customers table is TABLE) and the resources it adds.
DATASET = "revcent"
OTHER_RESOURCES = ("sales", "transactions")
FIRST_DAY = date(2026, 11, 1)
DEMO_KEY = "demo-sandbox-key"  # the sandbox's key, not a secret


def _unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


class _Stopped(Exception):
    """SIGTERM or SIGHUP arrived: unwind through ``finally`` so that both servers stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    # Python's default for SIGTERM ends the process at once, skipping `finally`: the BigQuery-API
    # server (its own process group) would keep running. Ctrl-C already raises KeyboardInterrupt.
    raise _Stopped(signum)


def _demo_settings(state: Path, sandbox_url: str, bq: localbq.LocalBigQuery) -> dict[str, str]:
    """What the demo's Airflow commands need: its home, the DAGs, the connections to both servers."""
    return {
        "AIRFLOW_HOME": str(state / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_REVCENT_DEFAULT": json.dumps({
            "conn_type": "revcent", "host": sandbox_url, "password": DEMO_KEY,
            "extra": {"max_concurrency": 8, "max_requests_per_second": 0},
        }),
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": bq.connection_uri_json(),
        "AIRFLOW_VAR_REVCENT_CUSTOMERS_TABLE": TABLE,
        "AIRFLOW_VAR_REVCENT_DATASET": DATASET,
    }


def _write_env_file(path: Path, settings: dict[str, str]) -> None:
    path.write_text("# The demo's Airflow settings: `. " + str(path) + "` in a shell, then any airflow command.\n"
                    + "".join(f"export {name}={shlex.quote(value)}\n" for name, value in settings.items()))


def _run_dag(env: dict[str, str], conf: dict[str, str], log: Path, dag_id: str = DAG_ID) -> float:
    started = time.monotonic()
    with log.open("ab") as out:
        result = subprocess.run([str(AIRFLOW), "dags", "test", dag_id, "-c", json.dumps(conf)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        print(log.read_text(errors="replace")[-4000:])
        raise SystemExit(f"airflow dags test failed (exit {result.returncode}); full log: {log}")
    for line in log.read_text(errors="replace").splitlines():
        if dag_id != DAG_ID:
            if "Loaded " in line and " into " in line:
                print("   ", line.split("] ", 1)[-1].split(" [airflow")[0][:160])
        elif ("Window " in line and "customers" in line) or ("Loaded " in line and "customers into" in line):
            print("   ", line.split("] ", 1)[-1].split(" [airflow")[0][:160])
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--keep", action="store_true", help="keep the servers running at the end")
    parser.add_argument("--state", type=Path, default=STATE, help="the demo's folder (emptied first)")
    args = parser.parse_args(argv)
    state: Path = args.state.resolve()

    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    first, last = FIRST_DAY, FIRST_DAY + timedelta(days=args.days)
    # Customers spread over a month around the demo days, so the run must pick its days out.
    store = CustomerStore(seed=2026, count=args.customers, start=_unix(first - timedelta(days=10)),
                          end=_unix(last + timedelta(days=10)))
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_stopped)
    print(f"1. RevCent sandbox: {len(store)} generated customers; local BigQuery-API server starting ...")
    kept = False
    bq = localbq.start(data_dir=state / "bigquery")
    try:
        sandbox = SandboxServer(store, api_key=DEMO_KEY).start()
        try:
            settings = _demo_settings(state, sandbox.url, bq)
            _write_env_file(state / "env.sh", settings)
            env = {**os.environ, **settings}
            with (state / "airflow-db-migrate.log").open("wb") as out:
                subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, stdout=out, stderr=subprocess.STDOUT,
                               check=True)
            # A range run reads exactly its days (only scheduled runs look back), so what lands is these days.
            conf = {"date_start": first.isoformat(), "date_end": last.isoformat()}
            print(f"2. airflow dags test {DAG_ID} -c '{json.dumps(conf)}'")
            seconds = _run_dag(env, conf, state / "airflow-dags-test-1.log")
            print(f"   done in {seconds:.1f} s (Airflow's start-up included)")
            print("3. The same command again (a re-run must change nothing):")
            _run_dag(env, conf, state / "airflow-dags-test-2.log")
            _report(bq, store, first, last)
            print(f"\n5. airflow dags test {RESOURCES_DAG_ID} -c '{json.dumps(conf)}' (customers, "
                  f"{', '.join(OTHER_RESOURCES)} into {DATASET}):")
            _run_dag(env, conf, state / "airflow-dags-test-resources.log", RESOURCES_DAG_ID)
            _report_resources(bq, sandbox, first, last)
            print(f"\nAirflow's full output: {state}/airflow-dags-test-*.log")
            if args.keep:
                print(_exploring(state, sandbox.url, bq, conf), flush=True)
                kept = True
                while True:
                    time.sleep(3600)
        finally:
            sandbox.stop()
    except KeyboardInterrupt:
        return 0 if kept else 130
    except _Stopped as stop:
        return 0 if kept else 128 + stop.signum
    finally:
        bq.stop()
    return 0


def _exploring(state: Path, sandbox_url: str, bq: localbq.LocalBigQuery, conf: dict[str, str]) -> str:
    """What to look at while the servers are kept running, with commands ready to paste."""
    dataset, table = TABLE.split(".")
    sql = f"SELECT id, email, status, _created_at FROM `{bq.project}.{TABLE}` ORDER BY _created_at LIMIT 5"
    query = json.dumps({"query": sql, "useLegacySql": False})
    customers = (f"{sandbox_url}/v2/customers?date_start={_unix(FIRST_DAY)}&date_end={_unix(FIRST_DAY) + 86400}"
                 "&page=1&limit=5")
    env_file = state / "env.sh"
    rerun = f"{shlex.quote(str(AIRFLOW))} dags test {DAG_ID} -c {shlex.quote(json.dumps(conf))}"
    return "\n".join([
        "",
        "Kept running for you to explore (Ctrl-C, or SIGTERM to this process, stops both servers):",
        f"  BigQuery-API server {bq.url} (pid {bq.process.pid}): project {bq.project}, dataset {dataset}, "
        f"table {bq.project}.{TABLE}",
        "    query the table (BigQuery's REST jobs.query, as with any BigQuery; no credentials here):",
        f"    $ curl -s -X POST {bq.url}/bigquery/v2/projects/{bq.project}/queries "
        f"-H 'Content-Type: application/json' -d {shlex.quote(query)}",
        f"  RevCent sandbox {sandbox_url}: API key {DEMO_KEY} (the sandbox's, not a secret)",
        "    $ curl -s -H " + shlex.quote(f"x-api-key: {DEMO_KEY}") + " " + shlex.quote(customers),
        f"  Airflow: home {state / 'airflow'}; every setting of the runs (connections, variable) is in {env_file}",
        "    run the DAG again against these servers (from any directory):",
        f"    $ ( . {shlex.quote(str(env_file))} && {rerun} )",
        f"  The DAG writes the table that the Airflow Variable revcent_customers_table names ({dataset}.{table}).",
    ])


def _report(bq: localbq.LocalBigQuery, store: CustomerStore, first: date, last: date) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(project=bq.project, credentials=AnonymousCredentials(),
                             client_options={"api_endpoint": bq.url})
    table = f"`{bq.project}.{TABLE}`"

    def query(sql: str) -> list[dict[str, object]]:
        return [dict(r) for r in client.query(sql, job_retry=None).result()]

    total = query(f"SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM {table}")[0]
    print(f"\n4. What landed in {bq.project}.{TABLE}: {total['n']} rows, {total['ids']} distinct customer ids")
    print("   customers per day (by created_date_unix, UTC):")
    for row in query(f"SELECT DATE(_created_at) AS day, COUNT(*) AS n FROM {table} GROUP BY day ORDER BY day"):
        print(f"     {row['day']}  {row['n']:>5}")
    print("   a sample:")
    sample = query(
        f"SELECT id, first_name, last_name, email, status, lifetime_value.`all`.amount_gross AS gross, "
        f"ARRAY_LENGTH(customer_card) AS cards, _created_at FROM {table} ORDER BY _created_at LIMIT 3"
    )
    for row in sample:
        print(f"     {row['id']}  {row['first_name']} {row['last_name']} <{row['email']}>  {row['status']}  "
              f"gross={row['gross']}  cards={row['cards']}  created={row['_created_at']:%Y-%m-%d %H:%M:%S}")
    truth = {c["id"] for c in store.truth(_unix(first), _unix(last))}
    landed = {r["id"] for r in query(f"SELECT id FROM {table}")}
    verdict = "yes" if landed == truth and total["n"] == len(truth) else "NO"
    print(f"   equal to the sandbox's customers for [{first}, {last}): {verdict} ({len(truth)} expected)")
    if verdict != "yes":
        raise SystemExit("The table does not match the sandbox: this is a bug, please report it.")


def _report_resources(bq: localbq.LocalBigQuery, sandbox: SandboxServer, first: date, last: date) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(project=bq.project, credentials=AnonymousCredentials(),
                             client_options={"api_endpoint": bq.url})
    for name in OTHER_RESOURCES:
        table = f"`{bq.project}.{DATASET}.{name}`"
        rows = [dict(r) for r in client.query(f"SELECT id FROM {table}", job_retry=None).result()]
        truth = {item["id"] for item in sandbox.resources[name].truth(_unix(first), _unix(last))}
        verdict = "yes" if {r["id"] for r in rows} == truth and len(rows) == len(truth) else "NO"
        print(f"   {bq.project}.{DATASET}.{name}: {len(rows)} rows; equal to the sandbox's {name} for "
              f"[{first}, {last}): {verdict} ({len(truth)} expected)")
        if verdict != "yes":
            raise SystemExit(f"The {name} table does not match the sandbox: this is a bug, please report it.")


if __name__ == "__main__":
    sys.exit(main())
