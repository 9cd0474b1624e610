"""The sandbox's list resources beyond customers and its generated OpenAPI document (issue 18, item 6).

The document must read through the provider's own descriptor reader (airflow_revcent/resources/), with
customers exactly the packaged GetCustomers operation; every resource pages, filters, refuses a range over
its maximum (and records it), and meets the same key check, rate limiter and faults as customers.
"""

from __future__ import annotations

import json
import re
import sys
from decimal import Decimal
from typing import Any

import pytest
import requests

from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.resources import OpenAPIDocument, customers_resource, find_resource, read_resources
from revcent_sandbox import (
    RESOURCE_KINDS,
    CustomerStore,
    FaultPlan,
    ResourceFilter,
    ResourceStore,
    SandboxServer,
    build_document,
)
from revcent_sandbox import openapi as sandbox_openapi
from tests.sandbox.conftest import DAY, START, ServerFactory

KIND = {kind.name: kind for kind in RESOURCE_KINDS}
WINDOWS = {"sales": 90, "transactions": 90, "api_calls": 2, "tax": 90}


def _get(http: requests.Session, server: SandboxServer, name: str, key: str | None = "", **params: Any
         ) -> requests.Response:
    api_key = server.api_key if key == "" else key
    headers = {} if api_key is None else {"x-api-key": api_key}
    return http.get(f"{server.url}/v2/{name}", params=params, headers=headers, timeout=10)


def _window(store: ResourceStore, days: int) -> tuple[int, int]:
    """A half-open window of ``days`` days (or the store's whole range when shorter) from its start."""
    return store.start, min(store.end, store.start + days * DAY)


def _page_all(http: requests.Session, server: SandboxServer, name: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a query, paging as a client that trusts totals only when the envelope has them."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        body = _get(http, server, name, page=page, limit=25, **params).json()
        assert body["code"] == 1, body
        items += body["results"]
        if "total_pages" in body:
            if page >= body["total_pages"]:
                return items
        elif body["current_count"] < 25:
            return items
        page += 1


@pytest.fixture
def document(server: SandboxServer, http: requests.Session) -> dict[str, Any]:
    response = http.get(f"{server.url}/v2/openapi.json", timeout=10)
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


# --- the document ------------------------------------------------------------------------------


def test_the_document_is_openapi_3_1_with_refs_at_every_level(document: dict[str, Any], server: SandboxServer) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": server.url}]
    assert set(document["paths"]) == {"/v2/customers", *(k.path for k in RESOURCE_KINDS)}
    schemas = document["components"]["schemas"]
    sales = document["paths"]["/v2/sales"]["get"]
    # parameters, the response, the envelope (allOf of refs), the item, a nested object: each a $ref.
    assert all(set(p) == {"$ref"} for p in sales["parameters"])
    assert sales["responses"]["200"] == {"$ref": "#/components/responses/SalePage"}
    envelope = schemas["SalePage"]["allOf"]
    assert envelope[:2] == [{"$ref": "#/components/schemas/ListEnvelope"}, {"$ref": "#/components/schemas/ListTotals"}]
    assert envelope[2]["properties"]["results"]["items"] == {"$ref": "#/components/schemas/Sale"}
    assert schemas["Sale"]["properties"]["customer"]["$ref"] == "#/components/schemas/CustomerRef"
    # Refs inside refs: Customer -> CustomerProfile -> lifetime_value -> CustomerLifetimeValue -> all.
    assert schemas["Customer"] == {"allOf": [{"$ref": "#/components/schemas/CustomerProfile"},
                                             {"$ref": "#/components/schemas/CustomerRelations"}]}
    assert schemas["CustomerProfile"]["properties"]["lifetime_value"] == {
        "$ref": "#/components/schemas/CustomerLifetimeValue"}
    assert schemas["CustomerLifetimeValue"]["properties"]["all"] == {
        "$ref": "#/components/schemas/CustomerLifetimeValueAll"}
    # One component with several users: the metadata object of customers and of sales.
    assert schemas["Sale"]["properties"]["metadata"]["items"] == {"$ref": "#/components/schemas/Metadata"}
    assert schemas["CustomerProfile"]["properties"]["metadata"]["items"] == {"$ref": "#/components/schemas/Metadata"}
    # The no-totals envelope really has none.
    assert schemas["TaxPage"]["allOf"][:1] == [{"$ref": "#/components/schemas/ListEnvelope"}]
    assert "ListTotals" not in json.dumps(schemas["TaxPage"])
    assert "a two (2) day period" in document["paths"]["/v2/api_calls"]["get"]["description"]


def test_customers_in_the_document_is_the_packaged_get_customers(document: dict[str, Any]) -> None:
    sandbox = find_resource(OpenAPIDocument(document, source="the sandbox document"), "customers")
    packaged = customers_resource()
    assert sandbox.item_schema == packaged.item_schema  # every field, description and constraint
    assert sandbox.columns == packaged.columns
    assert sandbox.filters == packaged.filters
    assert (sandbox.operation_id, sandbox.path, sandbox.description) == (
        packaged.operation_id, packaged.path, packaged.description)
    assert (sandbox.max_window, sandbox.has_total_count, sandbox.has_total_pages, sandbox.max_page_size) == (
        packaged.max_window, packaged.has_total_count, packaged.has_total_pages, packaged.max_page_size)
    # And the whole operation: its parameters and 200 envelope resolve to the packaged ones.
    op = next(o for o in OpenAPIDocument(document).operations() if o.operation_id == "GetCustomers")
    spec = sandbox_openapi.customers_operation()
    assert list(op.parameters) == spec["parameters"]
    assert op.response_schema == spec["responses"]["200"]["content"]["application/json"]["schema"]


def test_the_document_reads_through_the_descriptor(document: dict[str, Any]) -> None:
    doc = OpenAPIDocument(document, source="the sandbox document")
    resources, unreadable = read_resources(doc)
    assert unreadable == ()
    by_name = {r.name: r for r in resources}
    assert set(by_name) == {"customers", "sales", "transactions", "api_calls", "tax", "functions"}
    for name, days in WINDOWS.items():
        assert by_name[name].max_window.days == days, name
        assert by_name[name].date_ranged
        assert by_name[name].server is not None and by_name[name].server.startswith("http://127.0.0.1:")
    assert not by_name["functions"].date_ranged
    assert (by_name["tax"].has_total_count, by_name["tax"].has_total_pages) == (False, False)
    assert by_name["sales"].has_total_count and by_name["sales"].has_total_pages
    assert [f.name for f in by_name["sales"].filters] == ["campaign_filter", "currency_filter"]
    assert [f.name for f in by_name["transactions"].filters] == ["campaign_filter", "currency_filter", "gateway_filter"]
    source = by_name["api_calls"].filter("api_call_source_filter")
    assert source is not None and source.array and source.enum == ("api", "portal", "mcp")
    currency = by_name["sales"].filter("currency_filter")
    assert currency is not None and (currency.min_length, currency.max_length) == (3, 3)

    def column(resource: str, name: str) -> tuple[str, str, tuple[str, ...]]:
        col = next(c for c in by_name[resource].columns if c.name == name)
        return col.type, col.mode, tuple(f"{f.name}:{f.type}" for f in col.fields)

    assert column("transactions", "amount_net") == ("NUMERIC", "NULLABLE", ())
    assert column("transactions", "approved") == ("BOOLEAN", "NULLABLE", ())
    assert column("transactions", "id") == ("STRING", "REQUIRED", ())
    assert column("transactions", "created_date_unix") == ("INTEGER", "NULLABLE", ())
    assert column("tax", "rate") == ("NUMERIC", "NULLABLE", ())
    assert column("sales", "product_sales") == ("STRING", "REPEATED", ())
    assert column("sales", "customer") == ("RECORD", "NULLABLE", ("id:STRING", "email:STRING"))  # ref resolved
    assert column("sales", "metadata") == ("RECORD", "REPEATED", ("name:STRING", "value:STRING"))
    assert column("api_calls", "api_account") == ("RECORD", "NULLABLE", ("id:STRING", "name:STRING"))
    # By operationId too; a list without a date range is refused with the ones that can be landed.
    assert find_resource(doc, "GetTaxes").path == "/v2/tax"
    with pytest.raises(RevCentConfigError, match="without a date range") as info:
        find_resource(doc, "functions")
    assert "api_calls (GetAPICalls)" in str(info.value)


def test_the_document_is_built_from_the_spec_file_when_the_provider_is_not_importable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The sandbox's image carries the JSON file, not the provider package.
    with_provider = build_document("http://h:1")
    monkeypatch.setitem(sys.modules, "airflow_revcent.spec", None)  # makes the import raise ImportError
    sandbox_openapi._packaged_text.cache_clear()
    try:
        assert build_document("http://h:1") == with_provider
    finally:
        sandbox_openapi._packaged_text.cache_clear()


def test_the_document_needs_no_key_and_describes_only_what_is_served(
    store: CustomerStore, make_server: ServerFactory, http: requests.Session
) -> None:
    alone = make_server(store, resources={})
    response = http.get(f"{alone.url}/v2/openapi.json", timeout=10)
    assert response.status_code == 200
    assert list(response.json()["paths"]) == ["/v2/customers"]
    assert _get(http, alone, "sales", date_start=START, date_end=START + DAY, page=1, limit=25).status_code == 404
    assert alone.stats.by_path == {"/v2/openapi.json": 1, "/v2/sales": 1}


# --- data ---------------------------------------------------------------------------------------


def test_the_data_is_deterministic_and_refers_to_the_customers(server: SandboxServer, store: CustomerStore) -> None:
    again = SandboxServer(CustomerStore(seed=7, count=300, start=store.start, end=store.end), api_key="k")
    other = SandboxServer(CustomerStore(seed=8, count=300, start=store.start, end=store.end), api_key="k")
    for name, resource in server.resources.items():
        assert resource.truth_bytes() == again.resources[name].truth_bytes(), name
        assert resource.truth_bytes() != other.resources[name].truth_bytes(), name
        items = resource.truth()
        assert len({i["id"] for i in items}) == len(items) == len(resource)
        assert all(re.fullmatch(r"[0-9A-Za-z]{20}", i["id"]) for i in items)
        assert all(resource.start <= i["created_date_unix"] < resource.end for i in items)
    customer_ids = {c["id"] for c in store.truth(store.start, store.end)}
    for name in ("sales", "transactions", "tax"):
        assert {i["customer_id"] for i in server.resources[name].truth()} <= customer_ids, name


def test_money_is_served_as_exact_decimals(server: SandboxServer) -> None:
    money = ("amount", "amount_total", "amount_gross", "amount_net", "amount_fees", "amount_refunded",
             "amount_remaining")
    items = server.resources["transactions"].truth(exact=True)
    values = [item[f] for item in items for f in money]
    # At most two decimals, never a float's binary tail; the awkward amounts are among them.
    assert all(isinstance(v, int) or (isinstance(v, Decimal) and v.as_tuple().exponent >= -2) for v in values)
    assert {Decimal("0.1"), Decimal("0.2"), Decimal("0.3"), Decimal("19.99"), Decimal("123456.78")} <= set(values)


# --- paging, windows, filters ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(WINDOWS))
def test_each_resource_pages_to_exactly_its_truth(server: SandboxServer, http: requests.Session, name: str) -> None:
    store = server.resources[name]
    start, end = _window(store, WINDOWS[name])
    items = _page_all(http, server, name, date_start=start, date_end=end - 1)  # date_end is inclusive
    truth = store.truth(start, end)
    assert len(truth) > 25, "the window must span several pages"
    assert sorted(i["id"] for i in items) == sorted(i["id"] for i in truth)
    assert len({i["id"] for i in items}) == len(items)
    keys = [(i["created_date_unix"], i["id"]) for i in items]
    assert keys == sorted(keys, reverse=True)  # newest first, as customers
    if name == "tax":
        body = _get(http, server, name, date_start=start, date_end=end - 1, page=1, limit=25).json()
        assert set(body) == {"api_call_id", "api_call_unix", "code", "current_count", "current_page", "results"}


def test_a_list_without_a_date_range_pages_without_dates(server: SandboxServer, http: requests.Session) -> None:
    items = _page_all(http, server, "functions")
    assert sorted(i["id"] for i in items) == sorted(i["id"] for i in server.resources["functions"].truth())


@pytest.mark.parametrize(("name", "days"), [*sorted(WINDOWS.items()), ("customers", 90)])
def test_a_range_over_the_maximum_is_refused_and_recorded(
    server: SandboxServer, http: requests.Session, name: str, days: int
) -> None:
    ok = _get(http, server, name, date_start=START, date_end=START + days * DAY, page=1, limit=25)
    assert ok.status_code == 200
    assert server.stats.over_range == {}
    refused = _get(http, server, name, date_start=START, date_end=START + days * DAY + 1, page=1, limit=25)
    assert refused.status_code == 400
    body = refused.json()
    assert (body["code"], body["error_code"]) == (0, "invalid_date_range")
    assert f"cannot exceed {days} days" in body["message"]
    stats = server.stats
    path = f"/v2/{name}"
    assert stats.over_range == {path: 1}
    assert stats.widest_range == {path: days * DAY + 1}


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("sales", {"currency_filter": ["USD"]}, "currency"),
        ("sales", {"currency_filter": ["EUR", "GBP"]}, "currency"),
        ("transactions", {"currency_filter": ["CAD"]}, "currency"),
        ("tax", {"currency_filter": ["USD"]}, "currency"),
        ("api_calls", {"api_call_source_filter": ["mcp"]}, "source"),
    ],
)
def test_filters_really_filter(
    server: SandboxServer, http: requests.Session, name: str, params: dict[str, list[str]], field: str
) -> None:
    store = server.resources[name]
    start, end = _window(store, WINDOWS[name])
    items = _page_all(http, server, name, date_start=start, date_end=end - 1, **params)
    wanted = set(next(iter(params.values())))
    truth = store.truth(start, end, ResourceFilter.of(**params))
    assert items and all(i[field] in wanted for i in items)
    assert sorted(i["id"] for i in items) == sorted(i["id"] for i in truth)
    assert len(items) < len(store.truth(start, end))


def test_id_filters_match_their_nested_or_flat_fields(server: SandboxServer, http: requests.Session) -> None:
    transactions = server.resources["transactions"]
    gateway = transactions.gateways[0][0]
    start, end = _window(transactions, 90)
    items = _page_all(http, server, "transactions", date_start=start, date_end=end - 1, gateway_filter=gateway)
    assert items and {i["gateway_id"] for i in items} == {gateway}
    calls = server.resources["api_calls"]
    account = calls.api_accounts[1]
    start, end = _window(calls, 2)
    items = _page_all(http, server, "api_calls", date_start=start, date_end=end - 1, api_account_filter=account)
    assert items and {i["api_account"]["id"] for i in items} == {account}


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("sales", {"currency_filter": "US"}, "3 characters"),
        ("sales", {"status_filter": "enabled"}, "not a filter of GetSales"),
        ("sales", {"currency_filter[]": "USD"}, "not a filter"),
        ("transactions", {"gateway_filter": "short"}, "20 characters"),
        ("api_calls", {"api_call_source_filter": "cron"}, "must be one of"),
        ("tax", {"limit": 26}, "limit must be between 1 and 25"),
    ],
)
def test_bad_filters_and_parameters_are_refused(
    server: SandboxServer, http: requests.Session, name: str, params: dict[str, Any], message: str
) -> None:
    query = {"date_start": START + 100 * DAY, "date_end": START + 101 * DAY, "page": 1, "limit": 25, **params}
    response = _get(http, server, name, **query)
    assert response.status_code == 400
    assert response.json()["code"] == 0 and message in response.json()["message"]


# --- what every resource shares with customers -----------------------------------------------------


def test_every_resource_needs_the_key(server: SandboxServer, http: requests.Session) -> None:
    for kind in RESOURCE_KINDS:
        for key in (None, "wrong"):
            response = _get(http, server, kind.name, key=key, date_start=START, date_end=START + DAY, page=1, limit=5)
            assert response.status_code == 401, (kind.name, key)
            assert response.json()["error_code"] == "unauthorized"


def test_every_resource_meets_the_fault_plan(
    store: CustomerStore, make_server: ServerFactory, http: requests.Session
) -> None:
    server = make_server(store, faults=FaultPlan(seed=1, rates={"503": 1.0}, max_faults_per_request=1))
    params: dict[str, Any] = {"date_start": START + 110 * DAY, "date_end": START + 111 * DAY, "page": 1, "limit": 5}
    for kind in RESOURCE_KINDS:
        first, second = (_get(http, server, kind.name, **params) for _ in range(2))
        assert (first.status_code, second.status_code) == (503, 200), kind.name
        assert first.json()["code"] == 0
    assert http.get(f"{server.url}/v2/openapi.json", timeout=10).status_code == 503
    assert server.stats.faults == {"503": len(RESOURCE_KINDS) + 1}


def test_a_truncated_page_of_a_no_totals_resource(
    store: CustomerStore, make_server: ServerFactory, http: requests.Session
) -> None:
    server = make_server(store, faults=FaultPlan(seed=1, rates={"truncated": 1.0}, max_faults_per_request=1))
    params: dict[str, Any] = {"date_start": START, "date_end": START + 30 * DAY, "page": 1, "limit": 25}
    cut = _get(http, server, "tax", **params)
    assert cut.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)
    assert _get(http, server, "tax", **params).json()["current_count"] == 25


def test_the_shift_fault_inserts_into_the_resource_s_range(
    store: CustomerStore, make_server: ServerFactory, http: requests.Session
) -> None:
    server = make_server(store, faults=FaultPlan(seed=1, rates={"shift": 1.0}, max_shifts=1, shift_size=4))
    sales = server.resources["sales"]
    start, end = START + 10 * DAY, START + 20 * DAY
    before = len(sales.truth(start, end))
    first = _get(http, server, "sales", date_start=start, date_end=end - 1, page=1, limit=25).json()
    assert first["total_count"] == before  # the page answered is from before the insert
    assert len(sales.truth(start, end)) == before + 4
    assert _get(http, server, "sales", date_start=start, date_end=end - 1, page=1, limit=25).json()[
        "total_count"] == before + 4


def test_every_resource_shares_the_rate_limit(
    store: CustomerStore, make_server: ServerFactory, http: requests.Session
) -> None:
    server = make_server(store, rate_limit=0.5)  # one token, refilled in 2 s: the second request is refused
    params: dict[str, Any] = {"date_start": START, "date_end": START + DAY, "page": 1, "limit": 5}
    assert _get(http, server, "sales", **params).status_code == 200
    limited = _get(http, server, "api_calls", **params)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert server.stats.rate_limited == 1


def test_the_truth_endpoint_serves_each_resource(server: SandboxServer, http: requests.Session) -> None:
    tax = server.resources["tax"]
    start, end = START, START + 30 * DAY
    query: dict[str, Any] = {"resource": "tax", "date_start": start, "date_end": end, "currency_filter": "USD"}
    response = http.get(f"{server.url}/_sandbox/truth", params=query, timeout=10)
    assert response.content == b"".join(
        line + b"\n" for line in tax.truth_bytes(start, end, ResourceFilter.of(currency_filter=["USD"])))
    everything = http.get(f"{server.url}/_sandbox/truth", params={"resource": "functions"}, timeout=10)
    assert len(everything.content.splitlines()) == len(server.resources["functions"])
    unknown = http.get(f"{server.url}/_sandbox/truth", params={"resource": "nope"}, timeout=10)
    assert unknown.status_code == 400 and "customers" in unknown.json()["message"]
    assert server.stats.requests == 0  # test endpoints are not API requests


def test_integration_truth_reads_another_resource_with_its_columns(document: dict[str, Any],
                                                                   server: SandboxServer) -> None:
    from tests.integration.truth import expected_row

    columns = find_resource(OpenAPIDocument(document), "transactions").columns
    # The awkward 0.1, an amount binary floating point cannot hold.
    item = next(i for i in server.resources["transactions"].truth() if i["amount_gross"] == 0.1)
    row = expected_row(item, columns)
    assert set(row) == {c.name for c in columns}
    assert row["amount_gross"] == Decimal("0.1") and row["approved"] is item["approved"]


def test_the_command_line_sizes_the_other_resources(store: CustomerStore) -> None:
    from revcent_sandbox.__main__ import build_parser
    from revcent_sandbox.resources import resources_for

    args = build_parser().parse_args(["--items-per-resource", "30"])
    sized = resources_for(store, args.items_per_resource)
    assert set(sized) == {k.name for k in RESOURCE_KINDS}
    assert all(len(s) == 30 + 8 for s in sized.values())  # 8 edge-case items on top
    assert resources_for(store, build_parser().parse_args(["--items-per-resource", "0"]).items_per_resource) == {}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--items-per-resource", "-1"])


def test_the_default_resources_are_generated_only_when_used(server: SandboxServer, http: requests.Session) -> None:
    # Most servers (the customers suites, the benchmark) never touch them: they cost nothing there.
    response = http.get(f"{server.url}/v2/customers", headers={"x-api-key": server.api_key},
                        params={"date_start": START, "date_end": START + DAY, "page": 1, "limit": 5}, timeout=10)
    assert response.status_code == 200
    assert server._resources is None
    assert _get(http, server, "tax", date_start=START, date_end=START + DAY, page=1, limit=5).status_code == 200
    assert server._resources is not None and set(server._resources) == {k.name for k in RESOURCE_KINDS}


def test_the_resources_command_reads_the_saved_document(document: dict[str, Any], tmp_path: Any) -> None:
    import io

    from airflow_revcent.resources.cli import main

    saved = tmp_path / "openapi.json"
    saved.write_text(json.dumps(document), encoding="utf-8")
    out = io.StringIO()
    assert main(["resources", "--spec", str(saved), "--json"], out=out) == 0
    listed = {r["name"]: r for r in json.loads(out.getvalue())["resources"]}
    assert listed["api_calls"]["max_window_days"] == 2 and not listed["functions"]["date_ranged"]
    out = io.StringIO()
    assert main(["resources", "tax", "--spec", str(saved)], out=out) == 0
    assert "amount_total" in out.getvalue() and "NUMERIC" in out.getvalue()


def test_the_server_validates_filters_as_the_document_states(document: dict[str, Any]) -> None:
    from revcent_sandbox.server import _RESOURCE_FILTER_RULES

    doc = OpenAPIDocument(document)
    for kind in RESOURCE_KINDS:
        resource = next(r for r in read_resources(doc)[0] if r.name == kind.name)
        assert [f.name for f in resource.filters] == list(kind.filters), kind.name
        for f in resource.filters:
            length, allowed = _RESOURCE_FILTER_RULES[f.name]
            assert (f.min_length, f.max_length) == (length, length), f.name
            assert set(f.enum) == (allowed or set()), f.name
