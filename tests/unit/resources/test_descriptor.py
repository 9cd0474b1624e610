from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.resources import (
    OpenAPIDocument,
    Resource,
    customers_resource,
    find_resource,
    list_resources,
    packaged_document,
    parse_max_window,
)
from airflow_revcent.rows.columns import customer_columns, find_column
from airflow_revcent.spec import load_spec
from tests.unit.resources.synthetic import synthetic_document


@pytest.fixture
def doc() -> OpenAPIDocument:
    return OpenAPIDocument(synthetic_document(), source="synthetic.json")


def test_only_get_list_operations_are_resources(doc):
    resources = list_resources(doc)
    assert [(r.operation_id, r.path, r.name) for r in resources] == [
        ("GetSales", "/v2/sales", "sales"),  # not CreateSale (POST), not GetSale (no results array)
        ("GetTransactions", "/v2/transactions", "transactions"),
        ("GetAPICalls", "/v2/api_calls", "api_calls"),
        ("GetAIMemos", "/v2/ai_memos", "ai_memos"),
        ("GetTaxes", "/v2/tax", "tax"),
        ("GetCustomerCards", "/v2/customer_cards", "customer_cards"),
        ("GetFunctions", "/v2/functions", "functions"),
    ]
    assert [r.name for r in resources if not r.date_ranged] == ["functions"]
    assert {r.server for r in resources} == {"https://api.revcent.com"}


def test_windows_come_from_the_descriptions(doc):
    windows = {r.name: r.max_window.days for r in list_resources(doc)}
    assert windows == {"sales": 90, "transactions": 90, "api_calls": 2, "ai_memos": 7, "tax": 90,
                       "customer_cards": 90, "functions": 90}


@pytest.mark.parametrize(
    ("description", "days"),
    [
        ("The difference between date_start and date_end cannot exceed a 90 day period.", 90),
        ("The difference between date_start and date_end cannot exceed a two (2) day period.", 2),
        ("The date range cannot exceed 7 day(s).", 7),
        ("The range may be at most thirty days. Items older than 365 days are archived.", 30),
        ("Returns a list of functions.", 90),
        ("", 90),
    ],
)
def test_parse_max_window(description, days):
    assert parse_max_window(description) == timedelta(days=days)


def test_page_size_comes_from_the_limit_parameter(doc):
    assert find_resource(doc, "sales").max_page_size == 25
    assert find_resource(doc, "tax").max_page_size == 25  # the operation's limit, not the path item's
    assert customers_resource().max_page_size == 25


def test_envelope_totals(doc):
    by_name = {r.name: r for r in list_resources(doc)}
    assert (by_name["sales"].has_total_count, by_name["sales"].has_total_pages) == (True, True)
    assert (by_name["tax"].has_total_count, by_name["tax"].has_total_pages) == (False, False)


def test_filters_with_their_constraints(doc):
    sales = find_resource(doc, "sales")
    assert [f.name for f in sales.filters] == ["campaign_filter", "currency_filter", "metadata_filter"]
    campaign, currency, metadata = sales.filters
    assert (campaign.array, campaign.type, campaign.min_length, campaign.max_length) == (True, "string", 20, 20)
    assert campaign.value_description == "A 20 character campaign ID."
    assert (currency.array, currency.enum) == (True, ("USD", "EUR", "GBP"))
    assert (metadata.deep_object, metadata.type, metadata.properties, metadata.required) == (
        True, "object", ("name", "value"), ("name", "value"))
    assert not metadata.additional_properties
    assert metadata.defaults == (("value", "METADATA_NAME_EXISTS"),)
    cards = find_resource(doc, "customer_cards")
    by_name = {f.name: f for f in cards.filters}
    assert set(by_name) == {"metadata_filter", "customer_id", "is_default", "min_amount"}  # not the header
    assert (by_name["customer_id"].array, by_name["customer_id"].max_length) == (False, 20)
    assert not find_resource(doc, "transactions").filter("gateway_filter").explode


def test_item_schema_becomes_typed_columns(doc):
    columns = find_resource(doc, "sales").columns
    assert [c.name for c in columns] == ["id", "created_date_unix", "amount_total", "currency", "product_sales",
                                         "customer", "metadata", "updated_at"]

    def col(path: str) -> tuple[str, str]:
        found = find_column(columns, path)
        assert found is not None, path
        return found.type, found.mode

    assert col("id") == ("STRING", "REQUIRED")
    assert col("created_date_unix") == ("INTEGER", "NULLABLE")
    assert col("amount_total") == ("NUMERIC", "NULLABLE")
    assert find_column(columns, "amount_total").description == "An amount of money."
    assert col("product_sales") == ("STRING", "REPEATED")
    assert col("customer.name") == ("STRING", "NULLABLE")
    assert col("metadata") == ("RECORD", "REPEATED")
    assert col("updated_at") == ("TIMESTAMP", "NULLABLE")  # type ["string", "null"]
    assert find_column(find_resource(doc, "api_calls").columns, "api_account.id").type == "STRING"


@pytest.mark.parametrize("name", ["sales", "GetSales", "getsales", " Sales "])
def test_lookup_by_path_name_or_operation_id(doc, name):
    assert find_resource(doc, name).operation_id == "GetSales"


def test_tax_is_found_by_its_singular_path(doc):
    assert find_resource(doc, "tax").operation_id == "GetTaxes"
    assert find_resource(doc, "GetTaxes").path == "/v2/tax"


def test_a_resource_the_document_lacks_lists_what_it_has(doc):
    with pytest.raises(RevCentConfigError, match=r"synthetic.json has no list resource 'chargebacks'") as err:
        find_resource(doc, "chargebacks")
    assert "sales (GetSales), transactions (GetTransactions), api_calls (GetAPICalls)" in str(err.value)
    assert "functions" not in str(err.value)  # not landable, not offered


@pytest.mark.parametrize(
    ("name", "why"),
    [("functions", "is a list without a date range"), ("CreateSale", "has no list resource"),
     ("GetSale", r"'GetSale' \(GetSale, /v2/sales/\{sale_id\}\) is not a list operation")],
)
def test_what_is_not_a_date_ranged_list_is_refused(doc, name, why):
    with pytest.raises(RevCentConfigError, match=why) as err:
        find_resource(doc, name)
    assert "sales (GetSales), transactions (GetTransactions)" in str(err.value)


def test_functions_is_named_as_a_list_without_a_date_range(doc):
    with pytest.raises(RevCentConfigError, match=r"'functions' \(GetFunctions, /v2/functions\) is a list without"):
        find_resource(doc, "functions")


def test_key_and_created_field_default_and_are_overridable(doc):
    sales = find_resource(doc, "sales")
    assert (sales.key_field, sales.created_field) == ("id", "created_date_unix")
    overridden = find_resource(doc, "sales", key_field="currency", created_field="amount_total")
    assert (overridden.key_field, overridden.created_field) == ("currency", "amount_total")
    assert find_column(overridden.columns, "currency").mode == "REQUIRED"
    assert find_column(overridden.columns, "id").mode == "NULLABLE"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"key_field": "sale_id"}, r"key_field='sale_id' is not a top-level field of the items of 'sales' \(GetSales\); "
                               r"their fields are id, created_date_unix, .*fields that could serve: id, "),
    ({"key_field": "customer.id"}, r"key_field='customer.id' is not a top-level field"),
    ({"key_field": "product_sales"}, r"key_field='product_sales' is a list of STRING .*string or integer"),
    ({"key_field": "customer"}, r"key_field='customer' is RECORD"),
    ({"created_field": "updated_at"}, r"created_field='updated_at' is \w+ in the items of 'sales'.*unix seconds; "
                                      r"fields that could serve: created_date_unix, amount_total\. Pass created_field"),
])
def test_a_key_or_creation_field_that_cannot_serve_is_refused_naming_the_fields(doc, overrides, message):
    with pytest.raises(RevCentConfigError, match=message):
        find_resource(doc, "sales", **overrides)


def test_resource_is_frozen(doc):
    with pytest.raises(dataclasses.FrozenInstanceError):
        find_resource(doc, "sales").path = "/v2/other"  # type: ignore[misc]  # assigning on purpose


def test_the_packaged_getcustomers_document_is_the_customers_resource():
    customers = customers_resource()
    assert isinstance(customers, Resource)
    assert (customers.operation_id, customers.path, customers.name, customers.server) == (
        "GetCustomers", "/v2/customers", "customers", "https://api.revcent.com")
    assert customers.max_window == timedelta(days=90) and customers.date_ranged
    assert (customers.has_total_count, customers.has_total_pages) == (True, True)
    assert [f.name for f in customers.filters] == ["campaign_filter", "customer_group_filter", "product_filter",
                                                   "status_filter", "metadata_filter"]
    assert customers.columns == customer_columns()  # the same mapping, not a copy of it
    assert list_resources(packaged_document()) == (customers,)


def test_columns_follow_the_document_not_a_copy():
    spec = load_spec()
    item = spec["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["results"]["items"]
    changed = {**spec, "responses": {"200": {"content": {"application/json": {"schema": {"properties": {
        "results": {"type": "array", "items": {"allOf": [*item["allOf"], {"properties": {
            "loyalty_tier": {"type": "string"}}}]}}}}}}}}}
    resource = find_resource(OpenAPIDocument(changed), "customers")
    assert resource.columns[:-1] == customer_columns()
    assert resource.columns[-1].name == "loyalty_tier"
