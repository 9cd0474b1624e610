"""Which customer fields leave the worker, and how: exclusion and keyed hashing (pure).

:class:`PiiSettings` is validated once, where it is built (so a DAG with a misspelt path fails when
it is parsed, naming the path); the secret key is read from its connection only when the task runs
(:meth:`PiiSettings.with_key`). :func:`apply_pii` gives the table's columns under these settings;
:meth:`PiiSettings.digest` is the one HMAC the converter writes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from airflow_revcent.columns import Column, customer_columns, find_column
from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.jsontext import decimal_text, dumps

#: Fields the pipeline needs as they are: the key it de-duplicates on and the partition's source.
_REQUIRED_FIELDS = frozenset({"id", "created_date_unix"})


def _paths(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(p, str) for p in value):
        raise RevCentConfigError(
            f"{name}={value!r} must be a list of dotted field paths such as ['email', 'customer_card.first_6']."
        )
    return tuple(value)


def hash_text(value: Any) -> str:
    """The text a hashed field's HMAC is computed over: the string itself, else its canonical JSON."""
    if isinstance(value, str):
        return value
    if type(value) is Decimal:
        return decimal_text(value)
    return dumps(value).decode()


@dataclass(frozen=True)
class PiiSettings:
    """Which fields leave the worker, and how.

    :param exclude_fields: dotted paths dropped from rows and from the table (``address_line_1``,
        ``customer_card.first_6``).
    :param hash_fields: dotted paths whose values are replaced by ``HMAC-SHA256(key, value)`` hex; needs
        ``hash_key_conn_id`` (or, in code that has the key already, ``hash_key``).
    :param hash_key_conn_id: a connection whose password is the secret HMAC key (never put it in code).
    :param hash_key: the key itself, once read (:meth:`with_key`); never shown in a repr.
    """

    # Sequence in, tuple kept (__post_init__): DAG authors write lists.
    exclude_fields: Sequence[str] = ()
    hash_fields: Sequence[str] = ()
    hash_key_conn_id: str | None = None
    hash_key: bytes | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Lists are accepted (DAG authors write them) and kept as tuples: the object stays hashable and frozen.
        object.__setattr__(self, "exclude_fields", _paths(self.exclude_fields, "exclude_fields"))
        object.__setattr__(self, "hash_fields", _paths(self.hash_fields, "hash_fields"))
        both = sorted(set(self.exclude_fields) & set(self.hash_fields))
        if both:
            raise RevCentConfigError(f"{', '.join(both)} is both excluded and hashed; choose one.")
        for path in (*self.exclude_fields, *self.hash_fields):
            if path in _REQUIRED_FIELDS:
                raise RevCentConfigError(
                    f"{path!r} cannot be excluded or hashed: the pipeline needs it to de-duplicate and partition."
                )
        if self.hash_key_conn_id is not None and (not isinstance(self.hash_key_conn_id, str)
                                                  or not self.hash_key_conn_id):
            raise RevCentConfigError(f"hash_key_conn_id={self.hash_key_conn_id!r} must be a connection id.")
        if self.hash_fields and not (self.hash_key_conn_id or self.hash_key):
            raise RevCentConfigError(
                "hash_fields needs hash_key_conn_id: a connection whose password is the secret HMAC key."
            )

    @property
    def needs_key(self) -> bool:
        """Whether the key must be read before rows are written."""
        return bool(self.hash_fields) and not self.hash_key

    def with_key(self, key: bytes) -> PiiSettings:
        """These settings with the secret key read from ``hash_key_conn_id``.

        :param key: the key's bytes (the connection's password).
        """
        if not key:
            raise RevCentConfigError(
                f"Connection {self.hash_key_conn_id!r} has no password: it must hold the secret HMAC key for "
                "hash_fields."
            )
        return replace(self, hash_key=key)

    def digest(self, value: Any) -> str:
        """``HMAC-SHA256(key, value)`` hex, of the string or of the value's canonical JSON.

        :param value: the field's value as the API sent it.
        """
        if not self.hash_key:
            raise RevCentConfigError(
                "hash_fields is set but no hash key was read; store a secret key in a connection (password) "
                "and pass its id as hash_key_conn_id."
            )
        return hmac.new(self.hash_key, hash_text(value).encode(), hashlib.sha256).hexdigest()

    def under(self, path: str) -> bool:
        """Whether a setting names this path or a field inside it."""
        return any(p == path or p.startswith(path + ".") for p in (*self.exclude_fields, *self.hash_fields))


def apply_pii(columns: Sequence[Column], pii: PiiSettings) -> tuple[Column, ...]:
    """The API columns as the table will hold them: excluded fields gone, hashed fields STRING.

    :param columns: the API's columns.
    :param pii: the settings to apply; every path must name a field of ``columns``.
    """
    for path in (*pii.exclude_fields, *pii.hash_fields):
        if find_column(columns, path) is None:
            raise RevCentConfigError(
                f"PII setting names field {path!r}, which the customer object does not have; use a dotted "
                "path of the spec such as 'email' or 'customer_card.first_6'."
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


def check_paths(pii: PiiSettings) -> None:
    """Check every path against the packaged spec's customer (raises naming the path)."""
    apply_pii(customer_columns(), pii)


__all__ = ["PiiSettings", "apply_pii", "check_paths", "hash_text"]
