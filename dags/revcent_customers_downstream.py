"""Downstream of the customers table: runs whenever `revcent_customers_to_bigquery` has written it.

The sample DAG's destination is templated (an Airflow Variable), so its table is only known when
the task runs; the task reports it through the asset alias ``revcent_customers``, which resolves to
the table's asset ``bigquery://project/dataset/table``. Replace the task with your own models.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, AssetAlias, task

with DAG(
    dag_id="revcent_customers_downstream",
    description="Runs after each load of the RevCent customers table.",
    schedule=[AssetAlias("revcent_customers")],
    start_date=pendulum.datetime(2015, 1, 1, tz="UTC"),
    catchup=False,
    tags=["revcent", "bigquery"],
    doc_md=__doc__,
):

    @task
    def report_load(**context: object) -> list[dict[str, object]]:
        """Log which table changed and what the load said (from the asset event's extra)."""
        events = context.get("triggering_asset_events") or {}
        loads = [{"asset": getattr(asset, "uri", str(asset)), **dict(event.extra)}
                 for asset, asset_events in events.items() for event in asset_events]  # type: ignore[attr-defined]  # asset events carry extra; the context types them loosely
        for load in loads:
            print(f"{load['asset']}: {load.get('records_loaded')} customers for "
                  f"[{load.get('interval_start')}, {load.get('interval_end')})")
        return loads

    report_load()
