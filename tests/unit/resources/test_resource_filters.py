from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from airflow_revcent.api.filters import CustomerFilters, Filters, MetadataFilter, validate_filters
from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.resources import OpenAPIDocument, customers_resource, find_resource
from tests.unit.resources.synthetic import synthetic_document

ID = "I" * 20
CAMPAIGN = "C" * 20


@pytest.fixture(scope="module")
def doc() -> OpenAPIDocument:
    return OpenAPIDocument(synthetic_document(), source="synthetic.json")


def test_nothing_set_is_no_filter(doc):
    sales = find_resource(doc, "sales")
    empties: tuple[dict[str, Any] | None, ...] = (None, {}, {"currency_filter": None}, {"currency_filter": []})
    for empty in empties:
        assert validate_filters(sales, empty) == Filters()
    assert not Filters().active and Filters().to_params() == []


def test_values_encode_in_each_parameters_style(doc):
    sales = find_resource(doc, "sales")
    filters = validate_filters(sales, {
        "metadata_filter": [{"name": "source", "value": "fb"}, {"name": "vip"}],
        "currency_filter": ["usd", " EUR "],  # enums match regardless of case and spaces
        "campaign_filter": CAMPAIGN,  # a lone value is a one-element list
    })
    assert filters.to_params() == [  # in the operation's parameter order
        ("campaign_filter", CAMPAIGN),
        ("currency_filter", "USD"),
        ("currency_filter", "EUR"),
        ("metadata_filter[0][name]", "source"),
        ("metadata_filter[0][value]", "fb"),
        ("metadata_filter[1][name]", "vip"),
        ("metadata_filter[1][value]", "METADATA_NAME_EXISTS"),
    ]
    assert filters.describe() == {"campaign_filter": [CAMPAIGN], "currency_filter": ["USD", "EUR"],
                                  "metadata_filter": [{"name": "source", "value": "fb"},
                                                      {"name": "vip", "value": "METADATA_NAME_EXISTS"}]}
    assert filters.active


def test_scalars_and_unexploded_arrays(doc):
    cards = find_resource(doc, "customer_cards")
    filters = validate_filters(cards, {"customer_id": ID, "is_default": "True", "min_amount": "9.5"})
    assert filters.to_params() == [("customer_id", ID), ("is_default", "true"), ("min_amount", "9.5")]
    assert filters.describe() == {"customer_id": ID, "is_default": True, "min_amount": 9.5}
    transactions = find_resource(doc, "transactions")
    assert validate_filters(transactions, {"gateway_filter": [ID, "J" * 20]}).to_params() == [
        ("gateway_filter", f"{ID},{'J' * 20}")]


@pytest.mark.parametrize(
    ("resource", "filters", "message"),
    [
        ("sales", {"gateway_filter": [ID]},
         r"sales \(GetSales\) has no filter 'gateway_filter'\. It accepts: campaign_filter \(list of string of "
         r"exactly 20 characters\); currency_filter \(list of string in USD, EUR, GBP\); metadata_filter"),
        ("sales", {"currency_filter": ["JPY"]}, r"currency_filter value 'JPY' is unknown; use any of USD, EUR, GBP"),
        ("sales", {"campaign_filter": ["short"]}, r"campaign_filter value 'short' is not a RevCent id.*20"),
        ("sales", {"campaign_filter": 7}, r"campaign_filter=7 must be a list"),
        ("sales", {"metadata_filter": ["source=fb"]}, r"metadata_filter\[0\]='source=fb' must be an object like"),
        ("sales", {"metadata_filter": [{"name": "a", "val": "x"}]}, r"metadata_filter\[0\] has unknown keys \['val'\]"),
        ("sales", {"metadata_filter": [{"value": "x"}]}, r"metadata_filter\[0\] has no name"),
        ("sales", {"metadata_filter": [{"name": "a", "value": ""}]}, r"non-empty string 'value'"),
        ("sales", ["currency_filter"], r"filters=\['currency_filter'\] must be a mapping"),
        ("customer_cards", {"customer_id": [ID]}, r"customer_id=\[.*\] takes one value, not a list"),
        ("customer_cards", {"is_default": "maybe"}, r"is_default value 'maybe' is not a valid boolean"),
        ("customer_cards", {"min_amount": "lots"}, r"min_amount value 'lots' is not a valid number"),
        ("customer_cards", {"customer_id": 5}, r"customer_id value 5 is not a RevCent id"),
        ("customer_cards", {"date_start": 5}, r"has no filter 'date_start'"),  # the pipeline sets it
    ],
)
def test_bad_filters_name_the_value_and_what_is_accepted(doc, resource, filters, message):
    with pytest.raises(RevCentConfigError, match=message):
        validate_filters(find_resource(doc, resource), filters)


def test_lengths_without_an_id_description():
    document = synthetic_document()
    document["components"]["schemas"]["Currency"] = {"type": "string", "minLength": 3, "maxLength": 3}
    sales = find_resource(OpenAPIDocument(document), "sales")
    assert validate_filters(sales, {"currency_filter": ["usd"]}).to_params() == [("currency_filter", "usd")]
    with pytest.raises(RevCentConfigError, match=r"currency_filter value 'US' has 2 characters; .*exactly 3"):
        validate_filters(sales, {"currency_filter": ["US"]})


def test_customer_filters_are_the_customers_case_of_the_generic_validation():
    raw = {"campaign_filter": [CAMPAIGN], "status_filter": ["Enabled", "fraud"],
           "metadata_filter": [{"name": "source", "value": "fb"}, {"name": "vip"}]}
    generic = validate_filters(customers_resource(), raw)
    preset = CustomerFilters.build(**raw)
    assert preset.to_params() == generic.to_params()
    assert urlencode(preset.to_params()) == urlencode(generic.to_params())
    assert preset.describe() == generic.describe()


def test_customer_filters_still_take_metadata_filter_objects():
    filters = CustomerFilters.build(metadata_filter=[MetadataFilter("a"), {"name": "b", "value": "c"}])
    assert filters.metadata_filter == (MetadataFilter("a"), MetadataFilter("b", "c"))
    assert CustomerFilters.build(metadata_filter=MetadataFilter("x")).metadata_filter == (MetadataFilter("x"),)


def test_a_required_filter_must_be_given():
    document = synthetic_document()
    cards = document["paths"]["/v2/customer_cards"]["get"]["parameters"]
    next(p for p in cards if p.get("name") == "customer_id")["required"] = True
    resource = find_resource(OpenAPIDocument(document), "customer_cards")
    assert resource.filter("customer_id").summary().endswith(", required")
    for given in (None, {}, {"customer_id": None}, {"is_default": True}):
        with pytest.raises(RevCentConfigError, match=r"customer_cards \(GetCustomerCards\) requires 'customer_id'"):
            validate_filters(resource, given)
    assert validate_filters(resource, {"customer_id": ID}).to_params() == [("customer_id", ID)]
