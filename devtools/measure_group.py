"""Measure issue 19's last ask: the wall time of the task group against the single task on the same data.

One sandbox (in this process, ``--customers`` customers over ``--windows`` windows of 11 days) and the local
BigQuery server serve both runs; each run is ``airflow dags test`` of a DAG in a fresh ``AIRFLOW_HOME``: one
DAG holds the single operator, the other :class:`RevCentToBigQueryTaskGroup` over the same interval, window
size and connection. Reported per run: wall time of ``airflow dags test`` (Airflow's start-up included), the
sandbox's list requests, and peak local disk sampled from outside (the size of the run's ``tmp_dir`` every
20 ms). ``airflow dags test`` runs the group's tasks one after another in one process, so the group's peak is
that of one window task, and its wall time is the group's overhead, not the speed-up of workers running
windows side by side (that needs a scheduler and several workers).

Usage: ``PYTHONPATH=$PWD .venv/bin/python -m devtools.measure_group [--customers 100000] [--windows 8]``.
Measurements, not tests: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from devtools.measure_resume import API_KEY, START, _unix, peak_folder_bytes

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
WINDOW_DAYS = 11
DAGS = '''
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_revcent.transfers.revcent_to_bigquery import RevCentToBigQueryOperator, RevCentToBigQueryTaskGroup

ARGS = dict(resource="customers", date_start="{start}", date_end="{end}", window_size=timedelta(days={days}),
            tmp_dir="{tmp}")
SINCE = pendulum.datetime(2020, 1, 1, tz="UTC")

with DAG("measure_single", schedule=None, start_date=SINCE, catchup=False):
    RevCentToBigQueryOperator(task_id="load", destination_table="measure.group_single_{stamp}", **ARGS)

with DAG("measure_group", schedule=None, start_date=SINCE, catchup=False):
    RevCentToBigQueryTaskGroup(group_id="history", destination_table="measure.group_group_{stamp}", **ARGS)
'''


def _env(home: Path, dags: Path, sandbox_url: str, bq_connection: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "REVCENT"))}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW_CONN_REVCENT_DEFAULT": json.dumps({
            "conn_type": "revcent", "host": sandbox_url, "password": API_KEY,
            "extra": {"max_concurrency": 4, "max_requests_per_second": 0}}),
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": bq_connection,
    })
    return env


def _dags_test(env: dict[str, str], dag_id: str, tmp: Path) -> tuple[float, int, str]:
    """(wall seconds, peak bytes sampled in ``tmp``, output tail) of ``airflow dags test dag_id``."""
    with peak_folder_bytes(tmp) as peak:
        started = time.monotonic()
        result = subprocess.run([AIRFLOW, "dags", "test", dag_id], env=env, capture_output=True, text=True,
                                timeout=3600, check=False)
        seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"airflow dags test {dag_id} failed:\n{output[-4000:]}")
    return seconds, peak[0], output[-2000:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000, help="customers in the interval")
    parser.add_argument("--windows", type=int, default=8, help="windows of 11 days")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from devtools import localbq
    from revcent_sandbox import CustomerStore, SandboxServer

    end = START + timedelta(days=WINDOW_DAYS * args.windows)
    work = Path(tempfile.mkdtemp(prefix="revcent-measure-group-"))
    tmp, dags, home = work / "tmp", work / "dags", work / "airflow"
    for folder in (tmp, dags):
        folder.mkdir()
    (dags / "measure_dags.py").write_text(textwrap.dedent(DAGS.format(
        start=START.isoformat(), end=end.isoformat(), days=WINDOW_DAYS, tmp=tmp, stamp=int(time.time()))))
    store = CustomerStore(seed=21, count=args.customers, start=_unix(START), end=_unix(end))
    bq = localbq.start()
    results: dict[str, Any] = {"customers": args.customers, "windows": args.windows}
    try:
        with SandboxServer(store, api_key=API_KEY).start() as server:
            env = _env(home, dags, server.url, bq.connection_uri_json())
            migrated = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True,
                                      timeout=600, check=False)
            if migrated.returncode != 0:
                raise SystemExit(f"airflow db migrate failed:\n{(migrated.stdout + migrated.stderr)[-4000:]}")
            for label, dag_id in (("single", "measure_single"), ("group", "measure_group")):
                server.reset_stats()
                seconds, peak, _ = _dags_test(env, dag_id, tmp)
                stats = server.stats
                results[label] = {"wall_seconds": round(seconds, 1), "list_requests": stats.list_requests,
                                  "requests": stats.requests, "sampled_peak_bytes": peak}
                print(f"{label}: airflow dags test {dag_id}: {seconds:.1f} s, {stats.list_requests} list requests "
                      f"({stats.requests} in all), peak {peak / 1e6:.1f} MB on disk (sampled)", flush=True)
    finally:
        bq.stop()
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
