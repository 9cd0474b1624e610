from __future__ import annotations

import json
import re

import pytest

from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.resources import OpenAPIDocument, Operation, find_resource, read_resources
from airflow_revcent.spec import load_spec
from tests.unit.resources.synthetic import synthetic_document


def _ops(doc: OpenAPIDocument) -> dict[tuple[str, str], Operation]:
    return {(op.method, op.path): op for op in doc.operations()}


def test_every_method_of_every_path_is_an_operation():
    ops = _ops(OpenAPIDocument(synthetic_document()))
    assert ("get", "/v2/sales") in ops and ("post", "/v2/sales") in ops
    assert {op.operation_id for op in ops.values()} >= {"GetSales", "CreateSale", "GetSale", "GetFunctions"}


def test_refs_are_resolved_at_every_level():
    doc = OpenAPIDocument(synthetic_document())
    sales = next(op for op in doc.operations() if op.operation_id == "GetSales")
    campaign = next(p for p in sales.parameters if p["name"] == "campaign_filter")  # a parameter $ref
    # A ref inside a ref (CampaignId -> Id); the description beside the inner $ref wins.
    assert campaign["schema"]["items"] == {"type": "string", "description": "A 20 character campaign ID.",
                                           "minLength": 20, "maxLength": 20}
    currency = next(p for p in sales.parameters if p["name"] == "currency_filter")
    assert currency["schema"]["items"]["enum"] == ["USD", "EUR", "GBP"]  # schema ref -> items ref
    # The response is a components/responses ref; its schema an allOf of refs; nested objects refs too.
    item = sales.response_schema["allOf"][1]["properties"]["results"]["items"]
    assert item["allOf"][0]["properties"]["id"]["maxLength"] == 20
    assert item["allOf"][1]["properties"]["customer"]["properties"]["name"] == {"type": "string"}
    assert "$ref" not in json.dumps(sales.response_schema)


def test_path_item_parameters_are_shared_and_the_operations_win():
    doc = OpenAPIDocument(synthetic_document())
    taxes = next(op for op in doc.operations() if op.operation_id == "GetTaxes")
    by_name = {p["name"]: p for p in taxes.parameters}
    assert set(by_name) == {"date_start", "date_end", "page", "limit"}
    assert by_name["limit"]["schema"]["maximum"] == 25  # the operation's, not the path item's


@pytest.mark.parametrize(
    ("schemas", "message"),
    [
        ({"Node": {"type": "object", "properties": {"child": {"$ref": "#/components/schemas/Node"}}}},
         r"\$ref cycle: #/components/schemas/Node -> #/components/schemas/Node"),
        ({"Node": {"$ref": "#/components/schemas/A"}, "A": {"items": {"$ref": "#/components/schemas/B"}},
          "B": {"$ref": "#/components/schemas/A"}},
         r"cycle: #/components/schemas/A -> #/components/schemas/B -> #/components/schemas/A"),
        ({"Node": {"$ref": "#/components/schemas/Missing"}},
         r"\$ref '#/components/schemas/Missing'.*points at nothing"),
        ({"Node": {"$ref": "other.json#/components/schemas/X"}}, r"'other.json#/components/schemas/X'.*outside"),
    ],
)
def test_bad_refs_are_named(schemas, message):
    document = synthetic_document()
    document["components"]["schemas"].update(schemas)
    document["paths"]["/v2/sales"]["get"]["responses"] = {"200": {"content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Node"}}}}}
    doc = OpenAPIDocument(document, source="doc.json")
    sales = next(op for op in doc.operations() if op.operation_id == "GetSales")  # listing resolves nothing yet
    with pytest.raises(RevCentConfigError, match=message):
        _ = sales.response_schema
    with pytest.raises(RevCentConfigError, match=message):
        find_resource(doc, "sales")
    # One broken operation does not stop the others; listing says which could not be read, and why.
    assert find_resource(doc, "transactions").path == "/v2/transactions"
    resources, unreadable = read_resources(doc)
    assert "sales" not in [r.name for r in resources]
    assert [(op.operation_id, re.search(message, why) is not None) for op, why in unreadable] == [("GetSales", True)]


def test_a_path_item_ref_is_followed():
    document = synthetic_document()
    document["components"]["pathItems"] = {"Sales": document["paths"].pop("/v2/sales")}
    document["paths"]["/v2/sales"] = {"$ref": "#/components/pathItems/Sales"}
    assert find_resource(OpenAPIDocument(document), "GetSales").path == "/v2/sales"


def test_a_shared_component_used_twice_is_not_a_cycle():
    doc = OpenAPIDocument(synthetic_document())
    transactions = next(op for op in doc.operations() if op.operation_id == "GetTransactions")
    item = transactions.response_schema["allOf"][1]["properties"]["results"]["items"]["allOf"]
    assert item[0]["properties"]["id"] == item[1]["properties"]["gateway"]["properties"]["id"]


def test_json_pointer_escapes():
    doc = OpenAPIDocument({"paths": {}, "components": {"schemas": {"a/b": {"type": "string"}, "c~d": {"x": 1}}}})
    assert doc.lookup("#/components/schemas/a~1b") == {"type": "string"}
    assert doc.lookup("#/components/schemas/c~0d") == {"x": 1}


def test_the_packaged_per_operation_document_reads_as_one_path():
    doc = OpenAPIDocument(load_spec())
    assert doc.servers == ("https://api.revcent.com",)
    [op] = list(doc.operations())
    assert (op.method, op.path, op.server, op.operation_id) == ("get", "/v2/customers", "https://api.revcent.com",
                                                               "GetCustomers")
    assert [p["name"] for p in op.parameters][:4] == ["date_start", "date_end", "limit", "page"]


def test_a_server_path_prefixes_the_paths():
    document = synthetic_document()
    document["servers"] = [{"url": "https://api.revcent.com/v2/"}]
    document["paths"] = {"/sales": document["paths"]["/v2/sales"]}
    [get, _post] = list(OpenAPIDocument(document).operations())
    assert (get.server, get.path) == ("https://api.revcent.com", "/v2/sales")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "top level is a list"),
        ('{"openapi": "3.1.0"}', "neither 'paths'"),
        ("{not json", "not valid JSON"),
    ],
)
def test_what_is_not_a_document_is_a_config_error(text, message):
    with pytest.raises(RevCentConfigError, match=message):
        OpenAPIDocument.from_text(text, source="doc.json")


def test_from_file_names_a_missing_file(tmp_path):
    with pytest.raises(RevCentConfigError, match=r"Cannot read the OpenAPI document .*nope.json"):
        OpenAPIDocument.from_file(tmp_path / "nope.json")
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(synthetic_document()), encoding="utf-8")
    assert OpenAPIDocument.from_file(path).source == str(path)
