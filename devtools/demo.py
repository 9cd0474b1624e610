"""The README's first command: run the sample DAG end to end on this machine, no credentials.

1. starts the RevCent sandbox (generated customers) and a local BigQuery-API server;
2. points ``revcent_default`` and ``google_cloud_default`` at them through environment variables;
3. runs ``airflow dags test revcent_customers_to_bigquery`` over a few days, then once more
   (a re-run must change nothing);
4. prints what landed: rows, customers per day, a sample, and whether the table equals the
   sandbox's customers for those days.

Options: ``--days N`` (default 5), ``--customers N`` (default 1500), ``--keep`` to leave the
servers running afterwards for exploring (Ctrl-C stops them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from devtools import localbq
from revcent_sandbox import CustomerStore, SandboxServer

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".local" / "demo"
DAG_ID = "revcent_customers_to_bigquery"
TABLE = "revcent.customers"
FIRST_DAY = date(2026, 11, 1)
DEMO_KEY = "demo-sandbox-key"  # the sandbox's key, not a secret


def _unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _airflow_env(sandbox_url: str, bq: localbq.LocalBigQuery) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(STATE / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_REVCENT_DEFAULT": json.dumps({
            "conn_type": "revcent", "host": sandbox_url, "password": DEMO_KEY,
            "extra": {"max_concurrency": 8, "max_requests_per_second": 0},
        }),
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": bq.connection_uri_json(),
        "AIRFLOW_VAR_REVCENT_CUSTOMERS_TABLE": TABLE,
    })
    return env


def _run_dag(env: dict[str, str], conf: dict[str, str], log: Path) -> float:
    airflow = str(Path(sys.executable).with_name("airflow"))
    started = time.monotonic()
    with log.open("ab") as out:
        result = subprocess.run([airflow, "dags", "test", DAG_ID, "-c", json.dumps(conf)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        print(log.read_text(errors="replace")[-4000:])
        raise SystemExit(f"airflow dags test failed (exit {result.returncode}); full log: {log}")
    for line in log.read_text(errors="replace").splitlines():
        if ("Window " in line and "customers" in line) or ("Loaded " in line and "customers into" in line):
            print("   ", line.split("] ", 1)[-1].split(" [airflow")[0][:160])
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--keep", action="store_true", help="keep the servers running at the end")
    args = parser.parse_args(argv)

    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(parents=True)
    first, last = FIRST_DAY, FIRST_DAY + timedelta(days=args.days)
    # Customers spread over a month around the demo days, so the run must pick its days out.
    store = CustomerStore(seed=2026, count=args.customers, start=_unix(first - timedelta(days=10)),
                          end=_unix(last + timedelta(days=10)))
    print(f"1. RevCent sandbox: {len(store)} generated customers; local BigQuery-API server starting ...")
    bq = localbq.start(data_dir=STATE / "bigquery")
    sandbox = SandboxServer(store, api_key=DEMO_KEY).start()
    try:
        env = _airflow_env(sandbox.url, bq)
        with (STATE / "airflow-db-migrate.log").open("wb") as out:
            subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], env=env,
                           stdout=out, stderr=subprocess.STDOUT, check=True)
        # A range run reads exactly its days (only scheduled runs look back), so what lands is these days.
        conf = {"date_start": first.isoformat(), "date_end": last.isoformat()}
        print(f"2. airflow dags test {DAG_ID} -c '{json.dumps(conf)}'")
        seconds = _run_dag(env, conf, STATE / "airflow-dags-test-1.log")
        print(f"   done in {seconds:.1f} s (Airflow's start-up included)")
        print("3. The same command again (a re-run must change nothing):")
        _run_dag(env, conf, STATE / "airflow-dags-test-2.log")
        _report(bq, store, first, last)
        print(f"\nAirflow's full output: {STATE}/airflow-dags-test-*.log")
        if args.keep:
            print(f"Servers kept running: RevCent sandbox {sandbox.url}, BigQuery {bq.url} (Ctrl-C to stop)")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
        bq.stop()
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
