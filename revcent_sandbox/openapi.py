"""The sandbox's OpenAPI 3.1 document, served at ``GET /v2/openapi.json``.

It has the shape of RevCent's full document: ``servers``, ``paths`` and ``components``, with ``$ref``
at several levels (parameters, responses, envelopes, item schemas, nested objects, refs inside refs) and
``allOf`` composition. The customers operation is RevCent's own: the packaged ``GetCustomers`` document
(``airflow_revcent/spec/``), moved into components piece by piece, so once its refs are resolved it is
the packaged operation again, unchanged. The other resources' schemas are the sandbox's own test fixtures
(see :mod:`revcent_sandbox.resources`), never the provider's types.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any, Final

from revcent_sandbox.resources import API_CALL_SOURCES, RESOURCE_KINDS, ResourceKind

__all__ = ["OPENAPI_PATH", "build_document", "customers_operation"]

OPENAPI_PATH: Final = "/v2/openapi.json"

JSONDict = dict[str, Any]
_SPEC_FILE: Final = "GetCustomers.openapi.json"


def _ref(kind: str, name: str, **siblings: Any) -> JSONDict:
    return {"$ref": f"#/components/{kind}/{name}", **siblings}


@cache
def _packaged_text() -> str:
    # The provider's spec module is the one place that knows where the file lives; the sandbox's image
    # carries only the JSON file, beside the package at the same relative path as in the repository.
    try:
        from airflow_revcent.spec import load_spec
    except ImportError:
        path = Path(__file__).resolve().parents[1] / "airflow_revcent" / "spec" / _SPEC_FILE
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RuntimeError(
                f"The GetCustomers operation ({_SPEC_FILE}) is missing at {path}: the sandbox builds "
                "/v2/openapi.json from it. Run the sandbox from the repository, or copy the file there."
            ) from exc
    return json.dumps(load_spec())


def customers_operation() -> JSONDict:
    """The packaged GetCustomers operation (a fresh copy)."""
    operation: JSONDict = json.loads(_packaged_text())
    return operation


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _hoist(node: JSONDict, prefix: str, schemas: JSONDict) -> None:
    """Move every nested object schema (properties, array items, allOf parts) of ``node`` into
    ``schemas`` as ``prefix + FieldName``, in place, leaving a ``$ref``; deepest first, so a hoisted
    schema holds refs itself (refs inside refs)."""
    for part in node.get("allOf", ()):
        _hoist(part, prefix, schemas)
    for field_name, child in list(node.get("properties", {}).items()):
        target, holder, key = child, node["properties"], field_name
        if child.get("type") == "array" and isinstance(child.get("items"), dict):
            target, holder, key = child["items"], child, "items"
        if "properties" in target or "allOf" in target:
            name = _camel(field_name)
            name = name if name.startswith(prefix) else prefix + name
            _hoist(target, name, schemas)
            schemas[name] = target
            holder[key] = _ref("schemas", name)


def _customers(components: JSONDict) -> JSONDict:
    """GetCustomers, its parameters, envelope, item and nested objects moved into ``components``."""
    op = customers_operation()
    params = components["parameters"]
    refs = []
    for param in op.pop("parameters"):
        name = _camel(param["name"]) if param["name"] != "status_filter" else "CustomerStatusFilter"
        params[name] = param
        refs.append(_ref("parameters", name))
    op["parameters"] = refs
    schemas = components["schemas"]
    envelope = op["responses"]["200"]["content"]["application/json"]["schema"]
    item = envelope["properties"]["results"]["items"]
    profile, relations = item["allOf"]
    # The metadata object is shared with other resources (one component, many users).
    schemas["Metadata"] = profile["properties"]["metadata"].pop("items")
    profile["properties"]["metadata"]["items"] = _ref("schemas", "Metadata")
    _hoist(profile, "Customer", schemas)
    schemas["CustomerProfile"], schemas["CustomerRelations"] = profile, relations
    schemas["Customer"] = {"allOf": [_ref("schemas", "CustomerProfile"), _ref("schemas", "CustomerRelations")]}
    envelope["properties"]["results"]["items"] = _ref("schemas", "Customer")
    schemas["CustomersPage"] = envelope
    components["responses"]["Error"] = op["responses"].pop("default")
    schemas["APIStandardErrors"] = components["responses"]["Error"]["content"]["application/json"].pop("schema")
    components["responses"]["Error"]["content"]["application/json"]["schema"] = _ref("schemas", "APIStandardErrors")
    op["responses"] = {
        "200": {"description": "Success response.",
                "content": {"application/json": {"schema": _ref("schemas", "CustomersPage")}}},
        "default": _ref("responses", "Error"),
    }
    op.pop("method", None)
    op.pop("path", None)
    return op


# --- the sandbox's own resources -----------------------------------------------------------------

def _s(kind: str, description: str, **more: Any) -> JSONDict:
    return {"type": kind, "description": description, **more}


_ID: Final = {"type": "string", "minLength": 20, "maxLength": 20}
_MONEY: Final = {"type": "number", "format": "float"}


def _id(description: str) -> JSONDict:
    return {**_ID, "description": description}


def _money(description: str) -> JSONDict:
    return {**_MONEY, "description": description}


def _base(what: str) -> JSONDict:
    return {
        "id": _id(f"A 20 character {what} ID."),
        "created_date_unix": _s("integer", f"The unix timestamp of when the {what} was created.", format="unix-time"),
    }


def _own_schemas() -> JSONDict:
    customer_ref = {"type": "object", "additionalProperties": False,
                    "properties": {"id": _id("A 20 character customer ID."), "email": _s("string", "Customer email.")}}
    api_account = {"type": "object", "additionalProperties": False,
                   "properties": {"id": _id("A 20 character API account ID."), "name": _s("string", "Account name.")}}
    sale = {"type": "object", "properties": {
        **_base("sale"),
        "customer_id": _id("The customer's ID."),
        "campaign_id": _id("The campaign's ID."),
        "currency": _s("string", "ISO 4217 currency code."),
        "status": _s("string", "The sale status.", enum=["approved", "pending", "refunded"]),
        "amount_total": _money("The sale total."),
        "product_sales": {"type": "array", "description": "Product sale IDs.", "items": _id("A product sale ID.")},
        "customer": _ref("schemas", "CustomerRef", description="The sale's customer."),
        "metadata": {"type": "array", "description": "Metadata name/value pairs.",
                     "items": _ref("schemas", "Metadata")},
        "updated_date_unix": _s("integer", "When the sale was last updated.", format="unix-time"),
    }}
    transaction = {"type": "object", "properties": {
        **_base("transaction"),
        "customer_id": _id("The customer's ID."),
        "sale_id": _id("The sale's ID."),
        "campaign_id": _id("The campaign's ID."),
        "currency": _s("string", "ISO 4217 currency code."),
        **{name: _money(f"The transaction {name.replace('_', ' ')}.") for name in (
            "amount", "amount_total", "amount_gross", "amount_net", "amount_fees", "amount_refunded",
            "amount_remaining")},
        **{name: _s("boolean", f"Whether the transaction is {name}.") for name in (
            "approved", "declined", "held", "captured", "settled", "void")},
        "gateway_id": _id("The gateway's ID."),
        "gateway_name": _s("string", "The gateway's name."),
        "gateway_transaction_id": _s("string", "The gateway's own transaction ID."),
    }}
    api_call = {"type": "object", "properties": {
        **_base("API call"),
        "type": _s("string", "The operation called."),
        "method": _s("string", "The HTTP method."),
        "source": _s("string", "Where the call came from.", enum=list(API_CALL_SOURCES)),
        "api_account": _ref("schemas", "APIAccount"),
        "ip_address": _s("string", "The caller's IP address."),
        "response_code": _s("integer", "The response code (1 success, 0 error)."),
    }}
    tax = {"type": "object", "properties": {
        **_base("tax"),
        "customer_id": _id("The customer's ID."),
        "sale_id": _id("The sale's ID."),
        "name": _s("string", "The tax name."),
        "currency": _s("string", "ISO 4217 currency code."),
        "rate": _money("The tax rate, in percent."),
        "amount": _money("The taxed amount."),
        "amount_total": _money("The amount including tax."),
    }}
    function = {"type": "object", "properties": {
        **_base("function"),
        "name": _s("string", "The function name."),
        "enabled": _s("boolean", "Whether the function runs."),
        "trigger": _s("string", "What runs it."),
    }}
    return {"CustomerRef": customer_ref, "APIAccount": api_account, "Sale": sale, "Transaction": transaction,
            "APICall": api_call, "Tax": tax, "Function": function}


def _own_parameters() -> JSONDict:
    def array(name: str, description: str, items: JSONDict) -> JSONDict:
        return {"name": name, "in": "query", "description": description, "required": False,
                "schema": {"type": "array", "items": items}, "style": "form", "explode": True}

    return {
        "CurrencyFilter": array("currency_filter", "To filter items based on one or more currencies.",
                                {"type": "string", "description": "ISO 4217 currency code.",
                                 "minLength": 3, "maxLength": 3}),
        "GatewayFilter": array("gateway_filter", "To filter items based on one or more gateways.",
                               _id("A 20 character gateway ID.")),
        "ApiAccountFilter": array("api_account_filter", "To filter items based on one or more API accounts.",
                                  _id("A 20 character API account ID.")),
        "ApiCallSourceFilter": array("api_call_source_filter", "To filter API calls based on their source.",
                                     {"type": "string", "enum": list(API_CALL_SOURCES)}),
    }


_FILTER_COMPONENTS: Final = {
    "campaign_filter": "CampaignFilter", "currency_filter": "CurrencyFilter", "gateway_filter": "GatewayFilter",
    "api_account_filter": "ApiAccountFilter", "api_call_source_filter": "ApiCallSourceFilter",
}
_RANGE_WORDS: Final = {2: "a two (2) day period", 90: "a 90 day period"}


def _operation(kind: ResourceKind, schemas: JSONDict, responses: JSONDict) -> JSONDict:
    noun = kind.name.replace("_", " ")
    if kind.date_ranged:
        description = (f"Returns a list of {noun} previously created. The date_start, date_end, page and limit URL "
                       "parameters are required. The difference between date_start and date_end cannot exceed "
                       f"{_RANGE_WORDS.get(kind.max_days or 0, f'a {kind.max_days} day period')}.")
        params = [_ref("parameters", n) for n in ("DateStart", "DateEnd", "Limit", "Page")]
    else:
        description = f"Returns a list of {noun}. The page and limit URL parameters are required."
        params = [_ref("parameters", n) for n in ("Limit", "Page")]
    params += [_ref("parameters", _FILTER_COMPONENTS[name]) for name in kind.filters]
    page = f"{kind.schema_name}Page"
    envelope = [_ref("schemas", "ListEnvelope")] + ([_ref("schemas", "ListTotals")] if kind.totals else [])
    schemas[page] = {"type": "object", "allOf": [*envelope, {"type": "object", "properties": {
        "results": {"type": "array", "items": _ref("schemas", kind.schema_name)}}}]}
    # A response object in components (a ref to a response, whose schema is a ref, whose parts are refs).
    responses[page] = {"description": "Success response.",
                       "content": {"application/json": {"schema": _ref("schemas", page)}}}
    return {"summary": f"Get {noun.title()}", "description": description, "operationId": kind.operation_id,
            "parameters": params, "responses": {"200": _ref("responses", page), "default": _ref("responses", "Error")}}


def build_document(server_url: str) -> JSONDict:
    """The full document for a sandbox reachable at ``server_url`` (``http://host:port``, no trailing slash).

    :param server_url: what ``servers[0].url`` says.
    """
    components: JSONDict = {"parameters": {}, "responses": {}, "schemas": {}}
    paths: JSONDict = {"/v2/customers": {"get": _customers(components)}}
    schemas, params = components["schemas"], components["parameters"]
    customers_page = schemas["CustomersPage"]["properties"]
    # The envelope the other resources share, cut from the customers' (same descriptions and types).
    schemas["ListEnvelope"] = {"type": "object", "properties": {
        k: copy.deepcopy(customers_page[k]) for k in ("api_call_id", "api_call_unix", "code", "current_count",
                                                       "current_page")}}
    schemas["ListTotals"] = {"type": "object", "properties": {
        k: copy.deepcopy(customers_page[k]) for k in ("total_count", "total_pages")}}
    schemas.update(_own_schemas())
    params.update(_own_parameters())
    for kind in RESOURCE_KINDS:
        paths[kind.path] = {"get": _operation(kind, schemas, components["responses"])}
    return {
        "openapi": "3.1.0",
        "info": {"title": "RevCent API (sandbox)", "version": "2.0.0",
                 "description": "The RevCent sandbox's resources. Customers is RevCent's GetCustomers operation; "
                                "the other item schemas are the sandbox's own test fixtures."},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": components,
    }
