"""The operator's extra links: the destination table and the applying job in the BigQuery console.

Airflow 3 serializes an operator's links as ``{name: xcom_key}`` and the key is ``_link_<class name>``;
no serialized DAG holds this module's path (only the provider info does). Renaming a class would
orphan the links of past runs; moving the module does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseOperator, BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey

CONSOLE = "https://console.cloud.google.com/bigquery"


def table_console_url(project: str, dataset: str, table: str) -> str:
    """The BigQuery console page of a table."""
    p, d, t = (quote(part, safe="") for part in (project, dataset, table))
    return f"{CONSOLE}?project={p}&ws=!1m5!1m4!4m3!1s{p}!2s{d}!3s{t}"


class BigQueryTableLink(BaseOperatorLink):
    """Opens the destination table; Airflow stores the link when the task finishes (the table's
    project is only known once the task has read its Google Cloud connection)."""

    name = "BigQuery table"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        table: Any = getattr(operator, "resolved_destination", None)
        if table is None:
            return ""
        return table_console_url(table.project, table.dataset, table.table)


def job_console_url(project: str, location: str, job_id: str) -> str:
    """The BigQuery console page of a job."""
    p, loc, j = (quote(part, safe="") for part in (project, location, job_id))
    return f"{CONSOLE}?project={p}&j=bq:{loc}:{j}&page=queryresults"


class BigQueryJobLink(BaseOperatorLink):
    """Opens the job that applied the run's customers (or the last job the run waited on, if it failed)."""

    name = "BigQuery job"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        job: Any = getattr(operator, "last_job", None)
        if job is None:
            return ""
        project, location, job_id = job
        return job_console_url(project, location, job_id)
