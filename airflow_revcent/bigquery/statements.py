"""Table names and the one statement that applies a staging table to the destination: pure strings.

The MERGE is the only step that changes the destination, and a single DML statement is atomic
in BigQuery: it applies whole or not at all. It is keyed on ``id`` alone (not on the partition),
so whatever happened before, an id can never appear twice.

* New ids are inserted.
* Known ids are updated only when ``_content_hash`` differs: re-running an interval whose
  customers did not change leaves every row, metadata included, exactly as it was.
* ...and only by a newer extraction (``_extracted_at``): when two runs overlap (a daily run's
  lookback and the weekly full refresh, say), the one that read the API last wins, whichever
  merges last.
* ``_first_seen_at`` is kept from the first load; ``_last_changed_at`` moves on change.
* Rows absent from the staging table are left alone: the API can be asked for a subset
  (filters), and a customer is never deleted because one answer lacked it.

With change history on, the same changes are applied by a multi-statement transaction that also
closes the current version of each changed customer in the history table and appends its new
one; the transaction commits both tables or neither.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from airflow_revcent.exceptions import RevCentConfigError

_PROJECT = r"(?:[a-z][a-z0-9.\-]*:)?[a-z][a-z0-9\-]*[a-z0-9]"
_DATASET = r"[A-Za-z0-9_]{1,1024}"
_TABLE = r"[\w\-]{1,1024}"
_TABLE_RE = re.compile(rf"^(?:(?P<project>{_PROJECT})\.)?(?P<dataset>{_DATASET})\.(?P<table>{_TABLE})$")

#: Columns the MERGE maintains itself rather than copying from staging on update.
KEEP_ON_UPDATE = ("_first_seen_at",)
STAGING_PREFIX = "_revcent_staging_"


@dataclass(frozen=True)
class TableRef:
    """A fully qualified BigQuery table."""

    project: str
    dataset: str
    table: str

    @classmethod
    def split(cls, value: object, *, name: str = "destination_table") -> tuple[str | None, str, str]:
        """Check ``[project.]dataset.table`` and return its parts (project ``None`` when absent).

        :param value: the (rendered) argument.
        :param name: the argument's name, for the error message.
        """
        text = value.strip().strip("`") if isinstance(value, str) else ""
        match = _TABLE_RE.match(text)
        if not match:
            raise RevCentConfigError(
                f"{name}={value!r} is not a BigQuery table name; write 'dataset.table' or "
                "'project.dataset.table' (letters, digits and underscores; no backticks needed)."
            )
        return match["project"], match["dataset"], match["table"]

    @classmethod
    def parse(cls, value: object, *, default_project: str | None, name: str = "destination_table") -> TableRef:
        """Parse ``[project.]dataset.table``.

        :param value: the (rendered) argument.
        :param default_project: used when the value names no project.
        :param name: the argument's name, for the error message.
        """
        project, dataset, table = cls.split(value, name=name)
        project = project or default_project
        if not project:
            raise RevCentConfigError(
                f"{name}={value!r} names no project and the Google Cloud connection has none; "
                "write 'project.dataset.table' or set the connection's 'project' extra."
            )
        return cls(project, dataset, table)

    @property
    def dataset_id(self) -> str:
        return f"{self.project}.{self.dataset}"

    def __str__(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"

    def sql(self) -> str:
        return f"`{self.project}.{self.dataset}.{self.table}`"

    def staging(self, key: str) -> TableRef:
        """The staging table of one load (same dataset, so same location and permissions)."""
        return TableRef(self.project, self.dataset, f"{STAGING_PREFIX}{self.table}_{key}"[:1024])


def _q(name: str) -> str:
    return f"`{name}`"


def _deduplicated(staging: TableRef) -> str:
    # One row per id even if a staging table ever held one twice: a MERGE whose source matches a
    # target row twice fails outright, and a history would get two versions.
    return (f"(SELECT * FROM {staging.sql()} WHERE TRUE "
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY `id` ORDER BY `_content_hash`) = 1)")


def _changed(destination: TableRef, staging: TableRef) -> str:
    """Staging rows (S) that are new or whose content changed, joined to their current row (T)."""
    return (f"FROM {_deduplicated(staging)} AS S LEFT JOIN {destination.sql()} AS T ON T.`id` = S.`id`\n"
            f"  WHERE T.`id` IS NULL OR ({_NEWER_CHANGE.format(t='T')})")


#: A staging row S replaces a destination row: its content differs and it was read later.
_NEWER_CHANGE = "{t}.`_content_hash` != S.`_content_hash` AND S.`_extracted_at` > {t}.`_extracted_at`"


def change_counts_query(destination: TableRef, staging: TableRef) -> str:
    """How many staging rows are new and how many changed (read-only)."""
    return (f"SELECT COUNTIF(T.`id` IS NULL) AS inserted, COUNTIF(T.`id` IS NOT NULL) AS updated\n"
            f"{_changed(destination, staging)}")


def _new_values(columns: Sequence[str]) -> str:
    values = []
    for c in columns:
        if c == "_first_seen_at":
            values.append("COALESCE(T.`_first_seen_at`, S.`_extracted_at`)")
        elif c == "_last_changed_at":
            values.append("S.`_extracted_at`")
        else:
            values.append(f"S.{_q(c)}")
    return ", ".join(values)


def history_script(destination: TableRef, staging: TableRef, history: TableRef, columns: Sequence[str]) -> str:
    """One transaction: close changed customers' current versions, append their new versions, and
    apply the same changes to the destination (see the module docstring).

    :param destination: the customers table.
    :param staging: the run's staging table.
    :param history: the type-2 history table (the destination's columns plus ``_valid_from``,
        ``_valid_to``, ``_is_current``).
    :param columns: the top-level columns the pipeline writes.
    """
    names = ", ".join(_q(c) for c in columns)
    changed_ids = f"(SELECT S.`id` {_changed(destination, staging)})"
    # Statements run in order, and each sees the destination as the earlier ones left it: the history
    # statements read it before it changes; the INSERT adds new versions (new hashes), then the DELETE
    # removes exactly the rows whose hash differs from staging's: the old versions.
    return "\n".join((
        "BEGIN TRANSACTION;",
        f"UPDATE {history.sql()} AS H SET `_valid_to` = (SELECT MAX(`_extracted_at`) FROM {staging.sql()}), "
        f"`_is_current` = FALSE\n  WHERE H.`_is_current` AND H.`id` IN {changed_ids};",
        f"INSERT INTO {history.sql()} ({names}, `_valid_from`, `_valid_to`, `_is_current`)\n"
        f"  SELECT {_new_values(columns)}, S.`_extracted_at`, NULL, TRUE\n  {_changed(destination, staging)};",
        f"INSERT INTO {destination.sql()} ({names})\n  SELECT {_new_values(columns)}\n"
        f"  {_changed(destination, staging)};",
        f"DELETE FROM {destination.sql()} AS D WHERE EXISTS (SELECT 1 FROM {_deduplicated(staging)} AS S "
        f"WHERE S.`id` = D.`id` AND {_NEWER_CHANGE.format(t='D')});",
        "COMMIT TRANSACTION;",
    ))


def merge_statement(destination: TableRef, staging: TableRef, columns: Sequence[str]) -> str:
    """The MERGE applying a staging table to the destination (see the module docstring).

    :param destination: the customers table.
    :param staging: a table with the same columns, possibly holding an id more than once.
    :param columns: the top-level columns the pipeline writes.
    """
    updates = ",\n    ".join(
        f"{_q(c)} = S.{_q(c)}" if c != "_last_changed_at" else f"{_q(c)} = S.{_q('_extracted_at')}"
        for c in columns
        if c not in KEEP_ON_UPDATE and c != "id"
    )
    names = ", ".join(_q(c) for c in columns)
    values = ", ".join(f"S.{_q(c)}" for c in columns)
    # Identifiers only: validated TableRefs and the spec's column names; no values are interpolated.
    return (
        f"MERGE {destination.sql()} AS T\n"
        f"USING {_deduplicated(staging)} AS S\n"
        f"ON T.`id` = S.`id`\n"
        f"WHEN MATCHED AND {_NEWER_CHANGE.format(t='T')} THEN UPDATE SET\n"
        f"    {updates}\n"
        f"WHEN NOT MATCHED THEN INSERT ({names})\n"
        f"  VALUES ({values})"
    )
