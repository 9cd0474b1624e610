"""BigQuery schemas from the provider's column tree, and compatibility with an existing table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from google.cloud.bigquery import SchemaField

from airflow_revcent.schema import Column

# Legacy and standard SQL spell some types differently; compare them by one name.
_CANONICAL = {
    "INT64": "INTEGER",
    "FLOAT64": "FLOAT",
    "BOOL": "BOOLEAN",
    "STRUCT": "RECORD",
    "DECIMAL": "NUMERIC",
    "BIGDECIMAL": "BIGNUMERIC",
}


def _type(name: str | None) -> str:
    upper = (name or "").upper()
    return _CANONICAL.get(upper, upper)


def from_schema_fields(fields: Sequence[SchemaField]) -> tuple[Column, ...]:
    """The column tree of an existing table's schema."""
    return tuple(Column(f.name, _type(f.field_type), f.mode or "NULLABLE", f.description or "",
                        from_schema_fields(f.fields)) for f in fields)


def to_schema_fields(columns: Sequence[Column]) -> list[SchemaField]:
    """The BigQuery schema of a column tree (descriptions included).

    :param columns: columns as built by :mod:`airflow_revcent.schema`.
    """
    return [
        SchemaField(
            c.name,
            c.type,
            mode=c.mode,
            description=c.description[:1024],
            fields=to_schema_fields(c.fields) if c.fields else (),
        )
        for c in columns
    ]


@dataclass
class SchemaDiff:
    """How an existing table's schema differs from the expected one."""

    conflicts: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def diff_schema(expected: Sequence[SchemaField], actual: Sequence[SchemaField], prefix: str = "") -> SchemaDiff:
    """Compare an existing table's schema with the expected one.

    Extra columns in the table are fine (a user may add their own). A missing column can be
    added; a different type, or a different REPEATED-ness, or a REQUIRED column the pipeline
    may leave NULL, is a conflict.

    :param expected: the schema the pipeline writes.
    :param actual: the table's schema.
    """
    diff = SchemaDiff()
    existing = {f.name.lower(): f for f in actual}
    for want in expected:
        path = prefix + want.name
        have = existing.get(want.name.lower())
        if have is None:
            diff.missing.append(path)
            continue
        if _type(have.field_type) != _type(want.field_type):
            diff.conflicts.append(f"{path} is {_type(have.field_type)} (expected {_type(want.field_type)})")
            continue
        if (have.mode == "REPEATED") != (want.mode == "REPEATED"):
            diff.conflicts.append(f"{path} has mode {have.mode} (expected {want.mode})")
            continue
        if have.mode == "REQUIRED" and want.mode != "REQUIRED":
            diff.conflicts.append(f"{path} is REQUIRED but the pipeline may leave it NULL")
            continue
        if want.fields:
            nested = diff_schema(want.fields, have.fields, path + ".")
            diff.conflicts += nested.conflicts
            diff.missing += nested.missing
    return diff


def add_missing(actual: Sequence[SchemaField], expected: Sequence[SchemaField]) -> list[SchemaField]:
    """The table's schema with the expected columns it lacks appended (NULLABLE: BigQuery can only
    add nullable or repeated columns to an existing table).

    :param actual: the table's schema.
    :param expected: the schema the pipeline writes.
    """
    wanted = {f.name.lower(): f for f in expected}
    merged: list[SchemaField] = []
    for have in actual:
        want = wanted.pop(have.name.lower(), None)
        if want is not None and want.fields:
            merged.append(SchemaField(
                have.name, have.field_type, mode=have.mode, description=have.description,
                fields=add_missing(have.fields, want.fields),
            ))
        else:
            merged.append(have)
    for want in wanted.values():
        mode = "REPEATED" if want.mode == "REPEATED" else "NULLABLE"
        merged.append(
            SchemaField(want.name, want.field_type, mode=mode, description=want.description, fields=want.fields)
        )
    return merged
