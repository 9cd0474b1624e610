"""A task run in its own process, so a test can SIGKILL it: python -m tests.integration._child CONFIG_JSON."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace


def main() -> None:
    config = json.loads(sys.argv[1])
    from airflow_revcent.transfers.customers_to_bigquery import CustomersToBigQueryOperator

    # The same dag and task ids as run_operator() in conftest: a retry of the same task instance.
    operator = CustomersToBigQueryOperator(task_id="customers_to_bigquery", **config["operator"])
    context = {"run_id": config["run_id"],
               "ti": SimpleNamespace(dag_id="it", task_id="customers_to_bigquery", map_index=-1)}
    summary = operator.execute(context)  # type: ignore[arg-type]  # a plain dict stands in for Airflow's Context
    print("RESULT " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
