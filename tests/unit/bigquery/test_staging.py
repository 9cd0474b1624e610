"""RunStaging against a fake client: the run's staging table, window markers, loads, the apply and the drop."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from google.api_core.exceptions import Conflict, NotFound

from airflow_revcent.bigquery.destination import CustomersDestination
from airflow_revcent.bigquery.fields import staging_schema
from airflow_revcent.bigquery.staging import RunStaging, WindowFacts
from airflow_revcent.bigquery.tables import TableRef
from airflow_revcent.exceptions import RevCentStagingLostError
from airflow_revcent.rows.columns import Column

TABLE = TableRef("p", "d", "customers")
API = (Column("id", "STRING", "REQUIRED"), Column("created_date_unix", "INTEGER", "REQUIRED"))


class _Row(dict[str, Any]):
    """A result row as the client gives it: fields by name (``keys()``)."""


class FakeClient:
    """Tables, jobs and loads in memory, as much of the BigQuery client as RunStaging uses."""

    def __init__(self, *, labels_in_list: bool = True) -> None:
        self.tables: dict[str, SimpleNamespace] = {}
        self.jobs: dict[str, SimpleNamespace] = {}
        self.loads: list[tuple[str, str, int]] = []  # (job id, table, rows)
        self.queries: list[str] = []
        self.deleted: list[str] = []
        self.labels_in_list = labels_in_list
        self._clock = itertools.count(1_767_225_600_000, 1000)

    def get_table(self, ref: Any, **_: Any) -> Any:
        if str(ref) not in self.tables:
            raise NotFound(str(ref))
        return self.tables[str(ref)]

    def create_table(self, table: Any, exists_ok: bool = False, **_: Any) -> Any:
        ref = f"{table.project}.{table.dataset_id}.{table.table_id}"
        if ref in self.tables:
            if exists_ok:
                return self.tables[ref]
            raise Conflict(ref)
        self.tables[ref] = SimpleNamespace(
            table_id=table.table_id, reference=ref, schema=list(table.schema), labels=dict(table.labels or {}),
            expires=table.expires, created=datetime.fromtimestamp(next(self._clock) / 1000, UTC))
        return self.tables[ref]

    def update_table(self, table: Any, fields: list[str], **_: Any) -> Any:
        return table  # the fake's tables are the objects get_table returned: already changed

    def list_tables(self, dataset: str, **_: Any) -> list[Any]:
        return [SimpleNamespace(table_id=t.table_id, reference=t.reference,
                                labels=dict(t.labels) if self.labels_in_list else {})
                for ref, t in self.tables.items() if ref.startswith(f"{dataset}.")]

    def delete_table(self, ref: Any, not_found_ok: bool = False, **_: Any) -> None:
        self.deleted.append(str(ref))
        self.tables.pop(str(ref), None)

    def load_table_from_file(self, handle: Any, destination: str, job_id: str, **_: Any) -> Any:
        if job_id in self.jobs:
            raise Conflict(job_id)
        if destination not in self.tables:
            raise NotFound(destination)
        rows = len(handle.read().splitlines())
        self.loads.append((job_id, destination, rows))
        return self._job(job_id, output_rows=rows)

    def query(self, sql: str, job_id: str | None = None, **_: Any) -> Any:
        self.queries.append(sql)
        return self._job(str(job_id), rows=[_Row(inserted=3, updated=1)])

    def get_job(self, job_id: str, **_: Any) -> Any:
        if job_id not in self.jobs:
            raise NotFound(job_id)
        return self.jobs[job_id]

    def _job(self, job_id: str, *, output_rows: int = 0, rows: list[Any] | None = None) -> Any:
        job = SimpleNamespace(job_id=job_id, project="p", state="DONE", error_result=None, errors=None,
                              output_rows=output_rows, result=lambda **_: iter(rows or []))
        self.jobs[job_id] = job
        return job


def destination(client: FakeClient) -> CustomersDestination:
    dest = CustomersDestination(cast("Any", client), TABLE, API, job_prefix="dag__task_")
    client.create_table(SimpleNamespace(project="p", dataset_id="d", table_id="customers", schema=dest.schema,
                                        labels={}, expires=None))
    dest.schemas = {TABLE: client.get_table(str(TABLE)).schema}
    return dest


def ndjson(tmp_path: Path, name: str, ids: list[int]) -> Path:
    path = tmp_path / f"{name}.ndjson"
    path.write_text("".join(f'{{"id":"{i}","created_date_unix":{1_767_225_600 + i}}}\n' for i in ids))
    return path


def facts(index: int, rows: int, digest: str = "a" * 32) -> WindowFacts:
    return WindowFacts(index=index, start=index * 100, end=index * 100 + 100, rows=rows, distinct=rows,
                       total_count=rows, created_min=1_767_225_600, created_max=1_767_225_700, digest=digest)


def test_the_run_staging_table_is_created_once_shaped_like_the_destination_and_expires():
    client = FakeClient()
    dest = destination(client)
    staging = RunStaging(dest, "k1")
    staging.open()
    table = client.get_table(str(TABLE.staging("k1")))
    wanted = staging_schema(dest.schemas[TABLE], [c.name for c in dest.columns])
    assert [f.name for f in table.schema] == [f.name for f in wanted]
    assert table.expires is not None and table.expires - datetime.now(UTC) <= timedelta(days=1)
    again = RunStaging(dest, "k1")
    again.open()  # a retry keeps it: the same creation time
    assert again.epoch == staging.epoch != 0


def test_a_window_is_loaded_by_append_under_content_ids_and_then_marked(tmp_path):
    client = FakeClient()
    staging = RunStaging(destination(client), "k1")
    staging.open()
    files = [ndjson(tmp_path, "a", [1, 2]), ndjson(tmp_path, "b", [3])]
    staging.stage_window(files, facts(0, 3))
    staging.stage_window(files[:1], facts(0, 3))  # the same file again (a zombie): reattaches, not loaded twice
    assert [rows for _, _, rows in client.loads] == [2, 1]
    assert all(job.startswith(f"revcent_load_dag__task_{staging.epoch}_") for job, _, _ in client.loads)
    marks = staging.marks([(0, 100), (100, 200)])
    assert list(marks) == [0] and marks[0].rows == 3 and marks[0].epoch == staging.epoch


def test_marker_labels_are_bigquery_labels_and_read_back_whole():
    fact = WindowFacts(index=7, start=1_700_000_000, end=1_707_776_000, rows=12_345, skipped=2, distinct=12_340,
                       total_count=None, created_min=None, created_max=None, digest="f" * 64, epoch=1_767_225_600_123,
                       history_epoch=0)
    labels = fact.labels()
    assert all(re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", k) and re.fullmatch(r"[a-z0-9_-]{0,63}", v)
               for k, v in labels.items())
    assert WindowFacts.from_labels(7, labels) == WindowFacts(**{**fact.__dict__, "digest": "f" * 32})
    assert WindowFacts.from_labels(7, {"rows": "1"}) is None  # not a marker


def test_a_marker_whose_staging_table_was_recreated_is_ignored(tmp_path):
    client = FakeClient()
    dest = destination(client)
    staging = RunStaging(dest, "k1")
    staging.open()
    staging.stage_window([ndjson(tmp_path, "a", [1])], facts(0, 1))
    client.delete_table(str(staging.table))  # expired, or dropped by hand
    retry = RunStaging(dest, "k1")
    retry.open()
    assert retry.epoch != staging.epoch
    assert retry.marks([(0, 100)]) == {}  # the marker is still there but names the old table: read it again


def test_a_marker_of_other_window_bounds_is_ignored(tmp_path):
    client = FakeClient()
    staging = RunStaging(destination(client), "k1")
    staging.open()
    staging.stage_window([], facts(0, 0))
    assert list(staging.marks([(0, 100)])) == [0]
    assert staging.marks([(0, 90)]) == {}  # an end clipped to another "now": the last window is read again


def test_markers_are_read_with_get_table_when_the_list_has_no_labels(tmp_path):
    client = FakeClient(labels_in_list=False)
    staging = RunStaging(destination(client), "k1")
    staging.open()
    staging.stage_window([ndjson(tmp_path, "a", [1])], facts(0, 1))
    assert list(staging.marks([(0, 100)])) == [0]


def test_an_unmarked_window_is_staged_but_not_done(tmp_path):
    client = FakeClient()
    staging = RunStaging(destination(client), "k1")
    staging.open()
    staging.stage_window([ndjson(tmp_path, "a", [1])], facts(0, 1), mark=False)
    assert len(client.loads) == 1 and staging.marks([(0, 100)]) == {}


def test_loading_into_a_dropped_staging_table_says_so(tmp_path):
    client = FakeClient()
    staging = RunStaging(destination(client), "k1")
    staging.open()
    client.delete_table(str(staging.table))  # a sibling attempt applied the run and dropped it
    with pytest.raises(RevCentStagingLostError, match="dropped while this attempt loaded"):
        staging.stage_window([ndjson(tmp_path, "a", [1])], facts(0, 1))


def test_the_apply_runs_once_from_the_run_staging_then_drops_markers_and_staging(tmp_path):
    client = FakeClient()
    dest = destination(client)
    staging = RunStaging(dest, "k1")
    staging.open()
    for i in range(3):
        staging.stage_window([ndjson(tmp_path, f"w{i}", [i])], facts(i, 1, digest=f"{i}" * 32))
    marks = staging.marks([(i * 100, i * 100 + 100) for i in range(3)])
    result = staging.apply(marks, attempt=1, run_id="r")
    [sql] = client.queries
    assert f"FROM {staging.table.sql()}" in sql and result.job_ids[-1].endswith("_t1")
    assert (result.rows_loaded, result.rows_inserted, result.rows_updated) == (3, 3, 1)
    staging.drop()
    dropped = client.deleted
    assert dropped[-1] == str(staging.table) and sorted(dropped[:-1]) == [str(staging.marker(i)) for i in range(3)]
    assert not [t for t in client.tables if "staging" in t]


def test_a_retry_finds_the_committed_apply_and_a_rerun_with_new_reads_applies_again(tmp_path):
    client = FakeClient()
    dest = destination(client)
    first = RunStaging(dest, "k1")
    first.open()
    first.stage_window([ndjson(tmp_path, "a", [1])], facts(0, 1, digest="1" * 32))
    applied = first.apply(first.marks([(0, 100)]), attempt=1)
    # Attempt 2 (killed attempt 1 after its transaction committed): the same markers find that job.
    again = first.apply(first.marks([(0, 100)]), attempt=2)
    assert again.already_applied and again.job_ids == [applied.job_ids[-1]] and again.rows_inserted == 3
    assert len(client.queries) == 1
    # Cleared and run again: new reads (another digest) are a new apply.
    first.stage_window([], facts(0, 1, digest="2" * 32))
    rerun = first.apply(first.marks([(0, 100)]), attempt=3)
    assert not rerun.already_applied and len(client.queries) == 2


def test_an_empty_run_applies_nothing():
    client = FakeClient()
    staging = RunStaging(destination(client), "k1")
    staging.open()
    staging.stage_window([], facts(0, 0))
    result = staging.apply(staging.marks([(0, 100)]))
    assert (result.rows_inserted, result.rows_updated) == (0, 0) and client.queries == []
