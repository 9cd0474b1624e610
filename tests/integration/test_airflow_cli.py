"""The sample DAG through Airflow's own CLI, as users and the checks run it; provider registration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from revcent_sandbox import CustomerStore, FaultPlan

from .conftest import API_KEY, unix
from .truth import assert_table_matches

pytestmark = pytest.mark.slow
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def airflow(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIRFLOW, *args], env=env or dict(os.environ), capture_output=True, text=True,
                          timeout=timeout, check=False)


def json_output(result: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    # Airflow prints log lines before the JSON document.
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert lines, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def migrated() -> None:
    result = airflow("db", "migrate")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_provider_is_registered_with_its_connection_type():
    providers = airflow("providers", "list", "-o", "json")
    assert providers.returncode == 0, providers.stderr[-2000:]
    assert any(p["package_name"] == "airflow-provider-revcent" for p in json_output(providers))
    hooks = json_output(airflow("providers", "hooks", "-o", "json"))
    entry = [h for h in hooks if h.get("connection_type") == "revcent"]
    assert entry, hooks
    assert entry[0]["class"] == "airflow_revcent.hooks.revcent.RevCentHook"
    behaviours = json_output(airflow("providers", "behaviours", "-o", "json"))
    assert {"field_behaviours": "revcent"} in behaviours
    links = json_output(airflow("providers", "links", "-o", "json"))
    assert {"extra_link_class_name": "airflow_revcent.bigquery.links.BigQueryTableLink"} in links, links
    assert {"extra_link_class_name": "airflow_revcent.bigquery.links.BigQueryJobLink"} in links, links


def test_connection_form_labels_the_api_key_and_hides_unused_fields():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    behaviour = manager.field_behaviours["revcent"]
    assert behaviour["relabeling"]["password"] == "API key"
    assert set(behaviour["hidden_fields"]) == {"schema", "login", "port"}
    assert "https://api.revcent.com" in behaviour["placeholders"]["host"]
    widgets = manager.connection_form_widgets
    assert "extra__revcent__max_concurrency" in widgets


def test_dag_parses_with_one_day_intervals_and_no_catchup():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).parents[2] / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags.get("revcent_customers_to_bigquery")
    assert dag is not None and dag.catchup is False and dag.max_active_runs <= 3
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    task = dag.get_task("customers_to_bigquery")
    assert task.retries >= 1
    assert "destination_table" in task.template_fields


@pytest.mark.parametrize(("opt_in", "pool"), [(None, "default_pool"), ("revcent_api", "revcent_api")])
def test_the_sample_dags_take_the_shared_pool_only_when_the_deployment_names_it(monkeypatch, opt_in, pool):
    # Unset: Airflow's default_pool, which every Airflow has (a missing pool would keep the tasks
    # scheduled forever: tests/integration/test_backfill.py runs the DAG so on a real scheduler).
    from airflow.dag_processing.dagbag import DagBag

    from airflow_revcent import API_POOL_ENV

    monkeypatch.delenv(API_POOL_ENV, raising=False)
    if opt_in:
        monkeypatch.setenv(API_POOL_ENV, opt_in)
    bag = DagBag(dag_folder=str(Path(__file__).parents[2] / "dags"))
    assert bag.import_errors == {}
    assert bag.dags["revcent_customers_to_bigquery"].get_task("customers_to_bigquery").pool == pool
    assert bag.dags["revcent_customers_full_refresh"].get_task("reload_chunk").pool == pool
    resources = bag.dags["revcent_resources_to_bigquery"]
    assert {t.task_id: t.pool for t in resources.tasks} == {
        f"{name}_to_bigquery": pool for name in ("customers", "sales", "transactions")}
    assert {t.resource for t in resources.tasks} == {"customers", "sales", "transactions"}
    history = bag.dags["revcent_full_history"]  # the task group: its tasks that call RevCent
    assert history.get_task("customers_history.plan").pool == pool
    assert history.get_task("customers_history.windows").partial_kwargs["pool"] == pool
    assert history.get_task("customers_history.apply").pool == "default_pool"


@pytest.mark.parametrize(("run_type", "params", "lookback"), [
    ("scheduled", {}, "P35D"),  # the daily schedule keeps earlier days current
    ("scheduled", {"lookback": "P45D"}, "P45D"),
    ("scheduled", {"date_start": "2025-01-01", "date_end": "2025-02-01"}, "P0D"),
    ("backfill", {}, "P0D"),  # a backfill reads exactly its days
    ("backfill", {"lookback": "P7D"}, "P7D"),
    ("manual", {"date_start": "2025-01-01", "date_end": "2025-02-01"}, "P0D"),  # a range is exactly that
    ("manual", {}, "P0D"),
    ("manual", {"date_start": "2025-01-01", "date_end": "2025-02-01", "lookback": "P30D"}, "P30D"),
])
def test_the_sample_dag_looks_back_only_on_scheduled_runs_unless_asked(run_type, params, lookback):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.api.datamodels._generated import DagRunType

    dag = DagBag(dag_folder=str(Path(__file__).parents[2] / "dags")).dags["revcent_customers_to_bigquery"]
    task = dag.get_task("customers_to_bigquery")
    given = {"date_start": None, "date_end": None, "lookback": None, **params}
    rendered = dag.get_template_env().from_string(task.lookback).render(
        params=given, dag_run=SimpleNamespace(run_type=DagRunType(run_type)))
    assert rendered == lookback
    assert dag.params["lookback"] is None  # unset unless a run gives it


def test_dags_test_with_a_date_range_param_lands_the_range_twice_without_duplicates(
    migrated, sandbox, bigquery_server, bq_client, monkeypatch,
):
    # Customers before the first range too: a range run must not look back and land them.
    store = CustomerStore(seed=21, count=500, start=unix(2024, 11, 15), end=unix(2025, 9, 1))
    # A hostile API too: every fault kind but hangs, on 30% of attempts.
    server = sandbox(store, faults=FaultPlan.mixed(seed=9, rate=0.3, slow_ms=100))
    env = dict(os.environ)
    extra = {"max_concurrency": 8, "max_requests_per_second": 0, "retry_initial_backoff": 0.05}
    env["AIRFLOW_CONN_REVCENT_DEFAULT"] = json.dumps({"conn_type": "revcent", "host": server.url, "password": API_KEY,
                                                      "extra": extra})
    env["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"] = json.dumps(
        {"conn_type": "google_cloud_platform", "extra": {"project": bigquery_server.project,
                                                         "api_endpoint": bigquery_server.url, "is_anonymous": True}})
    env["AIRFLOW_VAR_REVCENT_CUSTOMERS_TABLE"] = "revcent_cli.customers"
    # Six months: three windows. Then an overlapping range, and the first again.
    for conf in ({"date_start": "2025-01-01", "date_end": "2025-07-01"},
                 {"date_start": "2025-05-01", "date_end": "2025-08-15T12:00:00Z"},
                 {"date_start": "2025-01-01", "date_end": "2025-07-01"}):
        result = airflow("dags", "test", "revcent_customers_to_bigquery", "-c", json.dumps(conf), env=env)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-3000:]
        assert "Loaded" in output
        assert API_KEY not in output  # `airflow dags test` does not mask; the provider never prints the key
    assert server.stats.faults, "faults were injected"
    assert_table_matches(bq_client, "revcent_cli.customers", store.truth(unix(2025, 1, 1), unix(2025, 8, 15, 12)))
