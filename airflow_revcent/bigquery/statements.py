"""Table names and the one statement that applies a staging table to the destination: pure strings.

The MERGE is the only step that changes the destination, and a single DML statement is atomic
in BigQuery: it applies whole or not at all. It is keyed on ``id`` alone (not on the partition),
so whatever happened before, an id can never appear twice.

* New ids are inserted.
* Known ids are updated only when ``_content_hash`` differs: re-running an interval whose
  customers did not change leaves every row, metadata included, exactly as it was.
* ``_first_seen_at`` is kept from the first load; ``_last_changed_at`` moves on change.
* Rows absent from the staging table are left alone: the API can be asked for a subset
  (filters), and a customer is never deleted because one answer lacked it.
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
    def split(cls, value: object) -> tuple[str | None, str, str]:
        """Check ``[project.]dataset.table`` and return its parts (project ``None`` when absent).

        :param value: the (rendered) destination_table argument.
        """
        text = value.strip().strip("`") if isinstance(value, str) else ""
        match = _TABLE_RE.match(text)
        if not match:
            raise RevCentConfigError(
                f"destination_table={value!r} is not a BigQuery table name; write 'dataset.table' or "
                "'project.dataset.table' (letters, digits and underscores; no backticks needed)."
            )
        return match["project"], match["dataset"], match["table"]

    @classmethod
    def parse(cls, value: object, *, default_project: str | None) -> TableRef:
        """Parse ``[project.]dataset.table``.

        :param value: the (rendered) destination_table argument.
        :param default_project: used when the value names no project.
        """
        project, dataset, table = cls.split(value)
        project = project or default_project
        if not project:
            raise RevCentConfigError(
                f"destination_table={value!r} names no project and the Google Cloud connection has none; "
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
    # The QUALIFY keeps one row per id even if a staging table ever held one twice: a MERGE
    # whose source matches a target row twice fails outright.
    # Identifiers only: validated TableRefs and the spec's column names; no values are interpolated.
    return (
        f"MERGE {destination.sql()} AS T\n"  # noqa: S608
        f"USING (\n"
        f"  SELECT * FROM {staging.sql()} WHERE TRUE\n"
        f"  QUALIFY ROW_NUMBER() OVER (PARTITION BY `id` ORDER BY `_content_hash`) = 1\n"
        f") AS S\n"
        f"ON T.`id` = S.`id`\n"
        f"WHEN MATCHED AND T.`_content_hash` IS DISTINCT FROM S.`_content_hash` THEN UPDATE SET\n"
        f"    {updates}\n"
        f"WHEN NOT MATCHED THEN INSERT ({names})\n"
        f"  VALUES ({values})"
    )
