"""Every sandbox resource lands exactly through RevCentToBigQueryOperator, typed from the sandbox's own
OpenAPI document (read from its /v2/openapi.json, $refs at every level); the 2-day resource never asks for a
wider window; the resource without totals pages to its end; filters reach the API; bad filters fail before
any request. One sandbox for the module, a few dozen items per resource."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.resources import OpenAPIDocument, find_resource
from revcent_sandbox import CustomerStore, SandboxServer
from revcent_sandbox.openapi import build_document
from revcent_sandbox.resources import ResourceFilter, resources_for

from .conftest import API_KEY, unix
from .truth import assert_table_matches, table_rows

START, END = unix(2026, 1, 1), unix(2026, 1, 21)
RANGE = {"date_start": "2026-01-01", "date_end": "2026-01-21"}


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    store = CustomerStore(seed=83, count=30, start=START, end=END)
    sandbox = SandboxServer(store, api_key=API_KEY, resources=resources_for(store, count=40)).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def document(server: SandboxServer) -> OpenAPIDocument:
    return OpenAPIDocument(build_document(server.url), source="the sandbox document")


def run(resource: str, run_id: str = "manual__resources", **kwargs: Any) -> dict[str, Any]:
    from airflow_revcent.transfers.revcent_to_bigquery import RevCentToBigQueryOperator

    operator = RevCentToBigQueryOperator(task_id=f"{resource}_to_bigquery", resource=resource, **kwargs)
    context = {"run_id": run_id, "ti": SimpleNamespace(dag_id="it", task_id=operator.task_id,
                                                                     map_index=-1)}
    return operator.execute(context)  # type: ignore[arg-type]  # a plain dict stands in for Airflow's Context


def _schema(bq_client: Any, table: str) -> dict[str, tuple[str, str]]:
    fields = bq_client.get_table(f"{bq_client.project}.{table}").schema
    return {f.name: (f.field_type, f.mode) for f in fields}


@pytest.mark.parametrize("name", ["sales", "transactions", "tax"])
def test_each_resource_lands_exactly_typed_as_its_document_says(name, server, document, connections, bq_client,
                                                               table_name):
    connections(server)
    server.reset_stats()
    summary = run(name, destination_table=table_name, page_size=7, **RANGE)
    resource = find_resource(document, name)
    truth = server.resources[name].truth(START, END, exact=True)
    assert_table_matches(bq_client, table_name, truth, columns=resource.columns)
    assert summary["records_loaded"] == len(truth) > 7 and summary["resource"] == name
    description = bq_client.get_table(f"{bq_client.project}.{table_name}").description
    assert description.startswith(f"RevCent {name} (GET /v2/{name}), one row per {name} item id")
    schema = _schema(bq_client, table_name)
    assert schema["amount_total"] == ("NUMERIC", "NULLABLE") and schema["id"] == ("STRING", "REQUIRED")
    if name == "sales":
        assert schema["product_sales"] == ("STRING", "REPEATED")
        assert schema["metadata"] == ("RECORD", "REPEATED") and schema["customer"] == ("RECORD", "NULLABLE")
    # The document came from the sandbox (one request), every page after it.
    assert server.stats.by_path.get("/v2/openapi.json") == 1
    if name == "tax":  # no totals: read page after page to a short page, so at least len/7 + 1 pages
        assert server.stats.by_path["/v2/tax"] >= len(truth) // 7 + 1
        assert summary["count_mismatches"] == []


def test_the_two_day_resource_never_asks_for_more_than_two_days(server, document, connections, bq_client,
                                                                  table_name):
    connections(server)
    server.reset_stats()
    summary = run("GetAPICalls", destination_table=table_name, **RANGE)
    truth = server.resources["api_calls"].truth(START, END, exact=True)
    assert_table_matches(bq_client, table_name, truth, columns=find_resource(document, "api_calls").columns)
    stats = server.stats
    assert stats.over_range == {} and stats.widest_range["/v2/api_calls"] <= 2 * 86400
    assert summary["windows"] >= 10  # 20 days in windows of at most 2


def test_filters_reach_the_api(server, document, connections, bq_client, table_name):
    connections(server)
    summary = run("sales", destination_table=table_name, filters={"currency_filter": ["USD", "EUR"]}, **RANGE)
    truth = server.resources["sales"].truth(START, END, ResourceFilter.of(currency_filter=["USD", "EUR"]),
                                            exact=True)
    everything = server.resources["sales"].truth(START, END)
    assert 0 < len(truth) < len(everything)
    assert_table_matches(bq_client, table_name, truth, columns=find_resource(document, "sales").columns)
    assert summary["records_loaded"] == len(truth)


@pytest.mark.parametrize(("filters", "message"), [
    ({"gateway_filter": ["x"]}, r"sales \(GetSales\) has no filter 'gateway_filter'\. It accepts: campaign_filter"),
    ({"currency_filter": ["DOLLARS"]}, r"currency_filter"),
])
def test_bad_filters_fail_before_any_request(filters, message, server, connections, bq_client, table_name,
                                             tmp_path):
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(build_document(server.url)))
    connections(server, openapi_spec=str(spec))
    server.reset_stats()
    with pytest.raises(RevCentConfigError, match=message):
        run("sales", destination_table=table_name, filters=filters, **RANGE)
    assert server.stats.requests == 0
    assert table_rows(bq_client, table_name) == []


def test_the_served_document_has_refs_at_every_level(server):
    import urllib.request

    request = urllib.request.Request(server.url + "/v2/openapi.json", headers={"x-api-key": API_KEY})
    with urllib.request.urlopen(request) as answer:
        text = answer.read().decode()
    for target in ("#/components/parameters/", "#/components/schemas/", "#/components/responses/"):
        assert f'"$ref": "{target}' in text or f'"$ref":"{target}' in text, target


def test_a_resource_keyed_on_another_field_lands_and_merges_on_that_column(server, document, connections, bq_client,
                                                                          table_name):
    connections(server)
    key = "gateway_transaction_id"
    first = run("transactions", destination_table=table_name, key_field=key, **RANGE)
    truth = server.resources["transactions"].truth(START, END, exact=True)
    columns = find_resource(document, "transactions", key_field=key).columns
    assert_table_matches(bq_client, table_name, truth, columns=columns)
    assert first["rows_inserted"] == len(truth) > 0
    table = bq_client.get_table(f"{bq_client.project}.{table_name}")
    schema = {f.name: f.mode for f in table.schema}
    assert schema[key] == "REQUIRED" and schema["id"] == "NULLABLE"
    assert key in (table.clustering_fields or []) and "id" not in (table.clustering_fields or [])
    # Another writer changes every stored id: rows are still matched on the key, so a second read inserts none.
    bq_client.query(f"UPDATE `{bq_client.project}.{table_name}` SET id = CONCAT('moved_', id) WHERE TRUE").result()
    again = run("transactions", run_id="manual__again", destination_table=table_name, key_field=key, **RANGE)
    assert not again["already_applied"] and again["rows_inserted"] == 0 and again["records_loaded"] == len(truth)
    rows = table_rows(bq_client, table_name)
    assert sorted(r[key] for r in rows) == sorted(t[key] for t in truth)  # each once
    assert all(r["id"].startswith("moved_") for r in rows)  # not matched on id (that would insert each again)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"key_field": "transaction_ref"}, r"key_field='transaction_ref' is not a top-level field of the items of "
                                       r"'transactions' \(GetTransactions\); their fields are id, "),
    ({"created_field": "gateway_name"}, r"created_field='gateway_name' is STRING .*unix seconds; fields that "
                                        r"could serve: created_date_unix"),
])
def test_a_key_or_creation_field_that_cannot_serve_fails_before_any_page(overrides, message, server, connections,
                                                                          bq_client, table_name):
    connections(server)
    server.reset_stats()
    with pytest.raises(RevCentConfigError, match=message):
        run("transactions", destination_table=table_name, **overrides, **RANGE)
    assert server.stats.list_requests == 0 and table_rows(bq_client, table_name) == []


def test_customers_come_from_the_served_document_by_default(server, connections, bq_client, table_name):
    from airflow_revcent.resources import customers_resource

    connections(server)
    server.reset_stats()
    summary = run("customers", destination_table=table_name, **RANGE)
    assert server.stats.by_path.get("/v2/openapi.json") == 1  # once for the task
    assert summary["requests"] == server.stats.requests  # the document request is one of the run's
    # The sandbox's customers are the packaged operation's: the same columns, whichever the run used.
    assert_table_matches(bq_client, table_name, server.store.truth(START, END), columns=customers_resource().columns)
