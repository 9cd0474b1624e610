"""Compare a BigQuery table with the sandbox's truth, field by field, independently of the
provider's own conversion code (this is a second, plain reading of the spec's columns)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

from airflow_revcent.rows.columns import Column, customer_columns


def _expected(value: Any, column: Column) -> Any:
    if column.mode == "REPEATED":
        if value is None:
            return []
        single = Column(column.name, column.type, "NULLABLE", fields=column.fields)
        return [_expected(v, single) for v in value]
    if value is None:
        return None
    if column.type == "RECORD":
        return {c.name: _expected(value.get(c.name), c) for c in column.fields}
    if column.type == "NUMERIC":
        # README "How values land": exact, or rounded to 9 places half away from zero.
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -9:
            number = number.quantize(Decimal("1e-9"), rounding=ROUND_HALF_UP, context=Context(prec=100))
        return number
    if column.type == "TIMESTAMP":
        text = value.strip()
        if not text:
            return None  # empty or whitespace-only: NULL
        # A leap second is the last instant of its minute.
        text = re.sub(r"(T\d\d:\d\d:)60(\.\d+)?", r"\g<1>59.999999", text)
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    if column.type == "STRING" and isinstance(value, str):
        return re.sub("[\ud800-\udfff]", "\ufffd", value)  # lone surrogates: U+FFFD
    return value


def expected_row(item: dict[str, Any], columns: tuple[Column, ...] | None = None) -> dict[str, Any]:
    """The row an item must land as: customers by default, any resource given its columns
    (``find_resource(OpenAPIDocument(sandbox document), name).columns``)."""
    return {c.name: _expected(item.get(c.name), c) for c in (customer_columns() if columns is None else columns)}


def table_rows(client: Any, table: str) -> list[dict[str, Any]]:
    project = client.project
    try:
        return [dict(row) for row in client.list_rows(f"{project}.{table}")]
    except Exception as exc:
        if type(exc).__name__ == "NotFound":
            return []
        raise


def _diff(path: str, want: Any, have: Any, out: list[str]) -> None:
    if isinstance(want, dict) and isinstance(have, dict):
        for key in want:
            _diff(f"{path}.{key}", want[key], have.get(key), out)
    elif isinstance(want, list) and isinstance(have, list) and len(want) == len(have):
        for i, (w, h) in enumerate(zip(want, have, strict=True)):
            _diff(f"{path}[{i}]", w, h, out)
    elif want != have or (type(want) is not type(have) and not (want is None or have is None)):
        out.append(f"{path}: expected {want!r}, table has {have!r}")


def assert_table_matches(
    client: Any, table: str, truth: list[dict[str, Any]], columns: tuple[Column, ...] | None = None
) -> list[dict[str, Any]]:
    """The table holds exactly these items (customers unless ``columns`` says another resource's), each
    once, every field equal; returns the rows. Another resource's truth: ``server.resources[name].truth()``
    in-process, ``/_sandbox/truth?resource=NAME`` out of process."""
    rows = table_rows(client, table)
    ids = [r["id"] for r in rows]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"duplicate ids in {table}: {duplicates[:5]}"
    want = {c["id"]: c for c in truth}
    missing, extra = sorted(set(want) - set(ids)), sorted(set(ids) - set(want))
    assert not missing, f"{len(missing)} items missing from the table, e.g. {missing[:3]}"
    assert not extra, f"{len(extra)} items in the table that the API does not have, e.g. {extra[:3]}"
    problems: list[str] = []
    for row in rows:
        api_part = {k: v for k, v in row.items() if not k.startswith("_")}
        _diff(row["id"], expected_row(want[row["id"]], columns), api_part, problems)
    assert not problems, f"{len(problems)} field differences, first: {problems[:5]}"
    return rows
