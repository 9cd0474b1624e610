"""Schema drift: promoting fields the spec does not know to typed columns (pure functions).

When ``promote_unknown_fields`` is on and a run meets a field the table has no column for, and
every value it saw for that path has one unambiguous type, the field becomes a nullable column at
the same place in the nesting (``loyalty_tier``, ``customer_card.network``), its values move out of
``_unknown_fields``, and later runs write it straight into the column (the converter reads the
table's columns). Objects, arrays and paths with mixed types stay in ``_unknown_fields``.

Types: strings STRING, booleans BOOLEAN, integers INTEGER, decimals NUMERIC (integers mixed with
decimals too), decimals beyond NUMERIC's 9 places FLOAT. A promoted INTEGER beyond +-(2**53 - 1) is
written as a string of its digits, as every INTEGER is (:func:`airflow_revcent.rows.jsontext.int64_value`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from airflow_revcent.rows.columns import UNKNOWN_FIELDS_COLUMN, Column
from airflow_revcent.rows.jsontext import int64_value

#: Marks a promoted column in the table, so later runs know it holds an API field (a column a user
#: added by hand is never written by the pipeline).
PROMOTED_DESCRIPTION = "Promoted from _unknown_fields (a field RevCent's spec does not describe)."

_NUMERIC = {frozenset({"INTEGER", "NUMERIC"}): "NUMERIC", frozenset({"INTEGER", "FLOAT"}): "FLOAT",
            frozenset({"NUMERIC", "FLOAT"}): "FLOAT", frozenset({"INTEGER", "NUMERIC", "FLOAT"}): "FLOAT"}


@dataclass(frozen=True)
class Promotion:
    """One unknown field that becomes a column.

    :param path: its path as the converter reports it (``customer_card[].network``).
    :param type: the column type.
    """

    path: str
    type: str

    @property
    def steps(self) -> list[tuple[str, bool]]:
        """(name, is_array) for each step of the path."""
        return [(part.removesuffix("[]"), part.endswith("[]")) for part in self.path.split(".")]


def column_type(kinds: Iterable[str]) -> str | None:
    """The one column type for these kinds of value, or ``None`` when ambiguous."""
    found = frozenset(kinds)
    if "OTHER" in found or not found:
        return None
    if len(found) == 1:
        return next(iter(found))
    return _NUMERIC.get(found)


def plan_promotions(unknown_kinds: Mapping[str, set[str]], columns: Sequence[Column]) -> list[Promotion]:
    """The unknown paths that can become columns: one type, and every parent an existing RECORD.

    :param unknown_kinds: path -> kinds of value seen (from the converter).
    :param columns: the table's API columns.
    """
    promotions = []
    for path, kinds in sorted(unknown_kinds.items()):
        kind = column_type(kinds)
        if kind is None or path.endswith("[]"):
            continue
        promotion = Promotion(path, kind)
        if _parent(columns, promotion.steps[:-1]) is not None:
            promotions.append(promotion)
    return promotions


def _parent(columns: Sequence[Column], steps: Sequence[tuple[str, bool]]) -> Sequence[Column] | None:
    level: Sequence[Column] = columns
    for name, is_array in steps:
        column = next((c for c in level if c.name == name), None)
        if column is None or column.type != "RECORD" or (column.mode == "REPEATED") != is_array:
            return None
        level = column.fields
    return level


def add_columns(columns: Sequence[Column], promotions: Sequence[Promotion]) -> tuple[Column, ...]:
    """The columns with each promoted field added, nullable, where its path says."""
    result = tuple(columns)
    for promotion in promotions:
        result = _add(result, promotion.steps, promotion.type)
    return result


def _add(columns: tuple[Column, ...], steps: Sequence[tuple[str, bool]], kind: str) -> tuple[Column, ...]:
    (name, _), rest = steps[0], steps[1:]
    if not rest:
        if any(c.name == name for c in columns):
            return columns
        return (*columns, Column(name, kind, "NULLABLE", PROMOTED_DESCRIPTION))
    return tuple(replace(c, fields=_add(c.fields, rest, kind)) if c.name == name else c for c in columns)


def promote(row: dict[str, Any], promotions: Sequence[Promotion]) -> dict[str, Any]:
    """Move the promoted values of one row from ``_unknown_fields`` into its columns, in place."""
    extra = row.get(UNKNOWN_FIELDS_COLUMN)
    if not extra:
        return row
    for promotion in promotions:
        _move(extra, row, promotion.steps, promotion.type)
    if not _prune(extra):
        del row[UNKNOWN_FIELDS_COLUMN]
    return row


def _move(extra: Any, target: Any, steps: Sequence[tuple[str, bool]], kind: str) -> None:
    (name, is_array), rest = steps[0], steps[1:]
    if not isinstance(extra, dict) or name not in extra or not isinstance(target, dict):
        return
    if not rest:
        value = extra.pop(name)
        # An INTEGER column's value beyond +-(2**53 - 1) is written as a string, as BigQuery's JSON loader
        # asks (in _unknown_fields, a JSON column, it was a number).
        target[name] = int64_value(value) if kind == "INTEGER" and type(value) is int else value
        return
    if is_array:
        items, targets = extra.get(name), target.get(name)
        if isinstance(items, list) and isinstance(targets, list):
            for sub, dest in zip(items, targets, strict=False):
                _move(sub, dest, rest, kind)
    else:
        _move(extra.get(name), target.get(name), rest, kind)


def _prune(node: Any) -> bool:
    """Drop emptied containers; True when something is left."""
    if isinstance(node, dict):
        for key in [k for k, v in node.items() if isinstance(v, dict | list) and not _prune(v)]:
            del node[key]
        return bool(node)
    if isinstance(node, list):
        return any(_prune(item) if isinstance(item, dict | list) else True for item in node)
    return True


def with_promoted(columns: Sequence[Column], table: Sequence[Column]) -> tuple[Column, ...]:
    """The API columns plus the columns earlier runs promoted in this table (marked by their description).

    :param columns: the API columns from the spec.
    :param table: the existing table's columns.
    """
    known = {c.name: c for c in columns}
    merged: list[Column] = []
    for column in columns:
        match = next((t for t in table if t.name == column.name), None)
        if match is not None and column.type == "RECORD":
            merged.append(replace(column, fields=with_promoted(column.fields, match.fields)))
        else:
            merged.append(column)
    merged += [t for t in table if t.name not in known and t.description == PROMOTED_DESCRIPTION]
    return tuple(merged)
