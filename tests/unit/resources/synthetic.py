"""A synthetic OpenAPI 3.1 document shaped like RevCent's, for tests only.

Its schemas are made up from the field names RevCent's guides mention: they exercise the reader
(``$ref`` at every level, refs inside refs, ``allOf``, a path with GET and POST, an envelope without
totals, a list without a date range) and are never used as the product's types.
"""

from __future__ import annotations

import copy
from typing import Any


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _page(item: str, *, totals: bool = True) -> dict[str, Any]:
    envelope = [_ref("schemas", "Envelope" if totals else "EnvelopeWithoutTotals")]
    return {"allOf": [*envelope, {"type": "object",
                                  "properties": {"results": {"type": "array", "items": _ref("schemas", item)}}}]}


def _ok(schema: dict[str, Any]) -> dict[str, Any]:
    return {"200": {"description": "Successful response.", "content": {"application/json": {"schema": schema}}}}


RANGED = [_ref("parameters", n) for n in ("DateStart", "DateEnd", "Page", "Limit")]

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Synthetic RevCent", "version": "2"},
    "servers": [{"url": "https://api.revcent.com"}],
    "paths": {
        "/v2/sales": {
            "get": {
                "operationId": "GetSales",
                "description": "Returns a list of sales. The difference between date_start and date_end cannot "
                               "exceed a 90 day period. Sales older than 30 days are archived.",
                "parameters": [*RANGED, _ref("parameters", "CampaignFilter"), _ref("parameters", "CurrencyFilter"),
                               _ref("parameters", "MetadataFilter")],
                "responses": {"200": _ref("responses", "SalesPage")},
            },
            "post": {
                "operationId": "CreateSale",
                "description": "Creates a sale.",
                "responses": {"200": _ref("responses", "SalesPage")},
            },
        },
        "/v2/transactions": {
            "get": {
                "operationId": "GetTransactions",
                "description": "Returns a list of transactions.",
                "parameters": [*RANGED, _ref("parameters", "GatewayFilter")],
                "responses": _ok(_page("Transaction")),
            },
        },
        "/v2/api_calls": {
            "get": {
                "operationId": "GetAPICalls",
                "description": "Returns a list of API calls. The date range cannot exceed a two (2) day period.",
                "parameters": [*RANGED, {"name": "api_account_filter", "in": "query", "style": "form",
                                         "explode": True, "schema": {"type": "array", "items": _ref("schemas", "Id")}}],
                "responses": _ok(_page("APICall")),
            },
        },
        "/v2/ai_memos": {
            "get": {
                "operationId": "GetAIMemos",
                "description": "Returns a list of AI memos. The maximum date range is 7 day(s).",
                "parameters": RANGED,
                "responses": _ok(_page("Memo")),
            },
        },
        "/v2/tax": {
            # Parameters shared by the path item; the operation's own "limit" wins over the shared one.
            "parameters": [*RANGED[:3], {"name": "limit", "in": "query", "schema": {"type": "integer"}}],
            "get": {
                "operationId": "GetTaxes",
                "description": "Returns a list of taxes.",
                "parameters": [RANGED[3]],
                "responses": _ok(_page("Tax", totals=False)),
            },
        },
        "/v2/customer_cards": {
            "get": {
                "operationId": "GetCustomerCards",
                "description": "Returns a list of customer cards.",
                "parameters": [*RANGED, _ref("parameters", "MetadataFilter"),
                               {"name": "customer_id", "in": "query", "schema": _ref("schemas", "Id")},
                               {"name": "is_default", "in": "query", "schema": {"type": "boolean"}},
                               {"name": "min_amount", "in": "query", "schema": {"type": "number"}},
                               {"name": "x-request-id", "in": "header", "schema": {"type": "string"}}],
                "responses": _ok(_page("CustomerCard")),
            },
        },
        "/v2/functions": {
            "get": {
                "operationId": "GetFunctions",
                "description": "Returns a list of functions.",
                "parameters": RANGED[2:],
                "responses": _ok(_page("Function")),
            },
        },
        "/v2/sales/{sale_id}": {
            "get": {
                "operationId": "GetSale",
                "description": "Returns one sale.",
                "parameters": [{"name": "sale_id", "in": "path", "required": True, "schema": _ref("schemas", "Id")}],
                "responses": _ok(_ref("schemas", "Sale")),
            },
        },
    },
    "components": {
        "parameters": {
            "DateStart": {"name": "date_start", "in": "query", "required": True,
                          "schema": {"type": "integer", "format": "unix-time"}},
            "DateEnd": {"name": "date_end", "in": "query", "required": True,
                        "schema": {"type": "integer", "format": "unix-time"}},
            "Page": {"name": "page", "in": "query", "required": True, "schema": {"type": "integer"}},
            "Limit": {"name": "limit", "in": "query", "required": True,
                      "schema": {"type": "integer", "minimum": 1, "maximum": 25}},
            "CampaignFilter": {"name": "campaign_filter", "in": "query", "style": "form", "explode": True,
                               "schema": {"type": "array", "items": _ref("schemas", "CampaignId")}},
            "CurrencyFilter": {"name": "currency_filter", "in": "query", "style": "form", "explode": True,
                               "schema": _ref("schemas", "CurrencyList")},
            "GatewayFilter": {"name": "gateway_filter", "in": "query", "style": "form", "explode": False,
                              "schema": {"type": "array", "items": _ref("schemas", "Id")}},
            "MetadataFilter": {"name": "metadata_filter", "in": "query", "style": "deepObject", "explode": True,
                               "schema": {"type": "array", "items": _ref("schemas", "MetadataPair")}},
        },
        "responses": {
            "SalesPage": {"description": "Successful response.",
                          "content": {"application/json": {"schema": _page("Sale")}}},
        },
        "schemas": {
            "Id": {"type": "string", "description": "A 20 character ID.", "minLength": 20, "maxLength": 20},
            # A ref inside a ref: its description beside the $ref wins over the target's.
            "CampaignId": {"$ref": "#/components/schemas/Id", "description": "A 20 character campaign ID."},
            "Currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]},
            "CurrencyList": {"type": "array", "items": _ref("schemas", "Currency")},
            "Money": {"type": "number", "format": "float", "description": "An amount of money."},
            "Envelope": {"type": "object", "properties": {
                "code": {"type": "integer"}, "current_count": {"type": "integer"}, "current_page": {"type": "integer"},
                "total_count": {"type": "integer"}, "total_pages": {"type": "integer"}}},
            "EnvelopeWithoutTotals": {"type": "object", "properties": {
                "code": {"type": "integer"}, "current_count": {"type": "integer"},
                "current_page": {"type": "integer"}}},
            "Item": {"type": "object", "properties": {
                "id": _ref("schemas", "Id"),
                "created_date_unix": {"type": "integer", "format": "unix-time"}}},
            "MetadataPair": {"type": "object", "additionalProperties": False, "required": ["name", "value"],
                             "properties": {
                                 "name": {"type": "string", "description": "The metadata name."},
                                 "value": {"type": "string", "description": "The metadata value, or "
                                           "'METADATA_NAME_EXISTS' to match on the name alone."}}},
            "Named": {"type": "object", "properties": {"id": _ref("schemas", "Id"), "name": {"type": "string"}}},
            "Sale": {"allOf": [_ref("schemas", "Item"), {"type": "object", "properties": {
                "amount_total": _ref("schemas", "Money"),
                "currency": _ref("schemas", "Currency"),
                "product_sales": {"type": "array", "items": _ref("schemas", "Id")},
                "customer": _ref("schemas", "Named"),
                "metadata": {"type": "array", "items": _ref("schemas", "MetadataPair")},
                "updated_at": {"type": ["string", "null"], "format": "date-time"}}}]},
            "Transaction": {"allOf": [_ref("schemas", "Item"), {"properties": {
                "amount": _ref("schemas", "Money"), "amount_refunded": _ref("schemas", "Money"),
                "approved": {"type": "boolean"}, "gateway": _ref("schemas", "Named")}}]},
            "APICall": {"allOf": [_ref("schemas", "Item"), {"properties": {
                "type": {"type": "string"}, "method": {"type": "string"},
                "api_account": _ref("schemas", "Named"), "ip_address": {"type": "string"}}}]},
            "Memo": {"allOf": [_ref("schemas", "Item"), {"properties": {"text": {"type": "string"}}}]},
            "Tax": {"allOf": [_ref("schemas", "Item"), {"properties": {
                "amount": _ref("schemas", "Money"), "rate": _ref("schemas", "Money"), "name": {"type": "string"}}}]},
            "CustomerCard": {"allOf": [_ref("schemas", "Item"), {"properties": {
                "first_6": {"type": "string"}, "last_4": {"type": "string"}}}]},
            "Function": {"type": "object", "properties": {"id": _ref("schemas", "Id"), "name": {"type": "string"}}},
        },
    },
}


def synthetic_document() -> dict[str, Any]:
    """A fresh copy (tests may change it)."""
    return copy.deepcopy(_DOCUMENT)
