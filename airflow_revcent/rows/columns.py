"""The table's columns, derived from RevCent's OpenAPI spec so they cannot drift from it.

The spec ships with the package (:mod:`airflow_revcent.spec`). This module turns its customer
object into a neutral tree of :class:`Column` (no BigQuery import, so the per-record code and its
tests stay light); :mod:`airflow_revcent.bigquery.fields` maps the tree to ``SchemaField``
objects.

Type mapping: ``string`` -> STRING, ``string/date-time`` -> TIMESTAMP, ``integer`` -> INTEGER
(``*_unix`` fields keep their integer values), ``number`` -> NUMERIC (every number in the spec is
a money amount or an average of one, and NUMERIC keeps sums exact), ``boolean`` -> BOOLEAN,
``object`` -> RECORD, ``array`` -> REPEATED. ``allOf`` parts are merged. An OpenAPI 3.1 type list
(``["string", "null"]``) maps as its one non-null type. :func:`item_columns` maps any resource's item
schema (refs already resolved, :mod:`airflow_revcent.resources`); :func:`customer_columns` is the
customers case.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.spec import load_spec

#: Columns the pipeline adds. They start with ``_`` so they never collide with an API field.
PARTITION_COLUMN = "_created_at"
UNKNOWN_FIELDS_COLUMN = "_unknown_fields"


@dataclass(frozen=True)
class Column:
    """One column (or nested field) of the customers table.

    :param name: the API field name.
    :param type: STRING, INTEGER, NUMERIC, BOOLEAN, TIMESTAMP, JSON or RECORD.
    :param mode: NULLABLE, REQUIRED or REPEATED.
    :param description: from the spec.
    :param fields: nested columns of a RECORD.
    """

    name: str
    type: str
    mode: str = "NULLABLE"
    description: str = ""
    fields: tuple[Column, ...] = ()


METADATA_COLUMNS: tuple[Column, ...] = (
    Column(PARTITION_COLUMN, "TIMESTAMP", "REQUIRED",
           "created_date_unix as a TIMESTAMP; the table's DAY partitioning column."),
    Column("_content_hash", "STRING", "REQUIRED",
           "SHA-256 of the customer's content as loaded (canonical JSON); changes only when the content does."),
    Column("_first_seen_at", "TIMESTAMP", "REQUIRED", "When this pipeline first loaded the customer."),
    Column("_last_changed_at", "TIMESTAMP", "REQUIRED",
           "When the customer's content last changed in this table (first load included)."),
    Column("_extracted_at", "TIMESTAMP", "REQUIRED",
           "When the API page that carried the current content was last received (not when the run started); "
           "a later read of the same content moves it."),
    Column("_interval_start", "TIMESTAMP", "REQUIRED",
           "Start (inclusive) of the run interval that wrote the current version."),
    Column("_interval_end", "TIMESTAMP", "REQUIRED",
           "End (exclusive) of the run interval that wrote the current version."),
    Column("_run_id", "STRING", "NULLABLE", "The Airflow run that wrote the current version."),
    Column(UNKNOWN_FIELDS_COLUMN, "JSON", "NULLABLE",
           "Values the spec does not describe (or that conflicted with their column's type), by field path."),
)


#: Columns a type-2 history table adds to the customers table's.
HISTORY_COLUMNS: tuple[Column, ...] = (
    Column("_valid_from", "TIMESTAMP", "REQUIRED", "When this version became current (its extraction time)."),
    Column("_valid_to", "TIMESTAMP", "NULLABLE", "When a newer version replaced it; NULL while current."),
    Column("_is_current", "BOOLEAN", "REQUIRED", "Whether this is the customer's current version."),
)


def merged_properties(node: Mapping[str, Any]) -> dict[str, Any]:
    """A schema's properties with its ``allOf`` parts' merged in (a later part wins a name), in order.

    :param node: an object schema, refs resolved.
    """
    props: dict[str, Any] = dict(node.get("properties", {}))
    for part in node.get("allOf", ()):
        props.update(merged_properties(part))
    return props


def _single_type(kind: Any) -> Any:
    # OpenAPI 3.1 spells a nullable field as a type list; every column is nullable already.
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        return rest[0] if len(rest) == 1 else kind
    return kind


def _column(name: str, node: Mapping[str, Any], mode: str = "NULLABLE") -> Column:
    description = node.get("description", "")
    kind = _single_type(node.get("type"))
    if kind == "array":
        item = _column(name, node.get("items", {}), "REPEATED")
        return replace(item, description=description or item.description)
    if kind == "object" or "allOf" in node or "properties" in node:
        children = tuple(_column(n, child) for n, child in merged_properties(node).items())
        return Column(name, "RECORD", mode, description, children)
    if kind == "string":
        return Column(name, "TIMESTAMP" if node.get("format") == "date-time" else "STRING", mode, description)
    scalar = {"integer": "INTEGER", "number": "NUMERIC", "boolean": "BOOLEAN"}.get(str(kind))
    if scalar is None:
        raise RevCentConfigError(f"The spec's field {name!r} has type {kind!r}, which has no column mapping.")
    return Column(name, scalar, mode, description)


def item_columns(item_schema: Mapping[str, Any], *, key: str = "id", name: str = "item") -> tuple[Column, ...]:
    """An item schema as columns, in the schema's order; the key column is REQUIRED.

    :param item_schema: the schema of one element of a list response's ``results``, refs resolved.
    :param key: the field that identifies an item.
    :param name: what messages call the item (``customer``, ``sale``).
    """
    columns = _column(name, item_schema).fields
    return tuple(replace(c, mode="REQUIRED") if c.name == key else c for c in columns)


@cache
def customer_columns() -> tuple[Column, ...]:
    """The API's customer object as columns, in the spec's order; ``id`` is REQUIRED."""
    spec = load_spec()
    item = spec["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["results"]["items"]
    return item_columns(item, name="customer")


def table_columns(api_columns: Iterable[Column] | None = None) -> tuple[Column, ...]:
    """Every column of the destination table: the API's fields, then the pipeline's metadata."""
    return (*(customer_columns() if api_columns is None else api_columns), *METADATA_COLUMNS)


def find_column(columns: Iterable[Column], path: str) -> Column | None:
    """Look a dotted path (``customer_card.first_6``) up in a column tree."""
    head, _, rest = path.partition(".")
    for column in columns:
        if column.name == head:
            return column if not rest else find_column(column.fields, rest)
    return None
