"""Daily: RevCent customers created each UTC day, into BigQuery, exactly once.

* Scheduled at 00:00 UTC with one-day data intervals: the run for 2026-11-01 covers
  [2026-11-01, 2026-11-02) and starts once that day is over. (``schedule="@daily"`` would give
  Airflow 3's zero-width intervals, which load nothing; the operator refuses them.)
* catchup is off: history comes from backfills (``airflow backfill create``) or from one run
  triggered with ``date_start``/``date_end`` params, any length (split into 89-day windows).
* Destination: the Airflow Variable ``revcent_customers_table`` (default ``revcent.customers``),
  read when the task renders, never while the file is parsed.
* Connections: ``revcent_default`` (password = API key) and ``google_cloud_default``.
* Pool: Airflow's ``default_pool``, unless ``$REVCENT_API_POOL`` names a pool you created to share the
  account's allowance (README, "One API allowance for many tasks").
* PII settings: ``CUSTOMERS_PII`` in ``dags/revcent_pii.py``, shared with the full refresh (a table
  refuses a run whose settings differ from those that wrote it).
* Each scheduled run also re-reads the 35 days before its day and updates customers that changed;
  a run you ask for (a ``date_start``/``date_end`` range, a backfill, a manual trigger) reads
  exactly its interval unless it is given the param ``lookback``.
  ``revcent_customers_full_refresh`` re-reads all history weekly.
* Each load is reported on the asset alias ``revcent_customers`` (resolving to
  ``bigquery://project/dataset/table``): ``revcent_customers_downstream`` runs after it.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, AssetAlias, Param

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 3.1: the timetables are not exported from airflow.sdk yet
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[assignment]  # 3.1: its own class

from revcent_pii import CUSTOMERS_PII  # the PII settings every sample DAG shares (dags/revcent_pii.py)

from airflow_revcent import api_pool
from airflow_revcent.compat import exponential_backoff
from airflow_revcent.transfers.customers_to_bigquery import CustomersToBigQueryOperator

# A scheduled run re-reads the customers created in the 35 days before its day and updates those
# that changed: that covers the first monthly renewal and most refunds and chargebacks, for about
# 36 days of requests a day. Older changes come from the weekly full refresh. A run someone asks for
# (an explicit range, a backfill, a manual trigger) reads exactly what was asked: a backfill day by
# day would otherwise re-read every day 35 times, and a range would land customers outside it.
_SCHEDULED_LOOKBACK = "P35D"
_LOOKBACK = (
    "{{ params.lookback or ('" + _SCHEDULED_LOOKBACK + "' if dag_run.run_type == 'scheduled'"
    " and not (params.date_start or params.date_end) else 'P0D') }}"
)

_DATE_HELP = (
    "ISO-8601 date (midnight UTC) or date-time with offset, e.g. 2025-01-01 or 2025-01-01T06:00:00Z. "
    "Set both to load that range instead of the run's data interval (end exclusive)."
)

with DAG(
    dag_id="revcent_customers_to_bigquery",
    description="RevCent customers created each day, into BigQuery (exactly once).",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2015, 1, 1, tz="UTC"),
    catchup=False,
    # A couple of days may run at once (a late day and today); each run touches only its
    # customers, and the MERGE keeps concurrent runs from duplicating anyone.
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
        # Unset: scheduled runs re-read the 35 days before their interval (_SCHEDULED_LOOKBACK), every
        # other run reads exactly its interval. Set, it applies to the run as given.
        "lookback": Param(
            None,
            type=["null", "string"],
            description="ISO-8601 duration, e.g. P45D or P0D. Default: P35D for scheduled runs, "
            "none for ranges, backfills and manual runs.",
        ),
    },
    tags=["revcent", "bigquery"],
    doc_md=__doc__,
) as dag:
    CustomersToBigQueryOperator(
        task_id="customers_to_bigquery",
        destination_table="{{ var.value.get('revcent_customers_table', 'revcent.customers') }}",
        date_start="{{ params.date_start or '' }}",
        date_end="{{ params.date_end or '' }}",
        lookback=_LOOKBACK,
        # The table keeps the settings that first wrote it: every DAG writing it uses the same ones.
        pii=CUSTOMERS_PII,
        # The table is known when the task runs; downstream DAGs schedule on this alias
        # (dags/revcent_customers_downstream.py).
        outlets=[AssetAlias("revcent_customers")],
        # Opt-in ($REVCENT_API_POOL names a pool you created): every task calling the account then takes a
        # slot of it and, with the connection's account_requests_per_second, they share one allowance
        # (README, "One API allowance for many tasks"). Unset: Airflow's default_pool, which always exists.
        pool=api_pool(),
        # on_kill cancels the running BigQuery job when this expires: a timed-out task never commits later.
        execution_timeout=timedelta(hours=6),
    )
