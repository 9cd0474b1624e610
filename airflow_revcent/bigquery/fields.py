"""The column tree as BigQuery ``SchemaField`` lists, and back; compatibility with an existing table.

:mod:`airflow_revcent.rows.columns` says what the columns are; this module says how BigQuery spells them:
:func:`to_schema_fields` and :func:`from_schema_fields`, which columns a run may write into the table
it finds (:func:`restrict_columns`, :func:`written_columns`), a staging table's schema
(:func:`staging_schema`, :func:`same_shape`), and how to check and extend an existing table
(:func:`diff_schema`, :func:`add_missing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from google.cloud.bigquery import SchemaField

from airflow_revcent.rows.columns import Column

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


def restrict_columns(wanted: Sequence[Column], have: Sequence[Column]) -> tuple[Column, ...]:
    """The columns (and nested fields) of ``wanted`` that ``have`` holds too, as ``wanted`` types them.

    A field the table lacks (a server that could not add it) is then not written as a column; the
    record converter keeps its values in ``_unknown_fields`` instead of failing the load.

    :param wanted: the columns the pipeline would write.
    :param have: the table's columns.
    """
    by_name = {c.name.lower(): c for c in have}
    kept = []
    for column in wanted:
        match = by_name.get(column.name.lower())
        if match is None:
            continue
        kept.append(replace(column, fields=restrict_columns(column.fields, match.fields)) if column.fields else column)
    return tuple(kept)


def written_columns(wanted: Sequence[Column], destination: Sequence[SchemaField],
                    history: Sequence[SchemaField] | None = None) -> tuple[Column, ...]:
    """The API columns a run writes: those it wants that the destination (and the history) really have.

    :param wanted: the API columns after PII settings and promotions.
    :param destination: the destination's schema as read from BigQuery.
    :param history: the history table's, when there is one.
    """
    have = from_schema_fields(destination)
    if history is not None:
        have = restrict_columns(have, from_schema_fields(history))
    return restrict_columns(wanted, have)


def _relaxed(f: SchemaField) -> SchemaField:
    return SchemaField(f.name, f.field_type, mode="REPEATED" if f.mode == "REPEATED" else "NULLABLE",
                       description=f.description, fields=[_relaxed(n) for n in f.fields])


def staging_schema(target: Sequence[SchemaField], names: Sequence[str]) -> list[SchemaField]:
    """A staging table's schema: the target's own fields for the columns written, in the target's order.

    BigQuery assigns a STRUCT by position, so ``SET rec = S.rec`` is right only when both sides have
    the same nested fields in the same order: the staging table copies the target's RECORDs whole
    (fields this run does not write load as NULL). Nested REQUIRED fields are relaxed: the pipeline may
    not write them.

    :param target: the schema of the table the staging rows are applied to.
    :param names: the top-level columns written (all present in ``target``).
    """
    wanted = {n.lower() for n in names}
    top = [f for f in target if f.name.lower() in wanted]
    return [SchemaField(f.name, f.field_type, mode=f.mode, description=f.description,
                        fields=[_relaxed(n) for n in f.fields]) for f in top]


def _shape(f: SchemaField) -> tuple[object, ...]:
    return (f.name.lower(), _type(f.field_type), f.mode == "REPEATED", tuple(_shape(n) for n in f.fields))


def same_shape(a: Sequence[SchemaField], b: Sequence[SchemaField], names: Sequence[str]) -> bool:
    """Whether two tables hold the columns ``names`` with the same types, nested fields and field order
    (so one staging table can feed both).

    :param a: one table's schema.
    :param b: the other's.
    :param names: the top-level columns compared.
    """
    wanted = {n.lower() for n in names}
    return ({_shape(f) for f in a if f.name.lower() in wanted}
            == {_shape(f) for f in b if f.name.lower() in wanted})


def to_schema_fields(columns: Sequence[Column]) -> list[SchemaField]:
    """The BigQuery schema of a column tree (descriptions included).

    :param columns: columns as built by :mod:`airflow_revcent.rows.columns`.
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
