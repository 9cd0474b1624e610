"""The per-record path: check a customer against the spec, shape it into a row, serialise it.

It runs once per customer, so the field checks are compiled once into closures that know their
column and path; nothing is looked up or concatenated per field at run time.

How values land (every value written is one BigQuery's NDJSON loader accepts for its column):

* Pages are parsed exactly (:mod:`airflow_revcent.rows.jsontext`): numbers with a fraction or an
  exponent are ``Decimal`` of their text, never a binary float; integers are ints of any size.
* Text: a lone surrogate escape (``"\\ud83d"``, a string cut inside an emoji) becomes U+FFFD in its
  place, the rest of the string intact, in values and in object keys; each (customer id, field
  path) is logged once and counted (summary ``replaced_surrogates``). Everything else arrives
  unchanged: strings (empty ones too), booleans, array order.
* INTEGER: an integer within INT64 (-2**63 .. 2**63-1); outside it is a data error. Beyond
  +-(2**53 - 1) it is written as a JSON string of its digits, as BigQuery's JSON loader asks (a JSON
  number that large may be read through a double and corrupted); below, as a number.
* NUMERIC (money, and averages of it): at most 29 integer digits and 9 decimal places, BigQuery's
  NUMERIC. A value with more places (a float artifact such as ``33.333333333333336`` or
  ``0.30000000000000004``, an exponent form such as ``1e-12``) is rounded to 9 places half away from
  zero, as BigQuery's own ``CAST`` rounds, trailing zeros dropped; each rounded value is counted
  (summary ``rounded_numbers``). A value needing more than 29 integer digits is a data error.
  Values are written as exact JSON numbers in plain decimal notation (``1e-7`` -> ``0.0000001``).
* TIMESTAMP: date-time strings become RFC 3339 UTC with a zero-padded 4-digit year and
  microseconds (``0001-01-01T00:00:00.000000Z``). An empty or whitespace-only string has no
  TIMESTAMP value and becomes NULL. A leap second (``23:59:60``, RFC 3339 allows it; BigQuery has
  none) becomes ``23:59:59.999999`` of the same minute, before the offset is applied. A value
  outside 0001-01-01 .. 9999-12-31 once converted to UTC (``0001-01-01T00:00:00+01:00``) is a data
  error, as is any text that is not an ISO-8601 date-time.
* ``null`` for an array is an empty array (BigQuery has no NULL arrays); an absent field is NULL.
* Fields the spec does not describe are never dropped: they go to ``_unknown_fields`` (a JSON
  column) by path, and their paths are reported once per run.
* A data error (a value of the wrong type, or outside its column's range) fails the run with the
  customer id and field path (``on_invalid_record="fail"``), or the value is kept as sent in
  ``_unknown_fields`` (``"keep"``). A customer whose id is null or empty is a data error too
  (see :mod:`airflow_revcent.api.paging`): ``"keep"`` skips it and counts it.
* ``exclude_fields`` drop fields before they leave the worker; ``hash_fields`` replace values by
  a keyed SHA-256 (HMAC) hex digest (of the value's canonical JSON when it is not a string).
* The content hash is the SHA-256 of the row's canonical JSON (:func:`airflow_revcent.rows.jsontext.dumps`):
  deterministic for decimals (their plain text) as for every other value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any, Literal

from airflow_revcent.exceptions import RevCentConfigError, RevCentDataError
from airflow_revcent.rows.columns import UNKNOWN_FIELDS_COLUMN, Column
from airflow_revcent.rows.jsontext import int64_value
from airflow_revcent.rows.pii import PiiSettings
from airflow_revcent.rows.timefmt import timestamp_text

InvalidPolicy = Literal["fail", "keep"]
INVALID_POLICIES: tuple[str, ...] = ("fail", "keep")

class _Mismatch(Exception):
    """A value does not fit its column (internal: turned into a policy decision by the caller)."""

    def __init__(self, path: str, value: Any, expected: str) -> None:
        super().__init__(path)
        self.path = path
        self.value = value
        self.expected = expected


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
#: NUMERIC: 38 digits, 9 of them after the point (BigQuery's NUMERIC).
NUMERIC_PLACES = 9
NUMERIC_INTEGER_DIGITS = 29
_NUMERIC_LIMIT = Decimal(10) ** NUMERIC_INTEGER_DIGITS
_NUMERIC_QUANTUM = Decimal(1).scaleb(-NUMERIC_PLACES)
#: Room for any NUMERIC and then some: quantize and normalize must never round by precision.
_CONTEXT = Context(prec=100, rounding=ROUND_HALF_UP)
#: Integers up to 2**53 are exact as doubles, so any reader gets a JSON number of them right.
_EXACT_DOUBLE_INT = 1 << 53
#: The largest finite double, for promoted FLOAT columns.
_FLOAT_LIMIT = Decimal("1.7976931348623157E+308")


class _OutOfRange(ValueError):
    """A value of the right JSON type that its column cannot hold (internal)."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def value_kind(value: Any) -> str:
    """The column type a JSON value would need: STRING, BOOLEAN, INTEGER (within INT64), NUMERIC (a
    decimal with at most 9 places and 29 integer digits, exact in BigQuery's NUMERIC; also an integer
    beyond INT64 that fits), FLOAT (any other number), or OTHER (objects, arrays).

    :param value: a parsed JSON value (decimals as ``Decimal``; a ``float`` is read by its repr).
    """
    kind = type(value)
    if kind is str:
        return "STRING"
    if kind is bool:
        return "BOOLEAN"
    if kind is int:
        if INT64_MIN <= value <= INT64_MAX:
            return "INTEGER"
        return "NUMERIC" if abs(value) < _NUMERIC_LIMIT else "FLOAT"
    if kind is float:
        value = Decimal(repr(value))
        kind = Decimal
    if kind is Decimal:
        if not value.is_finite():
            return "OTHER"
        exponent = value.as_tuple().exponent
        fits = isinstance(exponent, int) and exponent >= -NUMERIC_PLACES and value.copy_abs() < _NUMERIC_LIMIT
        return "NUMERIC" if fits else "FLOAT"
    return "OTHER"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return "number" if type(value) is Decimal else type(value).__name__


#: Seconds field 60 (a leap second) in an ISO-8601 time: ``23:59:60``, ``23:59:60.5``, ``23:59:60Z``.
_LEAP_SECOND = re.compile(r"(T\d{2}:\d{2}:)60(?:[.,]\d+)?(?=$|[Zz+-])", re.IGNORECASE)
_TIMESTAMP_RANGE = "a TIMESTAMP within 0001-01-01 and 9999-12-31 UTC"


def _timestamp(value: str) -> str | None:
    """RFC 3339 UTC text with a 4-digit year, or None for an empty or whitespace-only string.

    :raises ValueError: not an ISO-8601 date-time; :class:`_OutOfRange` outside BigQuery's range.
    """
    text = value.strip()
    if not text:
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    leap = _LEAP_SECOND.search(text)
    if leap is not None:
        # BigQuery has no leap seconds: the last representable instant of that minute.
        text = text[: leap.start()] + leap.group(1) + "59.999999" + text[leap.end():]
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:
        raise _OutOfRange(_TIMESTAMP_RANGE) from None
    if utc.tzinfo is not UTC:  # pragma: no cover - astimezone(UTC) always gives UTC
        utc = utc.replace(tzinfo=UTC)
    return timestamp_text(utc)


class RecordConverter:
    """Turns API customers into table rows (see the module docstring).

    The customer dict is checked and shaped in place (it is the caller's to give away): a value
    that passes its type check, which is nearly all of them, is not copied.

    :param columns: the API columns of the table (after :func:`apply_pii`).
    :param on_invalid_record: ``"fail"`` or ``"keep"``.
    :param pii: exclusion and hashing settings, already reflected in ``columns``.
    :param item: what messages call one item (``Customer``, ``Sales item``).
    :param key_field: the field that identifies an item (names it in messages).
    """

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        on_invalid_record: InvalidPolicy = "fail",
        pii: PiiSettings | None = None,
        item: str = "Customer",
        key_field: str = "id",
    ) -> None:
        self.item = item
        self.key_field = key_field
        if on_invalid_record not in INVALID_POLICIES:
            raise RevCentConfigError(
                f"on_invalid_record={on_invalid_record!r} is not one of {', '.join(INVALID_POLICIES)}."
            )
        self.on_invalid_record: InvalidPolicy = on_invalid_record
        self.pii = pii or PiiSettings()
        if self.pii.needs_key:
            raise RevCentConfigError(
                "hash_fields is set but no hash key was read; store a secret key in a connection (password) "
                "and pass its id as hash_key_conn_id."
            )
        #: Paths of fields the spec does not describe (array positions shown as ``[]``), with counts.
        self.unknown_paths: dict[str, int] = {}
        #: Paths whose values conflicted with their column and were kept in ``_unknown_fields``.
        self.invalid_paths: dict[str, int] = {}
        #: For each unknown path, the kinds of value seen (see :func:`value_kind`): what a promotion
        #: to a typed column needs to know.
        self.unknown_kinds: dict[str, set[str]] = {}
        #: NUMERIC values rounded to 9 places (see the module docstring).
        self.rounded_numbers = 0
        self._root = self._record(columns, "")

    # -- compilation: per object, a table of plain type checks and a table of converters ---------
    def _record(self, columns: Iterable[Column], prefix: str) -> _Walk:
        # Plain scalars only need "is the value's type one of these": a dict lookup and a set test.
        plain: dict[str, frozenset[type]] = {}
        special: dict[str, _Convert] = {}
        for col in columns:
            path = prefix + col.name
            if col.type == "RECORD":
                special[col.name] = self._records(col, path)
            elif col.mode == "REPEATED":
                special[col.name] = self._scalars(col, path)
            elif col.type in _PLAIN_TYPES and not self._hashed(path):
                plain[col.name] = _PLAIN_TYPES[col.type]
            else:
                special[col.name] = _wrap(self._scalar(col, path))
        base = _plain(prefix)
        # Excluded fields of this object: dropped, and not reported as unknown.
        excluded = frozenset(p[len(base):] for p in self.pii.exclude_fields
                             if p.startswith(base) and "." not in p[len(base):])
        repeated = frozenset(c.name for c in columns if c.mode == "REPEATED")
        types = {c.name: c.type for c in columns}  # for error messages only
        return self._walker(prefix, plain=plain, special=special, excluded=excluded, repeated=repeated,
                            types=types)

    def _walker(
        self,
        prefix: str,
        *,
        plain: dict[str, frozenset[type]],
        special: dict[str, _Convert],
        excluded: frozenset[str],
        repeated: frozenset[str],
        types: dict[str, str],
    ) -> _Walk:
        keep, unknown_paths, invalid_paths = self.on_invalid_record == "keep", self.unknown_paths, self.invalid_paths
        unknown_kinds = self.unknown_kinds

        def walk(obj: Any) -> dict[str, Any] | None:
            """Check and shape ``obj`` in place; return what the columns cannot hold, or None."""
            if type(obj) is not dict:
                raise _Mismatch(prefix.rstrip(".") or "customer", obj, "an object")
            extra: dict[str, Any] | None = None
            drop: list[str] | None = None
            for key, value in obj.items():
                allowed = plain.get(key)
                if allowed is not None:
                    if value is None or type(value) in allowed:
                        continue
                    bad = _Mismatch(prefix + key, value, types[key])
                else:
                    convert = special.get(key)
                    if convert is None:
                        # Not a column: excluded (PII) or unknown to the spec, kept by path.
                        (drop := drop or []).append(key)
                        if key not in excluded:
                            path = prefix + key
                            unknown_paths[path] = unknown_paths.get(path, 0) + 1
                            if value is not None:
                                unknown_kinds.setdefault(path, set()).add(value_kind(value))
                            extra = extra or {}
                            extra[key] = value
                        continue
                    if value is None:
                        if key in repeated:
                            obj[key] = []  # BigQuery has no NULL arrays
                        continue
                    try:
                        obj[key], sub = convert(value)
                    except _Mismatch as exc:
                        bad = exc
                    else:
                        if sub is not None:
                            extra = extra or {}
                            extra[key] = sub
                        continue
                # The value does not fit its column.
                if not keep:
                    raise bad
                invalid_paths[bad.path] = invalid_paths.get(bad.path, 0) + 1
                (drop := drop or []).append(key)
                extra = extra or {}
                # Kept as sent, except what the PII settings say must not leave the worker.
                extra[key] = self._scrub(value, _plain(prefix + key))
            if drop:
                for key in drop:
                    del obj[key]
            return extra

        return walk

    def _pii_under(self, path: str) -> bool:
        """Whether a PII setting names this path or a field inside it."""
        return self.pii.under(path)

    def _shown(self, bad: _Mismatch) -> str:
        """The offending value for an error message: scalars only, never a PII field's."""
        if self._pii_under(_plain(bad.path)):
            return "<withheld: a PII field>"
        if type(bad.value) is Decimal:
            text = str(bad.value)
            return text if len(text) <= 80 else text[:77] + "..."
        if isinstance(bad.value, dict | list):
            return f"a JSON {'object' if isinstance(bad.value, dict) else 'array'}"
        text = repr(bad.value)
        return text if len(text) <= 80 else text[:77] + "..."

    def _scrub(self, value: Any, path: str) -> Any:
        """A raw value with excluded fields removed and hashed fields hashed, at any depth."""
        if path in self.pii.exclude_fields:
            return None
        if path in self.pii.hash_fields:
            return self.pii.digest(value)
        if isinstance(value, list):
            return [self._scrub(item, path) for item in value]
        if isinstance(value, dict) and self._pii_under(path):
            scrubbed = {k: self._scrub(v, f"{path}.{k}") for k, v in value.items()}
            return {k: v for k, v in scrubbed.items() if not (v is None and f"{path}.{k}" in self.pii.exclude_fields)}
        return value

    def _hashed(self, path: str) -> bool:
        return _plain(path) in self.pii.hash_fields

    def _records(self, col: Column, path: str) -> _Convert:
        if col.mode != "REPEATED":
            one = self._record(col.fields, path + ".")
            return lambda value: (value, one(value))
        item = self._record(col.fields, path + "[].")

        def repeated(value: Any) -> tuple[list[Any], list[Any] | None]:
            if type(value) is not list:
                raise _Mismatch(path, value, "an array of objects")
            extras = [item(element) or {} for element in value]
            # Keep positions so _unknown_fields mirrors the API's arrays.
            return value, extras if any(extras) else None

        return repeated

    def _scalars(self, col: Column, path: str) -> _Convert:
        allowed = _PLAIN_TYPES.get(col.type)
        if allowed is not None and not self._hashed(path):
            def plain_items(value: Any) -> tuple[list[Any], None]:
                if type(value) is not list:
                    raise _Mismatch(path, value, f"an array of {col.type}")
                for element in value:
                    if type(element) not in allowed:
                        raise _Mismatch(path + "[]", element, col.type)
                return value, None

            return plain_items
        item = self._scalar(col, path + "[]")

        def items(value: Any) -> tuple[list[Any], None]:
            if type(value) is not list:
                raise _Mismatch(path, value, f"an array of {col.type}")
            return [item(v) for v in value], None

        return items

    def _scalar(self, col: Column, path: str) -> Callable[[Any], Any]:
        if self._hashed(path):
            return self.pii.digest
        check = self._checks().get(col.type)
        if check is None:
            raise RevCentConfigError(f"Column {path} has type {col.type}, which the pipeline cannot fill.")

        def scalar(value: Any) -> Any:
            try:
                return check(value)
            except _OutOfRange as exc:
                raise _Mismatch(path, value, exc.expected) from None
            except (TypeError, ValueError):
                raise _Mismatch(path, value, col.type) from None

        return scalar

    def _checks(self) -> dict[str, Callable[[Any], Any]]:
        return {"TIMESTAMP": _check_timestamp, "INTEGER": _check_integer, "NUMERIC": self._check_numeric,
                "FLOAT": _check_float}

    def _check_numeric(self, value: Any) -> Any:
        kind = type(value)
        if kind is int:
            if -_EXACT_DOUBLE_INT <= value <= _EXACT_DOUBLE_INT:
                return value
            if -_NUMERIC_LIMIT < value < _NUMERIC_LIMIT:
                return Decimal(value)  # written as a string when a double cannot hold it (see jsontext)
            raise _OutOfRange(_NUMERIC_RANGE)
        if kind is float:  # a caller's own float (pages are parsed to Decimal): read by its repr
            value = Decimal(repr(value))
        elif kind is not Decimal or not value.is_finite():
            raise TypeError
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -NUMERIC_PLACES:
            value = value.quantize(_NUMERIC_QUANTUM, context=_CONTEXT).normalize(_CONTEXT)
            self.rounded_numbers += 1
        if value.copy_abs() >= _NUMERIC_LIMIT:
            raise _OutOfRange(_NUMERIC_RANGE)
        return value

    # -- per record -----------------------------------------------------------------------------
    def convert(self, customer: dict[str, Any]) -> dict[str, Any]:
        """Turn one API customer into the API part of a row, in place (metadata is added later).

        :param customer: the customer as the API sent it; it becomes the row.
        """
        try:
            extra = self._root(customer)
        except _Mismatch as bad:
            raise RevCentDataError(
                f"{self.item} {customer.get(self.key_field)!r}: field {bad.path} is {self._shown(bad)} "
                f"({_type_name(bad.value)}) "
                f"but the spec says {bad.expected}. Set on_invalid_record='keep' to load such values into "
                f"{UNKNOWN_FIELDS_COLUMN} instead of failing."
            ) from None
        if extra is not None:
            customer[UNKNOWN_FIELDS_COLUMN] = extra
        return customer


_Walk = Callable[[Any], "dict[str, Any] | None"]
_Convert = Callable[[Any], tuple[Any, Any]]


def _wrap(scalar: Callable[[Any], Any]) -> _Convert:
    return lambda value: (scalar(value), None)


def _plain(path: str) -> str:
    """A compiled path without array markers: ``customer_card[].first_6`` -> ``customer_card.first_6``."""
    return path.replace("[]", "")


def _check_timestamp(value: Any) -> str | None:
    if type(value) is not str:
        raise TypeError
    return _timestamp(value)


_NUMERIC_RANGE = f"NUMERIC, at most {NUMERIC_INTEGER_DIGITS} integer digits (BigQuery's NUMERIC)"
_INTEGER_RANGE = "INTEGER within INT64 (-2**63 .. 2**63-1)"


def _check_integer(value: Any) -> int | str:
    if type(value) is not int:
        raise TypeError
    if INT64_MIN <= value <= INT64_MAX:
        return int64_value(value)  # beyond +-(2**53 - 1): a string, as BigQuery's JSON loader asks
    raise _OutOfRange(_INTEGER_RANGE)


def _check_float(value: Any) -> Any:
    """A promoted FLOAT column: any finite number a double can hold, written as sent."""
    kind = type(value)
    if kind is float:
        return value
    if kind is int or kind is Decimal:
        if kind is Decimal and not value.is_finite():
            raise TypeError
        if (value.copy_abs() if kind is Decimal else abs(value)) > _FLOAT_LIMIT:
            raise _OutOfRange("FLOAT within the range of a double")
        return value
    raise TypeError


#: Column types whose values are checked by their Python type alone (``bool`` is not ``int`` for
#: ``type(...) in``). Numbers and date-times have ranges: they go through their check functions.
_PLAIN_TYPES: dict[str, frozenset[type]] = {
    "STRING": frozenset({str}),
    "BOOLEAN": frozenset({bool}),
}
