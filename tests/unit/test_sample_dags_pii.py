"""The sample DAGs that write the customers table take their PII settings from one place, so they agree."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_sample_dag_writing_the_table_uses_the_one_shared_pii_settings():
    import revcent_pii  # dags/revcent_pii.py, on sys.path as Airflow puts the DAGs folder there
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1 and 3.2 (the lowest and airflow-3.2 legs run the unit tests)
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]  # 3.3 moved it

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors
    daily = bag.dags["revcent_customers_to_bigquery"].get_task("customers_to_bigquery")
    refresh = bag.dags["revcent_customers_full_refresh"].get_task("reload_chunk")
    resources = bag.dags["revcent_resources_to_bigquery"].get_task("customers_to_bigquery")
    history = bag.dags["revcent_full_history"]
    groups = [history.get_task(f"customers_history.{name}") for name in ("plan", "apply")]
    settings = [daily.pii, refresh.partial_kwargs["pii"], resources.pii,  # the operators and the mapped form
                *(task.pii for task in groups), history.get_task("customers_history.windows").partial_kwargs["pii"]]
    shared = revcent_pii.CUSTOMERS_PII
    assert all(s == shared for s in settings)
    assert not bag.dags.keys() - {"revcent_customers_to_bigquery", "revcent_customers_full_refresh",
                                  "revcent_customers_downstream", "revcent_full_history",
                                  "revcent_resources_to_bigquery"}  # the settings module defines no DAG
