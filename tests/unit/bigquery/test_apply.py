"""apply() when an earlier attempt's transaction already ran (a fake client, no server)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from airflow_revcent.bigquery.destination import CustomersDestination, Load
from airflow_revcent.bigquery.tables import TableRef


class _Row(dict[str, Any]):
    """A result row as the client gives it: fields by name (``keys()``)."""


class _Client:
    """A destination whose applying job of attempt 1 succeeded, counting 5 inserted and 2 updated."""

    def __init__(self) -> None:
        self.deleted: list[str] = []

    def get_table(self, ref: str, **kwargs: Any) -> Any:
        return SimpleNamespace(created=datetime(2026, 1, 1, tzinfo=UTC))

    def get_job(self, job_id: str, **kwargs: Any) -> Any:
        if job_id.endswith("_t1"):
            return SimpleNamespace(job_id=job_id, state="DONE", error_result=None,
                                   result=lambda **_: iter([_Row(inserted=5, updated=2)]))
        from google.api_core.exceptions import NotFound

        raise NotFound(job_id)

    def delete_table(self, ref: str, **kwargs: Any) -> None:
        self.deleted.append(str(ref))


def test_a_load_an_earlier_attempt_applied_reports_its_counts_and_drops_the_staging_tables_left_behind() -> None:
    client = _Client()
    table = TableRef("p", "d", "customers")
    destination = CustomersDestination(cast("Any", client), table, (), job_prefix="dag__task_")
    created = datetime(2026, 11, 1, tzinfo=UTC)
    result = destination.apply(Load(files=[], key="k", first_created=created, last_created=created, attempt=2))
    assert result.already_applied and result.job_ids[0].endswith("_t1")
    # The attempt that submitted the job was killed before it could report what the job counted.
    assert (result.rows_inserted, result.rows_updated) == (5, 2)
    # ... and before it could drop its staging table; this attempt's own (never made) is dropped too.
    assert client.deleted == [str(table.staging("k_a1")), str(table.staging("k_a2"))]
