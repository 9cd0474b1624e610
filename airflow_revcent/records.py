"""The per-record path: check a customer against the spec, shape it into a row, serialise it.

It runs once per customer, so the field checks are compiled once into closures that know their
column and path; nothing is looked up or concatenated per field at run time.

What happens to values:

* Values arrive unchanged: strings (empty ones too), numbers, booleans, array order.
* Date-time strings become RFC 3339 UTC (``2025-03-04T05:06:07.000000Z``), the TIMESTAMP text
  BigQuery loads everywhere; an empty date-time string has no TIMESTAMP value and becomes NULL.
* ``null`` for an array is an empty array (BigQuery has no NULL arrays); an absent field is NULL.
* Fields the spec does not describe are never dropped: they go to ``_unknown_fields`` (a JSON
  column) by path, and their paths are reported once per run.
* A value of the wrong type fails the run with the customer id and field path
  (``on_invalid_record="fail"``), or is kept in ``_unknown_fields`` (``"keep"``).
* ``exclude_fields`` drop fields before they leave the worker; ``hash_fields`` replace values by
  a keyed SHA-256 (HMAC) hex digest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from airflow_revcent.exceptions import RevCentConfigError, RevCentDataError
from airflow_revcent.schema import PARTITION_COLUMN, UNKNOWN_FIELDS_COLUMN, Column, find_column

InvalidPolicy = Literal["fail", "keep"]
INVALID_POLICIES: tuple[str, ...] = ("fail", "keep")

class _Mismatch(Exception):
    """A value does not fit its column (internal: turned into a policy decision by the caller)."""

    def __init__(self, path: str, value: Any, expected: str) -> None:
        super().__init__(path)
        self.path = path
        self.value = value
        self.expected = expected


def value_kind(value: Any) -> str:
    """The column type a JSON value would need: STRING, BOOLEAN, INTEGER, NUMERIC (a decimal with at
    most 9 places, exact in BigQuery's NUMERIC), FLOAT, or OTHER (objects, arrays)."""
    kind = type(value)
    if kind is str:
        return "STRING"
    if kind is bool:
        return "BOOLEAN"
    if kind is int:
        return "INTEGER"
    if kind is float:
        digits = repr(value)
        places = len(digits.partition(".")[2]) if "e" not in digits else 99
        return "NUMERIC" if places <= 9 and abs(value) < 1e29 else "FLOAT"
    return "OTHER"


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _timestamp(value: str) -> str | None:
    if value == "":
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class PiiSettings:
    """Which fields leave the worker, and how.

    :param exclude_fields: dotted paths dropped from rows and from the table (``address_line_1``,
        ``customer_card.first_6``).
    :param hash_fields: dotted paths whose values are replaced by ``HMAC-SHA256(key, value)`` hex.
    :param hash_key: the secret HMAC key (from a connection or secret backend, never from code).
    """

    exclude_fields: tuple[str, ...] = ()
    hash_fields: tuple[str, ...] = ()
    hash_key: bytes | None = field(default=None, repr=False)


def apply_pii(columns: Sequence[Column], pii: PiiSettings) -> tuple[Column, ...]:
    """The API columns as the table will hold them: excluded fields gone, hashed fields STRING.

    :param columns: the API's columns.
    :param pii: the settings to apply.
    """
    for path in (*pii.exclude_fields, *pii.hash_fields):
        if find_column(columns, path) is None:
            raise RevCentConfigError(
                f"PII setting names field {path!r}, which the customer object does not have; use a dotted "
                "path of the spec such as 'email' or 'customer_card.first_6'."
            )
        if path in {"id", "created_date_unix"}:
            raise RevCentConfigError(
                f"{path!r} cannot be excluded or hashed: the pipeline needs it to de-duplicate and partition."
            )
    if pii.hash_fields and not pii.hash_key:
        raise RevCentConfigError(
            "hash_fields is set but no hash key was given; store a secret key in a connection (password) "
            "and pass its id as hash_key_conn_id."
        )

    def walk(cols: Sequence[Column], prefix: str) -> tuple[Column, ...]:
        out = []
        for col in cols:
            path = prefix + col.name
            if path in pii.exclude_fields:
                continue
            if path in pii.hash_fields:
                kind = "REPEATED" if col.mode == "REPEATED" else "NULLABLE"
                note = "HMAC-SHA256 hex of the value (hash_fields)."
                out.append(Column(col.name, "STRING", kind, f"{col.description} {note}".strip()))
            elif col.fields:
                out.append(replace(col, fields=walk(col.fields, path + ".")))
            else:
                out.append(col)
        return tuple(out)

    return walk(columns, "")


class RecordConverter:
    """Turns API customers into table rows (see the module docstring).

    The customer dict is checked and shaped in place (it is the caller's to give away): a value
    that passes its type check, which is nearly all of them, is not copied.

    :param columns: the API columns of the table (after :func:`apply_pii`).
    :param on_invalid_record: ``"fail"`` or ``"keep"``.
    :param pii: exclusion and hashing settings, already reflected in ``columns``.
    """

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        on_invalid_record: InvalidPolicy = "fail",
        pii: PiiSettings | None = None,
    ) -> None:
        if on_invalid_record not in INVALID_POLICIES:
            raise RevCentConfigError(
                f"on_invalid_record={on_invalid_record!r} is not one of {', '.join(INVALID_POLICIES)}."
            )
        self.keep_invalid = on_invalid_record == "keep"
        self.pii = pii or PiiSettings()
        #: Paths of fields the spec does not describe (array positions shown as ``[]``), with counts.
        self.unknown_paths: dict[str, int] = {}
        #: Paths whose values conflicted with their column and were kept in ``_unknown_fields``.
        self.invalid_paths: dict[str, int] = {}
        #: For each unknown path, the kinds of value seen (see :func:`value_kind`): what a promotion
        #: to a typed column needs to know.
        self.unknown_kinds: dict[str, set[str]] = {}
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
        keep, unknown_paths, invalid_paths = self.keep_invalid, self.unknown_paths, self.invalid_paths
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
        return any(p == path or p.startswith(path + ".") for p in (*self.pii.exclude_fields, *self.pii.hash_fields))

    def _shown(self, bad: _Mismatch) -> str:
        """The offending value for an error message: scalars only, never a PII field's."""
        if self._pii_under(_plain(bad.path)):
            return "<withheld: a PII field>"
        if isinstance(bad.value, dict | list):
            return f"a JSON {'object' if isinstance(bad.value, dict) else 'array'}"
        text = repr(bad.value)
        return text if len(text) <= 80 else text[:77] + "..."

    def _scrub(self, value: Any, path: str) -> Any:
        """A raw value with excluded fields removed and hashed fields hashed, at any depth."""
        if path in self.pii.exclude_fields:
            return None
        if path in self.pii.hash_fields:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            return hmac.new(self.pii.hash_key or b"", text.encode(), hashlib.sha256).hexdigest()
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
            key = self.pii.hash_key or b""

            def hashed(value: Any) -> str:
                text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
                return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

            return hashed
        if col.type != "TIMESTAMP":
            raise RevCentConfigError(f"Column {path} has type {col.type}, which the pipeline cannot fill.")
        check = _check_timestamp

        def scalar(value: Any) -> Any:
            try:
                return check(value)
            except (TypeError, ValueError):
                raise _Mismatch(path, value, col.type) from None

        return scalar

    # -- per record -----------------------------------------------------------------------------
    def convert(self, customer: dict[str, Any]) -> dict[str, Any]:
        """Turn one API customer into the API part of a row, in place (metadata is added later).

        :param customer: the customer as the API sent it; it becomes the row.
        """
        try:
            extra = self._root(customer)
        except _Mismatch as bad:
            raise RevCentDataError(
                f"Customer {customer.get('id')!r}: field {bad.path} is {self._shown(bad)} ({_type_name(bad.value)}) "
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


#: Column types whose values are checked by their Python type alone (JSON has no NaN or Infinity,
#: and ``bool`` is not ``int`` for ``type(...) in``).
_PLAIN_TYPES: dict[str, frozenset[type]] = {
    "STRING": frozenset({str}),
    "INTEGER": frozenset({int}),
    "NUMERIC": frozenset({int, float}),
    "BOOLEAN": frozenset({bool}),
    "FLOAT": frozenset({int, float}),  # a promoted column (see drift.py)
}

__all__ = ["PARTITION_COLUMN", "PiiSettings", "RecordConverter", "apply_pii"]
