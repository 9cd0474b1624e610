"""What BigQuery's NDJSON loader accepts, as a pure check of one row against a load schema.

The rules follow BigQuery's documentation for loading newline-delimited JSON, applied strictly
(where BigQuery would coerce, this check refuses, so the pipeline never relies on a coercion):

* STRING: a JSON string of valid UTF-8, no surrogate code points (a lone ``\\ud83d`` escape).
* INTEGER/INT64: a JSON integer within +-(2**53 - 1), or a string of digits within -2**63 .. 2**63-1.
  BigQuery's JSON loading documentation asks for an integer beyond +-(2**53 - 1) as a string "to avoid
  data corruption" (a JSON number that large may be read through a double), so a number beyond it is
  refused here.
* FLOAT/FLOAT64: a finite JSON number.
* NUMERIC: a JSON number or string of a decimal with at most 29 integer digits and 9 fractional
  digits. BIGNUMERIC: at most 38 fractional digits and 38 integer digits (39 within the type's
  maximum, about 5.79e38).
* BOOLEAN: ``true`` or ``false``.
* TIMESTAMP: ``YYYY-MM-DD[T ]HH:MM:SS[.ffffff][Z|±HH:MM]`` with a 4-digit year, a real date and
  time (no leap second 60), within 0001-01-01 .. 9999-12-31 23:59:59.999999 UTC.
* JSON: any JSON value, its strings without surrogates.
* RECORD: an object checked against its fields; REPEATED: an array (never null) of non-null items.
* REQUIRED: present and not null. A member the schema does not have is refused (the loader's
  default, ``ignore_unknown_values=False``).

Parse rows with :func:`parse_line`: numbers keep their text (:class:`NumberText`), so precision is
never lost before it is checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any


class NumberText(str):
    """A JSON number, as its text."""

    __slots__ = ()


def parse_line(line: bytes | str) -> Any:
    """One NDJSON line parsed without losing number precision (numbers become :class:`NumberText`).

    :raises UnicodeDecodeError: the bytes are not valid UTF-8.
    """
    text = line.decode("utf-8") if isinstance(line, bytes | bytearray) else line
    return json.loads(text, parse_float=NumberText, parse_int=NumberText,
                      parse_constant=lambda name: (_ for _ in ()).throw(ValueError(f"{name} is not JSON")))


_SURROGATE = re.compile("[\ud800-\udfff]")
_INTEGER = re.compile(r"-?\d+\Z")
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z")
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?\s*(Z|z|UTC|[+-]\d{2}:\d{2})?\Z")
_INT64 = (-(1 << 63), (1 << 63) - 1)
_MAX_EXACT_JSON_INT = (1 << 53) - 1
_BIGNUMERIC_MAX = Decimal("578960446186580977117854925043439539266.34992332820282019728792003956564819967")
_MIN_TS = datetime(1, 1, 1, tzinfo=UTC)
_MAX_TS = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)

_ALIASES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD", "DECIMAL": "NUMERIC",
            "BIGDECIMAL": "BIGNUMERIC"}


def check_row(row: Any, schema: Sequence[Any], path: str = "") -> list[str]:
    """Every way ``row`` breaks the loader's rules for ``schema`` (empty when it loads).

    :param row: one parsed line (:func:`parse_line`).
    :param schema: ``google.cloud.bigquery.SchemaField`` objects (anything with ``name``,
        ``field_type``, ``mode``, ``fields``).
    :param path: prefix for messages.
    """
    if not isinstance(row, dict):
        return [f"{path or 'row'}: expected a JSON object, got {_kind(row)}"]
    problems: list[str] = []
    fields = {f.name.lower(): f for f in schema}
    for key in row:
        if _SURROGATE.search(key):
            problems.append(f"{path}{key!r}: member name holds a surrogate (not valid UTF-8)")
        if key.lower() not in fields:
            problems.append(f"{path}{key}: no such field in the schema")
    given = {k.lower(): v for k, v in row.items()}
    for name, field in fields.items():
        where = f"{path}{field.name}"
        mode = (field.mode or "NULLABLE").upper()
        value = given.get(name)
        if value is None:
            if mode == "REQUIRED":
                problems.append(f"{where}: REQUIRED but {'null' if name in given else 'absent'}")
            elif mode == "REPEATED" and name in given:
                problems.append(f"{where}: REPEATED field is null (write [] instead)")
            continue
        if mode == "REPEATED":
            if not isinstance(value, list):
                problems.append(f"{where}: REPEATED field is {_kind(value)}, not an array")
                continue
            for i, item in enumerate(value):
                if item is None:
                    problems.append(f"{where}[{i}]: null inside an array")
                else:
                    problems += _check_value(item, field, f"{where}[{i}]")
        else:
            problems += _check_value(value, field, where)
    return problems


def _kind(value: Any) -> str:
    if isinstance(value, NumberText):
        return f"number {str(value)!r}"
    if isinstance(value, str):
        return f"string {value[:40]!r}"
    return type(value).__name__ if value is not None else "null"


def _check_value(value: Any, field: Any, where: str) -> list[str]:
    kind = (field.field_type or "STRING").upper()
    kind = _ALIASES.get(kind, kind)
    if kind == "RECORD":
        return check_row(value, field.fields, where + ".")
    check = _CHECKS.get(kind)
    if check is None:
        return [f"{where}: this check does not know type {kind}"]
    problem = check(value)
    return [f"{where}: {problem}"] if problem else []


def _string(value: Any) -> str | None:
    if type(value) is not str:
        return f"STRING needs a JSON string, got {_kind(value)}"
    if _SURROGATE.search(value):
        return "STRING holds a lone surrogate (not valid UTF-8)"
    return None


def _integer(value: Any) -> str | None:
    if not isinstance(value, str) or isinstance(value, bool) or not _INTEGER.match(value):
        return f"INTEGER needs an integer (number or digits), got {_kind(value)}"
    if not _INT64[0] <= int(value) <= _INT64[1]:
        return f"INTEGER {value} is outside INT64"
    if isinstance(value, NumberText) and abs(int(value)) > _MAX_EXACT_JSON_INT:
        return (f"INTEGER {value} is a JSON number beyond +-(2**53 - 1), which the loader may corrupt: "
                "write it as a string")
    return None


def _float(value: Any) -> str | None:
    if not isinstance(value, NumberText):
        return f"FLOAT needs a JSON number, got {_kind(value)}"
    if float(value) in (float("inf"), float("-inf")):
        return f"FLOAT {value} is beyond a double"
    return None


def _decimal(value: Any, *, places: int, digits: int, name: str) -> str | None:
    if not isinstance(value, str) or not _DECIMAL.match(value):
        return f"{name} needs a decimal (number or string), got {_kind(value)}"
    try:
        number = Decimal(value)
    except InvalidOperation:
        return f"{name} {value!r} is not a decimal"
    _, coefficient, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    fraction = max(0, -exponent)
    integer = max(0, len(coefficient) + exponent) if any(coefficient) else 0
    if fraction > places:
        return f"{name} {value} has {fraction} fractional digits (at most {places})"
    if integer > digits and (name != "BIGNUMERIC" or integer > digits + 1 or number.copy_abs() > _BIGNUMERIC_MAX):
        return f"{name} {value} has {integer} integer digits (at most {digits})"
    return None


def _numeric(value: Any) -> str | None:
    return _decimal(value, places=9, digits=29, name="NUMERIC")


def _bignumeric(value: Any) -> str | None:
    return _decimal(value, places=38, digits=38, name="BIGNUMERIC")


def _boolean(value: Any) -> str | None:
    return None if type(value) is bool else f"BOOLEAN needs true or false, got {_kind(value)}"


def _timestamp(value: Any) -> str | None:
    if type(value) is not str:
        return f"TIMESTAMP needs a string, got {_kind(value)}"
    match = _TIMESTAMP.match(value)
    if match is None:
        return f"TIMESTAMP {value!r} is not YYYY-MM-DD[T ]HH:MM:SS[.ffffff][Z|+HH:MM] with a 4-digit year"
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = match.group(7) or ""
    try:
        local = datetime(year, month, day, hour, minute, second, int((fraction[1:] + "000000")[:6] or 0))
    except ValueError as exc:
        return f"TIMESTAMP {value!r} is not a real date and time ({exc})"
    zone = match.group(8) or "Z"
    offset = timedelta(0)
    if zone[0] in "+-":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        offset = timedelta(hours=hours, minutes=minutes) * (1 if zone[0] == "+" else -1)
    # Compare in naive UTC arithmetic so a value just outside the range is reported, not an OverflowError.
    low, high = _MIN_TS.replace(tzinfo=None), _MAX_TS.replace(tzinfo=None)
    if (offset > timedelta(0) and local - low < offset) or (offset < timedelta(0) and high - local < -offset):
        return f"TIMESTAMP {value!r} is outside 0001-01-01 .. 9999-12-31 UTC"
    return None


def _json(value: Any) -> str | None:
    if isinstance(value, NumberText | bool):
        return None
    if isinstance(value, str):
        return "JSON holds a lone surrogate" if _SURROGATE.search(value) else None
    if isinstance(value, list):
        return next((p for p in map(_json, value) if p), None)
    if isinstance(value, dict):
        for key, item in value.items():
            problem = "JSON member name holds a lone surrogate" if _SURROGATE.search(key) else _json(item)
            if problem:
                return problem
    return None


_CHECKS = {
    "STRING": _string,
    "INTEGER": _integer,
    "FLOAT": _float,
    "NUMERIC": _numeric,
    "BIGNUMERIC": _bignumeric,
    "BOOLEAN": _boolean,
    "TIMESTAMP": _timestamp,
    "JSON": _json,
}


def check_ndjson(data: bytes, schema: Sequence[Any], *, limit: int = 20) -> list[str]:
    """Every violation in a whole NDJSON file (line numbers from 1), at most ``limit``.

    :param data: the file's bytes.
    :param schema: the load job's schema.
    :param limit: stop after this many problems.
    """
    problems: list[str] = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = parse_line(line)
        except UnicodeDecodeError as exc:
            problems.append(f"line {number}: not valid UTF-8 ({exc.reason})")
            continue
        except ValueError as exc:
            problems.append(f"line {number}: not JSON ({exc})")
            continue
        problems += [f"line {number}: {p}" for p in check_row(row, schema)]
        if len(problems) >= limit:
            break
    return problems[:limit]
