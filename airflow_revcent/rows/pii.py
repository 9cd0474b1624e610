"""Which customer fields leave the worker, and how: exclusion and keyed hashing (pure).

:class:`PiiSettings` is validated once, where it is built (so a DAG with a misspelt path fails when
it is parsed, naming the path); the secret key is read from its connection only when the task runs
(:meth:`PiiSettings.with_key`). :func:`apply_pii` gives the table's columns under these settings;
:meth:`PiiSettings.digest` is the one HMAC the converter writes.

A table's PII protection belongs to the table, not to one run: :class:`PiiPolicy` is what a table
holds (excluded and hashed paths, a fingerprint of the hash key), recorded as one marked line of the
table's description (:func:`description_with_policy`, :func:`policy_in_description`).
:func:`compare_policies` says how a run's settings differ from it; every difference needs
``pii_policy_change="allow"`` (or an edited policy line), and :func:`policy_error` says so.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

from airflow_revcent.exceptions import RevCentConfigError, RevCentPiiPolicyError
from airflow_revcent.rows.columns import Column, customer_columns, find_column
from airflow_revcent.rows.jsontext import decimal_text, dumps

#: What apply_pii appends to a hashed column's description; it also tells, in a table from before
#: policies were recorded, which columns hold HMACs.
HASH_NOTE = "HMAC-SHA256 hex of the value (hash_fields)."

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


def apply_pii(columns: Sequence[Column], pii: PiiSettings, *, keep: Sequence[str] = ()) -> tuple[Column, ...]:
    """The API columns as the table will hold them: excluded fields gone, hashed fields STRING.

    :param columns: the API's columns.
    :param pii: the settings to apply; every path must name a field of ``columns``.
    :param keep: fields the pipeline needs as they are (a resource's key and creation field, when they are
        not ``id`` and ``created_date_unix``, which the settings refuse already).
    """
    for path in (*pii.exclude_fields, *pii.hash_fields):
        if path in keep:
            raise RevCentConfigError(
                f"{path!r} cannot be excluded or hashed: the pipeline needs it to de-duplicate and partition."
            )
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
                out.append(Column(col.name, "STRING", kind, f"{col.description} {HASH_NOTE}".strip()))
            elif col.fields:
                out.append(replace(col, fields=walk(col.fields, path + ".")))
            else:
                out.append(col)
        return tuple(out)

    return walk(columns, "")


def check_paths(pii: PiiSettings) -> None:
    """Check every path against the packaged spec's customer (raises naming the path)."""
    apply_pii(customer_columns(), pii)


# -- the table's policy ----------------------------------------------------------------------

#: How a field is held, weakest first: a run may never write a field weaker than its table holds it.
Treatment = Literal["plaintext", "hashed", "excluded"]
_STRENGTH: dict[str, int] = {"plaintext": 0, "hashed": 1, "excluded": 2}
#: Starts the one line of a table's description that records its policy (JSON follows on that line).
POLICY_MARKER = "revcent-pii-policy:"
_POLICY_LINE = re.compile(r"^[ \t]*" + re.escape(POLICY_MARKER) + r"(.*)$", re.MULTILINE)
_POLICY_KEYS = frozenset({"exclude_fields", "hash_fields", "hash_key_fingerprint"})
#: The fixed text whose HMAC under the key identifies the key without revealing it.
_FINGERPRINT_LABEL = b"airflow-revcent pii hash key fingerprint v1"


def key_fingerprint(key: bytes) -> str:
    """``HMAC-SHA256(key, fixed label)``, 16 hex digits: tells two keys apart, never gives the key.

    (Whoever can guess the key can check a guess against this, as against any hashed email in the
    table already; it reveals nothing the hashed columns do not.)

    :param key: the secret HMAC key.
    """
    return hmac.new(key, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class PiiPolicy:
    """What a table holds: which fields it excludes, which it hashes, and under which key.

    :param exclude_fields: dotted paths the table never receives.
    :param hash_fields: dotted paths the table holds as HMAC-SHA256 hex.
    :param key_fingerprint: :func:`key_fingerprint` of the hash key; ``None`` when unknown (a table from
        before policies were recorded, or a policy line without one), and then not compared.
    """

    exclude_fields: frozenset[str] = frozenset()
    hash_fields: frozenset[str] = frozenset()
    key_fingerprint: str | None = None

    @classmethod
    def of(cls, pii: PiiSettings) -> PiiPolicy:
        """The policy a run with these settings writes (the key, if read, only as its fingerprint).

        :param pii: the run's settings, with the key read when it hashes.
        """
        fingerprint = key_fingerprint(pii.hash_key) if pii.hash_fields and pii.hash_key else None
        return cls(frozenset(pii.exclude_fields), frozenset(pii.hash_fields), fingerprint)

    def treatment(self, path: str) -> Treatment:
        """How this policy holds a path: a setting on the path or on a record around it applies to it."""
        parts = path.split(".")
        prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        if prefixes & self.exclude_fields:
            return "excluded"
        if prefixes & self.hash_fields:
            return "hashed"
        return "plaintext"

    def to_json(self) -> str:
        """The policy as one line of JSON (sorted, so the same policy always reads the same)."""
        return json.dumps({"exclude_fields": sorted(self.exclude_fields), "hash_fields": sorted(self.hash_fields),
                           "hash_key_fingerprint": self.key_fingerprint}, separators=(", ", ": "))

    def as_settings(self) -> str:
        """The ``PiiSettings(...)`` that writes this policy, for messages."""
        parts = []
        if self.exclude_fields:
            parts.append(f"exclude_fields={sorted(self.exclude_fields)!r}")
        if self.hash_fields:
            parts.append(f"hash_fields={sorted(self.hash_fields)!r}, hash_key_conn_id=<the connection holding "
                         "the table's key>")
        return f"PiiSettings({', '.join(parts)})" if parts else "no PII settings (pii=None)"


@dataclass(frozen=True)
class FieldChange:
    """One field a run would hold differently from its table.

    :param path: the dotted path.
    :param table: how the table holds it.
    :param run: how the run would write it.
    """

    path: str
    table: Treatment
    run: Treatment

    @property
    def weaker(self) -> bool:
        """Whether the run would write the field in a weaker form than the table holds."""
        return _STRENGTH[self.run] < _STRENGTH[self.table]

    def __str__(self) -> str:
        return f"{self.path} ({self.table} in the table, {self.run} in this run)"


@dataclass(frozen=True)
class PolicyDiff:
    """How a run's policy differs from its table's.

    :param fields: the fields held differently, by path.
    :param key_changed: both hash fields under keys whose fingerprints differ.
    """

    fields: tuple[FieldChange, ...] = ()
    key_changed: bool = False

    @property
    def changed(self) -> bool:
        """Whether the run would change what the table holds."""
        return bool(self.fields) or self.key_changed

    @property
    def weaker(self) -> tuple[FieldChange, ...]:
        """The fields the run would write in a weaker form (plaintext where hashed, present where excluded)."""
        return tuple(c for c in self.fields if c.weaker)

    @property
    def stronger(self) -> tuple[FieldChange, ...]:
        """The fields the run would newly hash or exclude (the column would hold a mix)."""
        return tuple(c for c in self.fields if not c.weaker)


def compare_policies(table: PiiPolicy, run: PiiPolicy) -> PolicyDiff:
    """How ``run`` would hold each field ``table`` or ``run`` names, where that differs; and whether
    fields hashed by both are hashed under different keys (their values would no longer join).

    :param table: the table's recorded (or inferred) policy.
    :param run: the policy this run's settings write.
    """
    paths = sorted(table.exclude_fields | table.hash_fields | run.exclude_fields | run.hash_fields)
    changes: list[FieldChange] = []
    for path in paths:
        held, written = table.treatment(path), run.treatment(path)
        # A change on a record already says it for the fields inside it.
        if held != written and not any(path.startswith(c.path + ".") and (c.table, c.run) == (held, written)
                                       for c in changes):
            changes.append(FieldChange(path, held, written))
    both_hash = any(table.treatment(p) == run.treatment(p) == "hashed" for p in paths)
    key_changed = bool(both_hash and table.key_fingerprint and run.key_fingerprint
                       and table.key_fingerprint != run.key_fingerprint)
    return PolicyDiff(tuple(changes), key_changed)


def policy_in_description(description: str | None, *, table: str = "the table") -> PiiPolicy | None:
    """The policy recorded in a table's description, or ``None`` if it has no policy line.

    :param description: the table's description.
    :param table: the table's name, for messages.
    """
    lines = _POLICY_LINE.findall(description or "")
    if not lines:
        return None
    how = (f'Write it as one line: {POLICY_MARKER} {{"exclude_fields": [...], "hash_fields": [...], '
           '"hash_key_fingerprint": "..." or null} (README, "PII").')
    if len(lines) > 1:
        raise RevCentPiiPolicyError(f"The description of {table} has {len(lines)} '{POLICY_MARKER}' lines; keep one. "
                                    + how)
    try:
        data = json.loads(lines[0])
    except ValueError:
        data = None
    if (not isinstance(data, dict) or set(data) - _POLICY_KEYS
            or not all(isinstance(data.get(k, []), list) for k in ("exclude_fields", "hash_fields"))
            or not isinstance(data.get("hash_key_fingerprint"), str | None)):
        raise RevCentPiiPolicyError(f"The PII policy line in the description of {table} is not valid: "
                                    f"{lines[0].strip()[:200]!r}. " + how)
    try:
        settings = PiiSettings(exclude_fields=data.get("exclude_fields", []), hash_fields=data.get("hash_fields", []),
                               hash_key_conn_id="recorded")
        check_paths(settings)
    except RevCentConfigError as error:
        raise RevCentPiiPolicyError(f"The PII policy line in the description of {table}: {error} " + how) from None
    return PiiPolicy(frozenset(settings.exclude_fields), frozenset(settings.hash_fields),
                     data.get("hash_key_fingerprint"))


def description_with_policy(description: str | None, policy: PiiPolicy) -> str:
    """A table's description with its policy line replaced by (or, if it has none, followed by) this policy's.

    :param description: the table's description.
    :param policy: the policy to record.
    """
    line = f"{POLICY_MARKER} {policy.to_json()}"
    text = description or ""
    if _POLICY_LINE.search(text):
        return _POLICY_LINE.sub(lambda _: line, text, count=1)
    return f"{text.rstrip()}\n\n{line}" if text.strip() else line


def infer_policy(columns: Sequence[Column]) -> PiiPolicy:
    """The policy of a table from before policies were recorded, as far as its columns tell: a column whose
    description carries :data:`HASH_NOTE` holds HMACs. Exclusions and the key cannot be told (a missing
    column may just be from an older spec), so none are inferred.

    :param columns: the table's columns (:func:`~airflow_revcent.bigquery.fields.from_schema_fields`).
    """
    hashed: set[str] = set()

    def walk(cols: Sequence[Column], prefix: str) -> None:
        for col in cols:
            if HASH_NOTE in col.description:
                hashed.add(prefix + col.name)
            else:
                walk(col.fields, f"{prefix}{col.name}.")

    walk(columns, "")
    return PiiPolicy(hash_fields=frozenset(hashed))


def policy_error(table: str, diff: PolicyDiff, held: PiiPolicy, *, inferred: bool) -> str:
    """The message refusing a run: the table, each field and how it differs, and the two ways on.

    :param table: the table's name.
    :param diff: :func:`compare_policies` of the table's policy and the run's.
    :param held: the table's policy.
    :param inferred: whether ``held`` was inferred from the columns (no policy line yet).
    """
    parts = []
    if diff.weaker:
        parts.append("would write fields in a weaker form than the table holds them: "
                     + "; ".join(map(str, diff.weaker)))
    if diff.stronger:
        parts.append("would newly protect fields whose column already holds other values (the column would hold "
                     "a mix): " + "; ".join(map(str, diff.stronger)))
    if diff.key_changed:
        parts.append(f"hashes with another key than the table's (key fingerprint {held.key_fingerprint} in the "
                     "table): its hashes would no longer match the table's")
    source = (" (inferred from its columns' descriptions: the table has no policy line yet)" if inferred else "")
    return (
        f"This run does not match the PII policy of table {table}{source}: it " + "; and it ".join(parts) + ". "
        f"Nothing was changed. Run with the table's settings: {held.as_settings()} (keep every DAG writing this "
        "table on one PiiSettings object). To change the table's policy on purpose, run once with "
        f"pii_policy_change='allow', or edit the '{POLICY_MARKER}' line of the table's description "
        "(README, 'PII'); values already in the table are not rewritten either way."
    )


__all__ = [
    "HASH_NOTE", "POLICY_MARKER", "FieldChange", "PiiPolicy", "PiiSettings", "PolicyDiff", "apply_pii",
    "check_paths", "compare_policies", "description_with_policy", "hash_text", "infer_policy", "key_fingerprint",
    "policy_error", "policy_in_description",
]
