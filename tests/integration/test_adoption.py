"""Expirations a dataset's defaults put on the pipeline's tables are cleared on every run (the last test).

A table a team filled before the pipeline (README "On BigQuery's rules", "Rows from elsewhere" and "Tables
the pipeline adopts"): adopted exactly, or refused before any change.

The team table holds a few of the API's columns and 150 sandbox customers with stale values, without any
of the pipeline's ``_`` columns: unpartitioned, or DAY-partitioned on the team's own ``loaded_at``. After one
run every customer is in it exactly once with the API's values. The same table with
``require_partition_filter`` is refused before anything changes (the local server does not enforce the
filter; the refusal reads the table's metadata, as it must on BigQuery).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.api_core.exceptions import NotFound
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField

from airflow_revcent.exceptions import RevCentBigQueryError, RevCentBigQueryPermanentError
from revcent_sandbox import CustomerStore

from . import bqproxy
from .conftest import API_KEY, run_operator, unix
from .statements_check import assert_statements_valid
from .truth import assert_table_matches, table_rows

START, END = unix(2026, 5, 1), unix(2026, 5, 15)
RANGE = {"date_start": "2026-05-01", "date_end": "2026-05-15"}
TEAM_SCHEMA = [SchemaField("id", "STRING"), SchemaField("email", "STRING"), SchemaField("first_name", "STRING"),
               SchemaField("last_name", "STRING"), SchemaField("created_date_unix", "INTEGER"),
               SchemaField("status", "STRING"), SchemaField("loaded_at", "TIMESTAMP")]


@pytest.fixture
def store() -> CustomerStore:
    return CustomerStore(seed=41, count=150, start=START, end=END)


@pytest.fixture
def through_proxy(monkeypatch: pytest.MonkeyPatch, sandbox: Any, bq_proxy: bqproxy.BigQueryProxy,
                  bigquery_server: Any) -> Callable[[CustomerStore], Any]:
    def point(store: CustomerStore) -> Any:
        server = sandbox(store)
        monkeypatch.setenv("AIRFLOW_CONN_REVCENT_DEFAULT", json.dumps(
            {"conn_type": "revcent", "host": server.url, "password": API_KEY,
             "extra": {"max_requests_per_second": 0, "max_concurrency": 8}}))
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(
            {"conn_type": "google_cloud_platform",
             "extra": {"project": bigquery_server.project, "api_endpoint": bq_proxy.url, "is_anonymous": True}}))
        return bq_proxy.client(bigquery_server.project)

    return point


def _team_table(client: Any, table: str, store: CustomerStore, **options: Any) -> list[dict[str, Any]]:
    """The team's table with every customer's stale row (and a few with no created_date_unix)."""
    client.create_dataset(table.split(".", maxsplit=1)[0], exists_ok=True)
    new = bigquery.Table(f"{client.project}.{table}", schema=TEAM_SCHEMA)
    for name, value in options.items():
        setattr(new, name, value)
    client.create_table(new)
    rows = [{"id": c["id"], "email": f"stale-{i}@example.com", "first_name": "Old", "last_name": c.get("last_name"),
             "created_date_unix": c["created_date_unix"], "status": "stale",
             "loaded_at": datetime(2025, 1, 1 + i % 28, tzinfo=UTC).isoformat()}
            for i, c in enumerate(store.truth(START, END))]
    client.load_table_from_json(rows, f"{client.project}.{table}",
                                job_config=bigquery.LoadJobConfig(schema=TEAM_SCHEMA)).result()
    return rows


@pytest.mark.parametrize("shape", ["unpartitioned", "day_on_loaded_at"])
def test_a_team_table_is_adopted_and_holds_every_customer_once(store, through_proxy, bq_proxy, table_name, shape):
    client = through_proxy(store)
    options = ({"time_partitioning": bigquery.TimePartitioning(field="loaded_at")} if shape != "unpartitioned"
               else {})
    team = _team_table(client, table_name, store, **options)
    assert len(team) >= 150
    run_operator(destination_table=table_name, **RANGE)
    rows = assert_table_matches(client, table_name, store.truth(START, END))
    assert all(r["_created_at"] is not None and r["_extracted_at"] is not None for r in rows)
    # The team's own column is kept (not written by the pipeline).
    assert {r["id"]: r["loaded_at"].year for r in rows} == {t["id"]: 2025 for t in team}
    fills = [job for job, sql in bq_proxy.queries() if "TIMESTAMP_SECONDS" in sql and sql.startswith("UPDATE")]
    assert fills and all(job.startswith("revcent_adopt_it__customers_to_bigquery_") for job in fills)
    assert assert_statements_valid(bq_proxy, client) >= 3
    # Another run changes nothing and fills nothing.
    filled = len(fills)
    summary = run_operator(run_id="manual__again", destination_table=table_name, **RANGE)
    assert summary["rows_inserted"] == 0 and summary["rows_updated"] == 0
    assert len(table_rows(client, table_name)) == len(team)
    assert len([sql for _, sql in bq_proxy.queries() if "TIMESTAMP_SECONDS" in sql]) == filled


def test_a_team_row_without_created_date_unix_is_refused_before_any_change(store, through_proxy, bq_proxy,
                                                                            table_name):
    client = through_proxy(store)
    _team_table(client, table_name, store)
    client.query(f"UPDATE `{client.project}.{table_name}` SET created_date_unix = NULL "
                 f"WHERE id = '{store.truth(START, END)[0]['id']}'").result()
    before = client.get_table(table_name)
    with pytest.raises(RevCentBigQueryPermanentError, match=rf"{table_name}.*1 row.*created_date_unix"):
        run_operator(destination_table=table_name, **RANGE)
    after = client.get_table(table_name)
    assert [f.name for f in after.schema] == [f.name for f in before.schema]
    assert not bq_proxy.table_updates()


def test_a_team_table_that_requires_a_filter_on_another_column_is_refused_before_any_change(
        store, through_proxy, bq_proxy, table_name):
    client = through_proxy(store)
    _team_table(client, table_name, store, time_partitioning=bigquery.TimePartitioning(field="loaded_at"),
                require_partition_filter=True)
    before = client.get_table(table_name)
    with pytest.raises(RevCentBigQueryPermanentError) as raised:
        run_operator(destination_table=table_name, **RANGE)
    message = str(raised.value)
    assert table_name in message and "loaded_at" in message and "require_partition_filter" in message
    after = client.get_table(table_name)
    assert [f.name for f in after.schema] == [f.name for f in before.schema]
    assert not bq_proxy.table_updates()
    assert not [sql for _, sql in bq_proxy.queries() if not sql.lstrip().upper().startswith("SELECT")]
    with pytest.raises(NotFound):
        client.get_table(f"{table_name.split('.')[0]}._revcent_lock_{table_name.split('.')[1]}")


def test_expirations_a_failed_clearing_left_are_cleared_by_the_next_run(store, through_proxy, bq_proxy, table_name):
    client = through_proxy(store)
    dataset_name = f"expiring2_{table_name.split('.')[1][:40]}"
    dataset = bigquery.Dataset(f"{client.project}.{dataset_name}")
    dataset.default_table_expiration_ms = 3_600_000
    dataset.default_partition_expiration_ms = 86_400_000
    client.create_dataset(dataset)
    table = f"{dataset_name}.customers"
    # The run that creates the table cannot clear what the dataset put on it (here: refused; or a lost race).
    bq_proxy.add_fault(bqproxy.Fault("PATCH|PUT", r"/tables/customers$", status=403, reason="accessDenied",
                                     message="Access Denied: bigquery.tables.update",
                                     when=lambda body: isinstance(body, dict) and "expirationTime" in body))
    with pytest.raises(RevCentBigQueryError, match=rf"{dataset_name}\.customers.*expiration_timestamp = NULL"):
        run_operator(destination_table=table, **RANGE)
    created = client.get_table(table)
    # What BigQuery leaves on it (the local server does not apply a dataset's defaults itself).
    created.expires = created.created + timedelta(milliseconds=3_600_000)
    partitioning = created.time_partitioning
    partitioning.expiration_ms = 86_400_000
    created.time_partitioning = partitioning
    client.update_table(created, ["expires", "time_partitioning"])
    assert client.get_table(table).expires is not None
    run_operator(run_id="manual__next", destination_table=table, **RANGE)
    after = client.get_table(table)
    assert after.expires is None and not after.time_partitioning.expiration_ms
    assert_table_matches(client, table, store.truth(START, END))
