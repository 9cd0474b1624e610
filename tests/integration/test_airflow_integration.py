"""Assets, OpenLineage, the extra link, provider metadata."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk import Asset, AssetAlias
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_revcent import get_provider_info
from airflow_revcent.bigquery.links import BigQueryJobLink, BigQueryTableLink
from airflow_revcent.rows.columns import table_columns
from airflow_revcent.transfers.customers_to_bigquery import CustomersToBigQueryOperator
from revcent_sandbox import CustomerStore

from .conftest import run_operator, unix

START, END = unix(2026, 4, 1), unix(2026, 4, 8)
RANGE: dict[str, Any] = {"date_start": "2026-04-01", "date_end": "2026-04-08"}


@pytest.fixture
def store() -> CustomerStore:
    return CustomerStore(seed=61, count=80, start=START, end=END)


def test_a_static_destination_is_declared_as_an_outlet_asset_at_parse_time():
    operator = CustomersToBigQueryOperator(task_id="t", destination_table="my-proj.revcent.customers")
    assert operator.outlets == [Asset("bigquery://my-proj/revcent/customers")]
    templated = CustomersToBigQueryOperator(task_id="t", destination_table="{{ var.value.t }}")
    assert templated.outlets == []


def test_the_resolved_table_is_reported_on_an_asset_alias_with_the_load(store, sandbox, connections, table_name):
    connections(sandbox(store))
    events = OutletEventAccessors()
    alias = AssetAlias("revcent_customers")
    summary = run_operator(destination_table=table_name, outlets=[alias], context={"outlet_events": events}, **RANGE)
    [event] = events[alias].asset_alias_events
    dataset, table = table_name.split(".")
    assert event.dest_asset_key.uri == f"bigquery://demo/{dataset}/{table}"
    assert event.extra["records_loaded"] == summary["records_loaded"] > 0
    assert event.extra["interval_start"] == "2026-04-01T00:00:00Z"


def test_openlineage_reports_revcent_in_and_the_table_out_with_schema_and_rows(store, sandbox, connections,
                                                                              table_name):
    server = sandbox(store)
    connections(server)
    operator = CustomersToBigQueryOperator(task_id="t", destination_table=table_name, **RANGE)
    summary = operator.execute({"run_id": "lineage"})
    lineage = operator.get_openlineage_facets_on_complete(None)
    [source] = lineage.inputs
    assert (source.namespace, source.name) == (server.url, "/v2/customers")
    [output] = lineage.outputs
    assert (output.namespace, output.name) == ("bigquery", f"demo.{table_name}")
    fields = {f.name: f for f in output.facets["schema"].fields}
    assert set(fields) == {c.name for c in table_columns()}
    assert fields["customer_card"].type == "ARRAY<RECORD>"
    assert {f.name for f in fields["lifetime_value"].fields} >= {"all", "sale", "last_sale_date"}
    assert output.outputFacets["outputStatistics"].rowCount == summary["records_loaded"]


def test_extra_link_points_at_the_resolved_table_in_the_console(store, sandbox, connections, table_name):
    connections(sandbox(store))
    operator = CustomersToBigQueryOperator(task_id="t", destination_table=table_name, **RANGE)
    link = BigQueryTableLink()
    assert link.get_link(operator, ti_key=None) == ""  # type: ignore[arg-type]  # the link reads the operator, not the key
    operator.execute({"run_id": "link"})
    dataset, table = table_name.split(".")
    assert link.get_link(operator, ti_key=None) == (  # type: ignore[arg-type]  # the link reads the operator, not the key
        f"https://console.cloud.google.com/bigquery?project=demo&ws=!1m5!1m4!4m3!1sdemo!2s{dataset}!3s{table}")
    assert operator.operator_extra_links[0].name == "BigQuery table"
    job = BigQueryJobLink()
    project, location, job_id = operator.last_job  # type: ignore[misc]  # set by execute() above
    assert job_id.startswith("revcent_apply_") and location == "US"
    assert job.get_link(operator, ti_key=None).endswith(  # type: ignore[arg-type]  # the link reads the operator, not the key
        f"?project={project}&j=bq:US:{job_id}&page=queryresults")


def test_provider_info_is_complete():
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-revcent"
    assert info["integrations"][0]["integration-name"] == "RevCent"
    assert info["operators"][0]["python-modules"] == ["airflow_revcent.transfers.customers_to_bigquery"]
    assert info["hooks"][0]["python-modules"] == ["airflow_revcent.hooks.revcent"]
    assert info["connection-types"][0]["connection-type"] == "revcent"
    assert info["extra-links"] == ["airflow_revcent.bigquery.links.BigQueryTableLink",
                                  "airflow_revcent.bigquery.links.BigQueryJobLink"]
    from airflow.sdk.module_loading import import_string  # type: ignore[attr-defined]  # public, not in __all__

    for path in (info["connection-types"][0]["hook-class-name"], *info["extra-links"]):
        assert import_string(path) is not None
