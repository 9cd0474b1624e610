"""On demand: the full history of one RevCent list resource, its windows read by a mapped task across workers.

Trigger it with the range and the resource (``until`` defaults to when the run was triggered)::

    airflow dags trigger revcent_full_history -c '{"since": "2019-01-01", "resource": "customers"}'

* One ``RevCentToBigQueryTaskGroup`` per resource in ``RESOURCES`` (README, "Long histories across workers");
  the ``resource`` param picks the one that runs, the others are skipped. In each, ``plan`` splits
  [since, until) into windows, ``windows`` reads and stages one window per mapped task instance (any worker,
  each retried alone; a retry re-reads only its window) and ``apply`` merges everything in one transaction.
* Tables: ``<dataset>.<resource>``, the dataset from the Airflow Variable ``revcent_dataset`` (default
  ``revcent``), the tables ``revcent_resources_to_bigquery`` writes. Customers use the PII settings of
  ``dags/revcent_pii.py``, as every sample DAG that writes the customers table (a table refuses a run whose
  settings differ).
* Pool: as the other sample DAGs, Airflow's ``default_pool`` unless ``$REVCENT_API_POOL`` names a pool you created
  to share the account's allowance: its slots are how many windows read at once.
* Connections: ``revcent_default`` (password = API key) and ``google_cloud_default``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, task
from revcent_pii import CUSTOMERS_PII  # the PII settings every sample DAG shares (dags/revcent_pii.py)

from airflow_revcent import api_pool
from airflow_revcent.compat import exponential_backoff
from airflow_revcent.transfers.revcent_to_bigquery import RevCentToBigQueryTaskGroup

#: The resources this DAG can load; the ``resource`` param picks one per run.
RESOURCES = ("customers", "sales", "transactions")

with DAG(
    dag_id="revcent_full_history",
    description="The full history of one RevCent resource into BigQuery, its windows spread over the workers.",
    schedule=None,  # on demand: the range comes from the params
    start_date=pendulum.datetime(2015, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=2),
                  "retry_exponential_backoff": exponential_backoff(2.0), "max_retry_delay": timedelta(minutes=30)},
    params={
        "resource": Param("customers", enum=list(RESOURCES), description="The resource to load."),
        "since": Param("2020-01-01", type="string",
                       description="Load items created since (ISO-8601 date, midnight UTC, or date-time)."),
        "until": Param(None, type=["null", "string"],
                       description="... and before (exclusive); default: when the run was triggered."),
    },
    tags=["revcent", "bigquery"],
    doc_md=__doc__,
):

    @task.branch
    def pick(**context: object) -> str:
        """The chosen resource's plan task; the other groups are skipped."""
        return f"{context['params']['resource']}_history.plan"  # type: ignore[index]  # context values are typed object

    chosen = pick()
    for resource in RESOURCES:
        chosen >> RevCentToBigQueryTaskGroup(
            group_id=f"{resource}_history",
            resource=resource,
            destination_table="{{ var.value.get('revcent_dataset', 'revcent') }}." + resource,
            date_start="{{ params.since }}",
            # run_after is the run's own instant: every task of the run renders the same end.
            date_end="{{ params.until or dag_run.run_after.isoformat() }}",
            pii=CUSTOMERS_PII if resource == "customers" else None,
            pool=api_pool(),
            execution_timeout=timedelta(hours=2),  # one window's task, not the whole history
        )
