"""Daily: several RevCent list resources into one BigQuery dataset, a table per resource, exactly once.

* One ``RevCentToBigQueryOperator`` per resource in ``RESOURCES`` (customers, sales, transactions): add a
  name to land another (``python -m airflow_revcent resources --spec openapi.json`` lists what RevCent's
  document offers). Each table is named after its resource and typed from RevCent's OpenAPI document
  (``/v2/openapi.json`` from the connection's host, or the connection's ``openapi_spec`` extra); customers
  needs no document.
* Scheduled at 00:00 UTC with one-day data intervals, as ``revcent_customers_to_bigquery``: the run for
  2026-11-01 covers [2026-11-01, 2026-11-02). catchup is off; history comes from backfills or from a run
  triggered with ``date_start``/``date_end`` params.
* Dataset: the Airflow Variable ``revcent_dataset`` (default ``revcent``), read when the tasks render.
  Its ``customers`` table is the one ``revcent_customers_to_bigquery`` writes by default: both use the
  PII settings of ``dags/revcent_pii.py`` (a table refuses a run whose settings differ).
* Connections: ``revcent_default`` (password = API key) and ``google_cloud_default``.
* Pool: as the other sample DAGs, Airflow's ``default_pool`` unless ``$REVCENT_API_POOL`` names a pool you
  created to share the account's allowance (README, "One API allowance for many tasks").
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 3.1: the timetables are not exported from airflow.sdk yet
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[assignment]  # 3.1: its own class

from revcent_pii import CUSTOMERS_PII  # the PII settings every sample DAG shares (dags/revcent_pii.py)

from airflow_revcent import api_pool
from airflow_revcent.compat import exponential_backoff
from airflow_revcent.transfers.revcent_to_bigquery import RevCentToBigQueryOperator

#: The resources this DAG lands, each into ``<dataset>.<name>``.
RESOURCES = ("customers", "sales", "transactions")

_DATE_HELP = (
    "ISO-8601 date (midnight UTC) or date-time with offset, e.g. 2025-01-01. Set both to load that range "
    "instead of the run's data interval (end exclusive)."
)

with DAG(
    dag_id="revcent_resources_to_bigquery",
    description="RevCent customers, sales and transactions created each day, into BigQuery (exactly once).",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2015, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,
    default_args={
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": exponential_backoff(2.0),
        "max_retry_delay": timedelta(minutes=30),
    },
    params={
        "date_start": Param(None, type=["null", "string"], description=_DATE_HELP),
        "date_end": Param(None, type=["null", "string"], description=_DATE_HELP),
    },
    tags=["revcent", "bigquery"],
    doc_md=__doc__,
) as dag:
    for resource in RESOURCES:
        RevCentToBigQueryOperator(
            task_id=f"{resource}_to_bigquery",
            resource=resource,
            destination_table="{{ var.value.get('revcent_dataset', 'revcent') }}." + resource,
            date_start="{{ params.date_start or '' }}",
            date_end="{{ params.date_end or '' }}",
            # Customers' table is shared with the other sample DAGs: the same PII settings as theirs.
            pii=CUSTOMERS_PII if resource == "customers" else None,
            pool=api_pool(),
            execution_timeout=timedelta(hours=6),
        )
