"""A RevCent list resource described as data, built from RevCent's OpenAPI document.

A list resource is a ``GET`` operation whose 200 response carries a ``results`` array. It is
*date-ranged* when it takes ``date_start`` and ``date_end``; only those can be landed window by window.
Everything the pipeline needs comes from the operation: the path, the maximum window (from its
description), the filter parameters, the item schema (and so the columns), and whether the envelope
declares ``total_count``/``total_pages``. The key (``id``) and creation time (``created_date_unix``)
are RevCent's convention; a resource that differs overrides them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cache, cached_property
from typing import Any

from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.resources.openapi import OpenAPIDocument, Operation
from airflow_revcent.rows.columns import Column, item_columns, merged_properties
from airflow_revcent.spec import load_spec

#: The range a list operation takes when its description states none.
DEFAULT_MAX_WINDOW = timedelta(days=90)
#: Query parameters the pipeline sets itself; every other query parameter is a filter.
PIPELINE_PARAMETERS = ("date_start", "date_end", "page", "limit")
DEFAULT_KEY_FIELD = "id"
DEFAULT_CREATED_FIELD = "created_date_unix"

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "fourteen": 14, "thirty": 30, "sixty": 60, "ninety": 90,
}
# "90 day period", "a two (2) day period", "7 day(s)", "30-day", "ninety days".
_DAYS = re.compile(r"(?:\((\d+)\)|\b(\d+)|\b(" + "|".join(_NUMBER_WORDS) + r"))\s*-?\s*days?\b", re.IGNORECASE)
# Only sentences about the date range state its limit (a description may mention days elsewhere).
_RANGE_WORDS = re.compile(r"exceed|period|range|date_start|date_end|maximum|at most|up to", re.IGNORECASE)


def parse_max_window(description: str) -> timedelta:
    """The maximum date range an operation's description states; :data:`DEFAULT_MAX_WINDOW` when it says none.

    The smallest figure wins when a description states several (the API enforces the strictest).

    :param description: the operation's description.
    """
    days: list[int] = []
    for sentence in re.split(r"(?<=[.!?])\s+", description or ""):
        if not _RANGE_WORDS.search(sentence):
            continue
        for paren, digits, word in _DAYS.findall(sentence):
            days.append(int(paren or digits) if (paren or digits) else _NUMBER_WORDS[word.lower()])
    return timedelta(days=min(days)) if days else DEFAULT_MAX_WINDOW


@dataclass(frozen=True)
class FilterParam:
    """One optional query parameter of a list operation, as its schema constrains it.

    :param name: the parameter name (``status_filter``).
    :param array: whether it takes a list (``type: array``) rather than one value.
    :param type: the JSON type of one value (of an element, for an array): string, integer, number,
        boolean or object.
    :param style: ``form`` or ``deepObject``.
    :param explode: for ``form`` arrays, whether each value is its own repeated key.
    :param enum: the allowed values, when the schema lists them.
    :param min_length: the shortest string value allowed.
    :param max_length: the longest string value allowed.
    :param properties: the keys of an object value (deepObject), in schema order.
    :param required: the keys an object value must carry.
    :param additional_properties: whether an object value may carry other keys.
    :param defaults: per key, the value to use when an object value leaves a required key out (a key
        whose description documents ``METADATA_NAME_EXISTS``).
    :param description: the parameter's description.
    :param value_description: the description (or title) of one value.
    :param mandatory: whether the operation requires it (``required: true``).
    """

    name: str
    array: bool
    type: str
    style: str = "form"
    explode: bool = True
    enum: tuple[Any, ...] = ()
    min_length: int | None = None
    max_length: int | None = None
    properties: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    additional_properties: bool = True
    defaults: tuple[tuple[str, str], ...] = ()
    description: str = ""
    value_description: str = ""
    mandatory: bool = False

    @property
    def deep_object(self) -> bool:
        """Whether the value is encoded ``name[i][key]=...`` (OpenAPI's deepObject style)."""
        return self.style == "deepObject"

    def summary(self) -> str:
        """What the parameter accepts, in a few words (for messages and the ``resources`` command)."""
        kind = f"list of {self.type}" if self.array else self.type
        if self.enum:
            kind += " in " + ", ".join(map(str, self.enum))
        if self.min_length is not None and self.min_length == self.max_length:
            kind += f" of exactly {self.min_length} characters"
        elif self.min_length is not None or self.max_length is not None:
            kind += f" of {self.min_length or 0}..{self.max_length if self.max_length is not None else ''} characters"
        if self.properties:
            keys = ", ".join(k + ("" if k in self.required else "?") for k in self.properties)
            kind += f" {{{keys}}}"
        if self.deep_object:
            kind += " (deepObject)"
        return kind + (", required" if self.mandatory else "")


def _filter_param(param: Mapping[str, Any]) -> FilterParam:
    schema = param.get("schema") or {}
    array = schema.get("type") == "array"
    value = (schema.get("items") or {}) if array else schema
    props = merged_properties(value)
    kind = value.get("type") or ("object" if props else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    return FilterParam(
        name=str(param["name"]),
        array=array,
        type=str(kind),
        style=str(param.get("style", "form")),
        explode=bool(param.get("explode", param.get("style", "form") == "form")),
        enum=tuple(value.get("enum", ())),
        min_length=value.get("minLength"),
        max_length=value.get("maxLength"),
        properties=tuple(props),
        required=tuple(value.get("required", ())),
        additional_properties=value.get("additionalProperties", True) is not False,
        defaults=tuple((k, "METADATA_NAME_EXISTS") for k, p in props.items()
                       if "METADATA_NAME_EXISTS" in str(p.get("description", ""))),
        description=str(param.get("description", "")),
        value_description=str(value.get("description") or value.get("title") or ""),
        mandatory=param.get("required") is True,
    )


@dataclass(frozen=True)
class Resource:
    """One RevCent list resource: everything the pipeline needs to land it, as plain values.

    :param operation_id: ``GetSales``.
    :param path: the request path, ``/v2/sales``.
    :param name: the path's last segment, ``sales`` (``tax`` for ``/v2/tax``).
    :param server: ``scheme://host`` of the document's first server, or ``None``.
    :param description: the operation's description.
    :param max_window: the longest ``date_start``..``date_end`` range one request may ask for.
    :param date_ranged: whether the operation takes ``date_start`` and ``date_end``.
    :param filters: its optional query parameters, in the document's order.
    :param item_schema: the schema of one element of ``results``, refs resolved.
    :param key_field: the field that identifies an item.
    :param created_field: the item's creation time (unix seconds), which windows and partitions use.
    :param has_total_count: whether the envelope declares ``total_count``.
    :param has_total_pages: whether the envelope declares ``total_pages``.
    :param max_page_size: the ``limit`` parameter's maximum, when the document states one.
    """

    operation_id: str
    path: str
    name: str
    server: str | None
    description: str
    max_window: timedelta
    date_ranged: bool
    filters: tuple[FilterParam, ...]
    item_schema: Mapping[str, Any] = field(hash=False, repr=False)
    key_field: str = DEFAULT_KEY_FIELD
    created_field: str = DEFAULT_CREATED_FIELD
    has_total_count: bool = False
    has_total_pages: bool = False
    max_page_size: int | None = None

    @cached_property
    def columns(self) -> tuple[Column, ...]:
        """The item schema as typed columns (the customers mapping); the key column is REQUIRED."""
        return item_columns(self.item_schema, key=self.key_field, name=self.name)

    @property
    def item_fields(self) -> tuple[str, ...]:
        """The item's top-level field names, in schema order."""
        return tuple(merged_properties(self.item_schema))

    def filter(self, name: str) -> FilterParam | None:
        """The filter parameter called ``name``, if the operation has one.

        :param name: the parameter name.
        """
        return next((f for f in self.filters if f.name == name), None)


def _list_resource(op: Operation) -> Resource | None:
    if op.method != "get":
        return None
    envelope = merged_properties(op.response_schema)
    results = envelope.get("results")
    if not isinstance(results, Mapping) or results.get("type") != "array":
        return None
    query = [p for p in op.parameters if p.get("in") == "query"]
    names = {str(p.get("name")) for p in query}
    limit = next((p.get("schema") or {} for p in query if p.get("name") == "limit"), {})
    return Resource(
        operation_id=op.operation_id,
        path=op.path,
        name=_name(op.path),
        server=op.server,
        description=op.description,
        max_window=parse_max_window(op.description),
        date_ranged={"date_start", "date_end"} <= names,
        filters=tuple(_filter_param(p) for p in query if p.get("name") not in PIPELINE_PARAMETERS),
        item_schema=results.get("items") or {},
        has_total_count="total_count" in envelope,
        has_total_pages="total_pages" in envelope,
        max_page_size=limit.get("maximum") if isinstance(limit.get("maximum"), int) else None,
    )


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def read_resources(document: OpenAPIDocument) -> tuple[tuple[Resource, ...], tuple[tuple[Operation, str], ...]]:
    """Every list resource of the document, and every ``GET`` operation that could not be read, with why.

    :param document: RevCent's OpenAPI document.
    """
    resources: list[Resource] = []
    unreadable: list[tuple[Operation, str]] = []
    for op in document.operations():
        if op.method != "get":
            continue
        try:
            resource = _list_resource(op)
        except RevCentConfigError as exc:
            unreadable.append((op, str(exc)))
            continue
        if resource is not None:
            resources.append(resource)
    return tuple(resources), tuple(unreadable)


def list_resources(document: OpenAPIDocument) -> tuple[Resource, ...]:
    """Every list resource of the document (date-ranged or not), in the document's order.

    An operation whose schema cannot be read (a broken or cyclic ``$ref``) is left out here;
    :func:`find_resource` names its problem when it is asked for, and :func:`read_resources` lists them.

    :param document: RevCent's OpenAPI document.
    """
    return read_resources(document)[0]


def _offered(document: OpenAPIDocument) -> str:
    listed = [f"{r.name} ({r.operation_id})" for r in list_resources(document) if r.date_ranged]
    return ", ".join(listed) if listed else "none"


def find_resource(
    document: OpenAPIDocument,
    name: str,
    *,
    key_field: str | None = None,
    created_field: str | None = None,
) -> Resource:
    """The date-ranged list resource called ``name``: its path's last segment or its operationId.

    :param document: RevCent's OpenAPI document.
    :param name: ``"sales"``, ``"tax"`` or ``"GetSales"`` (case does not matter).
    :param key_field: the item's identifying field, when not ``id``.
    :param created_field: the item's creation time (unix seconds), when not ``created_date_unix``.
    :raises RevCentConfigError: the document has no such list, it is not date-ranged, its schema has a
        broken ``$ref``, or its items lack the key or creation field; the message lists the resources the
        document offers.
    """
    wanted = str(name).strip().lower()
    matches = [op for op in document.operations()
               if op.method == "get" and wanted in (_name(op.path).lower(), op.operation_id.lower())]
    # Only the operations asked for are read, so their $ref problems are raised and named here.
    built = [r for r in map(_list_resource, matches) if r is not None]
    match = next((r for r in built if r.date_ranged), None)
    if match is None and built:
        other = built[0]
        raise RevCentConfigError(
            f"{other.name!r} ({other.operation_id}, {other.path}) is a list without a date range (no date_start and "
            f"date_end), so it cannot be landed window by window. The date-ranged list resources of "
            f"{document.source}: {_offered(document)}."
        )
    if match is None:
        what = (f"{name!r} ({matches[0].operation_id}, {matches[0].path}) is not a list operation (its 200 response "
                "has no results array)") if matches else f"{document.source} has no list resource {name!r}"
        raise RevCentConfigError(
            f"{what}. The list resources it offers: {_offered(document)}. Give one of these names (or its operationId)."
        )
    key = key_field or match.key_field
    created = created_field or match.created_field
    _check_fields(match, key, created, key_given=key_field is not None, created_given=created_field is not None)
    return replace(match, key_field=key, created_field=created)


#: Column types an item's key may have: one scalar the statements compare with ``=`` (``T.key = S.key``).
KEY_TYPES = ("STRING", "INTEGER")
#: Column types a creation time in unix seconds may have.
CREATED_TYPES = ("INTEGER", "NUMERIC")


def _check_fields(resource: Resource, key: str, created: str, *, key_given: bool, created_given: bool) -> None:
    """The key and creation fields must be top-level fields of the item, of a type they can serve as: the key
    a single string or integer (windows de-duplicate on it, the table is merged on it), the creation time an
    integer or number of unix seconds (it picks the window and the partition). Raises naming the argument, its
    value and the fields that could serve."""
    fields = resource.item_fields
    if not fields:
        return  # an item schema without properties: nothing to check against (the pages are, item by item)
    columns = {c.name: c for c in resource.columns}
    where = f"the items of {resource.name!r} ({resource.operation_id})"
    for argument, value, given, types, what in (
        ("key_field", key, key_given, KEY_TYPES, "the field that identifies an item: a string or integer"),
        ("created_field", created, created_given, CREATED_TYPES,
         "the item's creation time: an integer or number of unix seconds"),
    ):
        column = columns.get(value)
        fit = [c.name for c in resource.columns if c.type in types and c.mode != "REPEATED"]
        shown = f"{argument}={value!r}" if given else f"{argument} (default {value!r})"
        if column is None:
            problem = f"is not a top-level field of {where}; their fields are {', '.join(fields)}"
        elif column.type not in types or column.mode == "REPEATED":
            kind = f"{'a list of ' if column.mode == 'REPEATED' else ''}{column.type}"
            problem = f"is {kind} in {where}"
        else:
            continue
        raise RevCentConfigError(
            f"{shown} {problem}. It must name {what}; fields that could serve: "
            f"{', '.join(fit) if fit else 'none'}. Pass {argument} naming one of them."
        )


@cache
def packaged_document() -> OpenAPIDocument:
    """The GetCustomers operation shipped with the package, as a document."""
    return OpenAPIDocument(load_spec(), source="the packaged GetCustomers operation")


@cache
def customers_resource() -> Resource:
    """The customers resource from the packaged GetCustomers operation."""
    return find_resource(packaged_document(), "customers")
