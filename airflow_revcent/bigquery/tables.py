"""BigQuery table names: the destination as the user wrote it, and the tables the pipeline keeps beside it.

:class:`TableRef` checks ``[project.]dataset.table`` and names the staging and lock tables a run
creates in the destination's dataset (same location, same permissions). Pure: no Google import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from airflow_revcent.exceptions import RevCentConfigError

_PROJECT = r"(?:[a-z][a-z0-9.\-]*:)?[a-z][a-z0-9\-]*[a-z0-9]"
_DATASET = r"[A-Za-z0-9_]{1,1024}"
_TABLE = r"[\w\-]{1,1024}"
_TABLE_RE = re.compile(rf"^(?:(?P<project>{_PROJECT})\.)?(?P<dataset>{_DATASET})\.(?P<table>{_TABLE})$")

STAGING_PREFIX = "_revcent_staging_"
LOCK_PREFIX = "_revcent_lock_"


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
                "'project.dataset.table' (project: lowercase letters, digits and hyphens, starting with a letter, "
                "or 'example.com:project'; dataset: letters, digits and underscores; table: letters, digits, "
                "underscores and hyphens; no backticks needed)."
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

    def lock(self) -> TableRef:
        """The one-row table whose update serializes the destination's writers."""
        return TableRef(self.project, self.dataset, f"{LOCK_PREFIX}{self.table}"[:1024])
