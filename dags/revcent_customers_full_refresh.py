"""Weekly: re-read every RevCent customer created since a start date, so every row is current.

Customers change after their creation day (lifetime values, status, cards, notes) and the daily DAG
re-reads only a lookback. This DAG re-reads everything since ``since``, in 89-day chunks, each its
own mapped task: a chunk loads and merges on its own, so a failure costs only that chunk, and
clearing the failed tasks resumes the refresh where it stopped. Unchanged customers are not touched
(content hash), changed ones are updated.

    airflow dags trigger revcent_customers_full_refresh -c '{"since": "2023-01-01"}'
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pendulum
from airflow.sdk import DAG, AssetAlias, Param, task

try:
    from airflow.sdk import CronTriggerTimetable
except ImportError:  # Airflow 3.1: the timetables are not exported from airflow.sdk yet
    from airflow.timetables.trigger import CronTriggerTimetable  # type: ignore[assignment]  # 3.1: its own class

from revcent_pii import CUSTOMERS_PII  # the PII settings every sample DAG shares (dags/revcent_pii.py)

from airflow_revcent import api_pool
from airflow_revcent.api.windows import Interval, parse_instant, split_windows
from airflow_revcent.compat import exponential_backoff
from airflow_revcent.transfers.customers_to_bigquery import CustomersToBigQueryOperator

with DAG(
    dag_id="revcent_customers_full_refresh",
    description="Re-read every RevCent customer since a start date, in resumable chunks.",
    # Sunday 03:00 UTC. A trigger timetable is right here: the range comes from the params.
    schedule=CronTriggerTimetable("0 3 * * 0", timezone="UTC"),
    start_date=pendulum.datetime(2015, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=5),
                  "retry_exponential_backoff": exponential_backoff(2.0)},
    params={
        "since": Param("2020-01-01", type="string", description="Re-read customers created since (ISO date)."),
        "chunk_days": Param(89, type="integer", minimum=1, maximum=89, description="Days per mapped task."),
    },
    tags=["revcent", "bigquery"],
    doc_md=__doc__,
):

    @task
    def plan_chunks(**context: object) -> list[dict[str, str]]:
        """Half-open chunks from ``since`` to the start of today (UTC), oldest first."""
        params = context["params"]
        since = parse_instant(params["since"], name="since")  # type: ignore[index]  # context values are typed object; params is a mapping
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        chunks = split_windows(Interval(int(since.timestamp()), int(today.timestamp())),
                               timedelta(days=int(params["chunk_days"])))  # type: ignore[index]  # context values are typed object; params is a mapping
        return [{"date_start": datetime.fromtimestamp(w.start, UTC).isoformat(),
                 "date_end": datetime.fromtimestamp(w.end, UTC).isoformat()} for w in chunks]

    CustomersToBigQueryOperator.partial(
        task_id="reload_chunk",
        destination_table="{{ var.value.get('revcent_customers_table', 'revcent.customers') }}",
        # The daily DAG's settings: the table refuses a run whose settings differ from those that wrote it.
        pii=CUSTOMERS_PII,
        # One chunk at a time. With $REVCENT_API_POOL set, the pool shares the account's allowance with the
        # daily DAG and backfills; unset, Airflow's default_pool.
        max_active_tis_per_dagrun=1,
        pool=api_pool(),
        execution_timeout=timedelta(hours=6),
        outlets=[AssetAlias("revcent_customers")],
    ).expand_kwargs(plan_chunks())
