"""Child process of the benchmark: one operator run, measured from inside (fresh process, fresh RSS).

Argument: a JSON object with sandbox_url, api_key, bq_connection, table, date_start, date_end,
max_concurrency, max_requests_per_second. Prints one JSON line with the operator's summary and
the process's peak RSS.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time


def main() -> None:
    config = json.loads(sys.argv[1])
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="revcent-bench-airflow-"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    os.environ["AIRFLOW_CONN_REVCENT_DEFAULT"] = json.dumps({
        "conn_type": "revcent", "host": config["sandbox_url"], "password": config["api_key"],
        "extra": {"max_concurrency": config["max_concurrency"],
                  "max_requests_per_second": config["max_requests_per_second"]},
    })
    os.environ["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"] = config["bq_connection"]

    from airflow_revcent.transfers.customers_to_bigquery import CustomersToBigQueryOperator

    operator = CustomersToBigQueryOperator(task_id="bench", destination_table=config["table"],
                                           date_start=config["date_start"], date_end=config["date_end"])
    started = time.monotonic()
    summary = operator.execute({"run_id": f"bench__{config['table']}"})  # type: ignore[arg-type]  # a plain dict stands in for Airflow's Context
    summary["wall_seconds"] = time.monotonic() - started
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
