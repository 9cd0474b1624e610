"""The applying transaction itself, run on the local BigQuery-API server with rows chosen by hand: what it
changes, what it counts (inside the transaction) and when it refuses to write. The same script is analyzed
with ZetaSQL in tests/zetasql/test_pipeline_statements.py."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from google.api_core import exceptions
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField

from airflow_revcent.bigquery.destination import LOCK_SCHEMA
from airflow_revcent.bigquery.statements import LOCK_ROW_MISSING, apply_script, lock_init_statement, partition_steps
from airflow_revcent.bigquery.tables import TableRef

SCHEMA = [SchemaField("id", "STRING", "REQUIRED"), SchemaField("email", "STRING"),
          SchemaField("_content_hash", "STRING"), SchemaField("_first_seen_at", "TIMESTAMP"),
          SchemaField("_last_changed_at", "TIMESTAMP"), SchemaField("_extracted_at", "TIMESTAMP"),
          SchemaField("_created_at", "TIMESTAMP", "REQUIRED")]
COLUMNS = [f.name for f in SCHEMA]
CREATED = "2026-05-02T10:00:00Z"
STEPS = partition_steps(datetime(2026, 5, 2, tzinfo=UTC), datetime(2026, 5, 2, tzinfo=UTC))


def _row(customer: str, email: str, read: str, *, changed: str | None = None) -> dict[str, Any]:
    return {"id": customer, "email": email, "_content_hash": f"hash-of-{email}", "_first_seen_at": changed or read,
            "_last_changed_at": changed or read, "_extracted_at": read, "_created_at": CREATED}


def _table(client: Any, ref: TableRef, schema: list[SchemaField], rows: list[dict[str, Any]]) -> None:
    table = bigquery.Table(str(ref), schema=schema)
    if schema is SCHEMA:
        table.time_partitioning = bigquery.TimePartitioning(field="_created_at")
    client.create_table(table)
    if rows:
        data = "".join(json.dumps(r) + "\n" for r in rows).encode()
        config = bigquery.LoadJobConfig(schema=schema, source_format="NEWLINE_DELIMITED_JSON")
        client.load_table_from_file(io.BytesIO(data), str(ref), job_config=config).result()


@pytest.fixture
def destination(bq_client: Any, table_name: str) -> TableRef:
    """A destination holding customer a (read at 09:00, content x) and its lock table with its row."""
    dataset, table = table_name.split(".")
    bq_client.create_dataset(dataset, exists_ok=True)
    ref = TableRef(bq_client.project, dataset, table)
    _table(bq_client, ref, SCHEMA, [_row("a", "x", "2026-06-01T09:00:00Z")])
    _table(bq_client, ref.lock(), LOCK_SCHEMA, [])
    bq_client.query(lock_init_statement(ref.lock())).result()
    return ref


def _apply(client: Any, destination: TableRef, key: str, rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Apply ``rows`` in one transaction; the script's result rows as (inserted, updated)."""
    staging = destination.staging(key)
    _table(client, staging, SCHEMA, rows)
    result = client.query(apply_script(destination, staging, COLUMNS, STEPS, run_id=key)).result()
    return [(r["inserted"], r["updated"]) for r in result]


def _rows(client: Any, ref: TableRef) -> dict[str, dict[str, Any]]:
    rows = client.query(f"SELECT * FROM {ref.sql()}").result()
    return {r["id"]: {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()} for r in rows}


def test_the_script_returns_exact_counts_taken_inside_the_transaction(bq_client, destination):
    counts = _apply(bq_client, destination, "one", [_row("a", "y", "2026-06-02T09:00:00Z"),
                                                    _row("b", "z", "2026-06-02T09:00:00Z")])
    assert counts == [(1, 1)]
    # Read again, unchanged: nothing is counted (only the read time moves).
    assert _apply(bq_client, destination, "two", [_row("a", "y", "2026-06-03T09:00:00Z"),
                                                   _row("b", "z", "2026-06-03T09:00:00Z")]) == [(0, 0)]


def test_a_later_read_of_unchanged_content_keeps_an_older_read_from_winning(bq_client, destination):
    # Run B read a at 11:00 and found it unchanged (x); run A read it earlier, at 10:00, when it was y,
    # and commits after B. The latest read (B's x) must stay.
    counted_b = _apply(bq_client, destination, "b", [_row("a", "x", "2026-06-01T11:00:00Z")])
    after_b = _rows(bq_client, destination)["a"]
    counted_a = _apply(bq_client, destination, "a", [_row("a", "y", "2026-06-01T10:00:00Z")])
    assert _rows(bq_client, destination)["a"] == after_b
    assert after_b["email"] == "x" and after_b["_extracted_at"].startswith("2026-06-01T11:00:00")
    assert after_b["_last_changed_at"].startswith("2026-06-01T09:00:00")  # the content did not change
    assert counted_b == counted_a == [(0, 0)]


def test_a_lock_table_without_its_row_makes_the_transaction_fail_and_change_nothing(bq_client, destination):
    bq_client.query(f"DELETE FROM {destination.lock().sql()} WHERE TRUE").result()
    before = _rows(bq_client, destination)
    with pytest.raises(exceptions.GoogleAPICallError, match="The lock table has no row"):
        _apply(bq_client, destination, "one", [_row("a", "y", "2026-06-02T09:00:00Z"),
                                               _row("b", "z", "2026-06-02T09:00:00Z")])
    assert _rows(bq_client, destination) == before
    assert LOCK_ROW_MISSING.startswith("The lock table has no row")
