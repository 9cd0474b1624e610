"""CustomersDestination.prepare() against a fake BigQuery client: adopting a team's table (refusals before any
change, the fill job) and keeping the pipeline's own tables from expiring on every run.

Only names that existed before adoption are imported, so these tests run (and fail) on the code before it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from google.api_core import exceptions as google_exceptions
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField

from airflow_revcent.bigquery.destination import TABLE_DESCRIPTION, CustomersDestination
from airflow_revcent.bigquery.tables import TableRef
from airflow_revcent.exceptions import RevCentBigQueryError, RevCentBigQueryPermanentError
from airflow_revcent.rows.columns import customer_columns

DEST = TableRef("p", "d", "customers")
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
TEAM = [SchemaField("id", "STRING"), SchemaField("email", "STRING"), SchemaField("created_date_unix", "INTEGER"),
        SchemaField("status", "STRING"), SchemaField("loaded_at", "TIMESTAMP")]


class FakeJob:
    def __init__(self, job_id: str | None, rows: list[dict[str, Any]]) -> None:
        self.job_id, self.rows, self.state, self.error_result, self.errors = job_id, rows, "DONE", None, None

    def result(self, **kwargs: Any) -> list[dict[str, Any]]:
        return self.rows


class FakeClient:
    """Tables in a dict; queries answered by ``answer(sql)``; every change recorded."""

    location = "US"

    def __init__(self, answer: Callable[[str], list[dict[str, Any]]] = lambda sql: [],
                 dataset: dict[str, Any] | None = None) -> None:
        self.tables: dict[str, bigquery.Table] = {}
        self.answer = answer
        self.dataset = SimpleNamespace(**{"location": "US", "default_table_expiration_ms": None,
                                          "default_partition_expiration_ms": None, **(dataset or {})})
        self.queries: list[tuple[str | None, str]] = []
        self.updates: list[tuple[str, list[str]]] = []
        self.created: list[str] = []
        self.update_faults: list[Exception] = []

    def add(self, name: str, schema: list[SchemaField], **options: Any) -> bigquery.Table:
        table = bigquery.Table(name, schema=schema)
        for key, value in options.items():
            setattr(table, key, value)
        table._properties["creationTime"] = str(int(CREATED.timestamp() * 1000))
        table._properties["lastModifiedTime"] = str(int(CREATED.timestamp() * 1000))
        self.tables[name] = table
        return table

    def get_dataset(self, dataset_id: str, **kwargs: Any) -> Any:
        return self.dataset

    def get_table(self, name: Any, **kwargs: Any) -> bigquery.Table:
        key = str(name)
        if key not in self.tables:
            raise google_exceptions.NotFound(f"table {key}")
        return bigquery.Table.from_api_repr(self.tables[key].to_api_repr())  # a copy, as the API returns

    def create_table(self, table: bigquery.Table, **kwargs: Any) -> bigquery.Table:
        self.created.append(str(table.reference))
        table._properties["creationTime"] = str(int(CREATED.timestamp() * 1000))
        self.tables[str(table.reference)] = table
        return table

    def update_table(self, table: bigquery.Table, fields: list[str], **kwargs: Any) -> bigquery.Table:
        if self.update_faults:
            raise self.update_faults.pop(0)
        self.updates.append((table.table_id, list(fields)))
        self.tables[str(table.reference)] = table
        return table

    def query(self, sql: str, job_id: str | None = None, **kwargs: Any) -> FakeJob:
        self.queries.append((job_id, sql))
        return FakeJob(job_id, self.answer(sql))

    def get_job(self, job_id: str, **kwargs: Any) -> Any:
        raise google_exceptions.NotFound(job_id)

    def list_rows(self, *args: Any, **kwargs: Any) -> list[Any]:
        return [{"revision": 0}]

    def list_tables(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


def _destination(client: FakeClient) -> CustomersDestination:
    return CustomersDestination(client, DEST, customer_columns(), job_prefix="dag__task_")  # type: ignore[arg-type]  # a fake client


def _writes(client: FakeClient) -> list[str]:
    return [sql for _, sql in client.queries if not sql.lstrip().upper().startswith("SELECT")]


@pytest.mark.parametrize("options", [
    {"time_partitioning": bigquery.TimePartitioning(field="loaded_at"), "require_partition_filter": True},
    {"time_partitioning": bigquery.TimePartitioning(), "require_partition_filter": True},  # ingestion time
    {"range_partitioning": bigquery.RangePartitioning(field="created_date_unix",
                                                      range_=bigquery.PartitionRange(0, 2_000_000_000, 86400)),
     "require_partition_filter": True},
], ids=["day-on-loaded_at", "ingestion-time", "integer-range"])
def test_a_table_requiring_a_filter_on_another_column_is_refused_before_any_change(options):
    client = FakeClient()
    client.add(str(DEST), TEAM, **options)
    with pytest.raises(RevCentBigQueryPermanentError, match=r"p\.d\.customers is .*require_partition_filter = true"):
        _destination(client).prepare()
    assert client.updates == [] and client.created == [] and _writes(client) == []


def test_a_required_column_the_pipeline_does_not_write_is_refused_before_any_change():
    client = FakeClient()
    client.add(str(DEST), [*TEAM[:-1], SchemaField("loaded_at", "TIMESTAMP", mode="REQUIRED")])
    with pytest.raises(RevCentBigQueryPermanentError,
                       match="REQUIRED columns the pipeline does not write \\(loaded_at\\)"):
        _destination(client).prepare()
    assert client.updates == [] and client.created == [] and client.queries == []


def _counting(unplaced: list[int], orphans: int = 0) -> Callable[[str], list[dict[str, Any]]]:
    """Answers the count query with the next of ``unplaced`` (and ``orphans``), the ids query with two ids."""
    def answer(sql: str) -> list[dict[str, Any]]:
        if "AS unplaced" in sql:
            return [{"unplaced": unplaced.pop(0) if unplaced else 0, "orphans": orphans}]
        if sql.startswith("SELECT CAST(`id`"):
            return [{"id": "c1"}, {"id": "c2"}]
        return []
    return answer


def test_rows_without_a_creation_time_are_refused_before_any_change_naming_them():
    client = FakeClient(_counting([150], orphans=2))
    client.add(str(DEST), TEAM)
    with pytest.raises(RevCentBigQueryPermanentError,
                       match=r"p\.d\.customers holds 2 row\(s\) .*ids c1, c2.*created_date_unix"):
        _destination(client).prepare()
    assert client.updates == [] and client.created == [] and _writes(client) == []


@pytest.mark.parametrize("options", [{}, {"time_partitioning": bigquery.TimePartitioning(field="loaded_at")}],
                         ids=["unpartitioned", "day-on-loaded_at"])
def test_a_team_table_gets_its_creation_times_filled_in_one_named_job_before_any_apply(options, caplog):
    client = FakeClient(_counting([150, 0]))
    client.add(str(DEST), TEAM, **options)
    _destination(client).prepare()
    fills = [(job_id, sql) for job_id, sql in client.queries if sql.startswith("UPDATE")]
    assert len(fills) == 1
    job_id, sql = fills[0]
    assert job_id is not None and job_id.startswith("revcent_adopt_dag__task_")
    assert "SET `_created_at` = TIMESTAMP_SECONDS(`created_date_unix`)" in sql and "`_created_at` IS NULL" in sql
    # The columns were added first (the fill needs _created_at), the rows were counted before any change.
    assert client.updates and client.updates[0][1] == ["schema"]
    assert "AS unplaced" in client.queries[0][1]
    assert "every statement of every run reads the whole table" in caplog.text


def test_a_team_table_whose_rows_are_placed_already_gets_no_fill():
    client = FakeClient(_counting([0]))
    client.add(str(DEST), [*TEAM, SchemaField("_created_at", "TIMESTAMP")],
               time_partitioning=bigquery.TimePartitioning(field="_created_at"))
    _destination(client).prepare()
    assert not [sql for _, sql in client.queries if sql.startswith("UPDATE")]
    assert any("WHERE `_created_at` IS NULL" in sql for _, sql in client.queries)


def test_rows_another_writer_adds_during_the_fill_fail_the_run_naming_the_table():
    client = FakeClient(_counting([150, 3]))
    client.add(str(DEST), TEAM)
    with pytest.raises(RevCentBigQueryError, match=r"p\.d\.customers still holds 3 row\(s\) without _created_at"):
        _destination(client).prepare()


def _own(client: FakeClient, expires: datetime | None, partition_ms: int | None) -> None:
    table = client.add(str(DEST), [], time_partitioning=bigquery.TimePartitioning(field="_created_at",
                                                                                   expiration_ms=partition_ms))
    table.schema = [SchemaField(f.name, f.field_type, mode=f.mode, fields=f.fields)
                    for f in _destination(client).schema]
    table.description = TABLE_DESCRIPTION
    table.expires = expires
    client.add(str(DEST.lock()), [SchemaField("revision", "INTEGER"), SchemaField("run_id", "STRING"),
                                  SchemaField("updated_at", "TIMESTAMP")])


def test_expirations_the_dataset_put_on_an_existing_own_table_are_cleared_on_a_later_run():
    # The run that created the table could not clear them (failed, or lost a race): this one does.
    client = FakeClient(dataset={"default_table_expiration_ms": 3_600_000,
                                 "default_partition_expiration_ms": 86_400_000})
    _own(client, CREATED + timedelta(hours=1), 86_400_000)
    _destination(client).prepare()
    assert client.updates == [("customers", ["expires", "time_partitioning"])]
    table = client.tables[str(DEST)]
    assert table.expires is None and not table.time_partitioning.expiration_ms


def test_an_expiration_the_user_set_on_an_own_table_is_kept():
    client = FakeClient(dataset={"default_table_expiration_ms": 3_600_000,
                                 "default_partition_expiration_ms": 86_400_000})
    _own(client, CREATED + timedelta(days=400), 7 * 86_400_000)
    _destination(client).prepare()
    assert client.updates == []


@pytest.mark.parametrize("race", [
    google_exceptions.PreconditionFailed("etag"),  # BigQuery: the etag is stale
    google_exceptions.BadRequest("Conflict on update!"),  # the local BigQuery-API server's word for the same race
], ids=["412", "conflict-on-update"])
def test_a_concurrent_change_while_clearing_reads_the_table_again(race):
    client = FakeClient(dataset={"default_table_expiration_ms": 3_600_000})
    _own(client, CREATED + timedelta(hours=1), None)
    client.update_faults.append(race)
    _destination(client).prepare()
    assert client.updates == [("customers", ["expires"])] and client.tables[str(DEST)].expires is None


def test_another_bad_request_while_clearing_is_not_taken_for_a_race():
    client = FakeClient(dataset={"default_table_expiration_ms": 3_600_000})
    _own(client, CREATED + timedelta(hours=1), None)
    client.update_faults.append(google_exceptions.BadRequest("Invalid value for expirationTime"))
    with pytest.raises(RevCentBigQueryError, match="Invalid value for expirationTime"):
        _destination(client).prepare()


def test_a_clearing_that_fails_fails_the_run_saying_what_to_do():
    client = FakeClient(dataset={"default_table_expiration_ms": 3_600_000})
    _own(client, CREATED + timedelta(hours=1), None)
    client.update_faults.append(google_exceptions.Forbidden("no tables.update"))
    with pytest.raises(RevCentBigQueryError, match=r"p\.d\.customers.*expiration_timestamp = NULL"):
        _destination(client).prepare()


def test_an_expiration_on_a_table_the_pipeline_did_not_create_is_only_warned_about(caplog):
    client = FakeClient(_counting([0]), dataset={"default_table_expiration_ms": 3_600_000})
    client.add(str(DEST), TEAM, expires=CREATED + timedelta(hours=1))
    _destination(client).prepare()
    assert [u for u in client.updates if u[0] == "customers"] == [("customers", ["schema"])]
    assert client.tables[str(DEST)].expires == CREATED + timedelta(hours=1)
    assert "does not change expirations of a table it did not create" in caplog.text
