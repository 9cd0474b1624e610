"""End to end: the operator against the sandbox and the local BigQuery-API server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_revcent.exceptions import RevCentBigQueryError, RevCentConfigError, RevCentRetryBudgetExceeded
from revcent_sandbox import CustomerStore, FaultPlan
from revcent_sandbox.data import CustomerFilter

from .conftest import run_operator, unix
from .truth import assert_table_matches, table_rows

START, END = unix(2026, 7, 1), unix(2026, 10, 1)


@pytest.fixture
def store() -> CustomerStore:
    return CustomerStore(seed=11, count=400, start=START, end=END)


def test_multi_window_range_lands_exactly_the_sandbox_customers(store, sandbox, connections, bq_client, table_name):
    server = sandbox(store)
    connections(server)
    summary = run_operator(destination_table=table_name, date_start="2026-07-01", date_end="2026-10-01",
                           window_size=timedelta(days=20))
    truth = store.truth(START, END)
    rows = assert_table_matches(bq_client, table_name, truth)
    assert summary["windows"] == 5
    assert summary["records_loaded"] == len(truth) == summary["rows_inserted"]
    assert summary["interval_start"] == "2026-07-01T00:00:00Z" and summary["interval_end"] == "2026-10-01T00:00:00Z"
    assert summary["destination"] == f"demo.{table_name}"
    # One load job per window (each staged as it finishes), then the one applying transaction.
    jobs = summary["bigquery_job_ids"]
    assert len(jobs) == summary["windows"] + 1 and summary["requests"] >= 5
    assert all(j.startswith("revcent_load_") for j in jobs[:-1]) and jobs[-1].startswith("revcent_apply_")
    # Metadata: partition column from created_date_unix, interval bounds, run id.
    row = rows[0]
    assert row["_created_at"] == datetime.fromtimestamp(row["created_date_unix"], UTC)
    assert row["_interval_start"] == datetime(2026, 7, 1, tzinfo=UTC)
    assert row["_run_id"] == "manual__test" and len(row["_content_hash"]) == 64
    table = bq_client.get_table(f"demo.{table_name}")
    assert table.time_partitioning.field == "_created_at" and table.clustering_fields
    assert {f.name: f.description for f in table.schema}["email"] == "The customer email."


def test_rerun_changes_nothing(store, sandbox, connections, bq_client, table_name):
    connections(sandbox(store))
    args = {"destination_table": table_name, "date_start": "2026-08-01", "date_end": "2026-09-01"}
    run_operator(run_id="run_1", **args)
    before = sorted(table_rows(bq_client, table_name), key=lambda r: r["id"])
    summary = run_operator(run_id="run_2", **args)
    after = sorted(table_rows(bq_client, table_name), key=lambda r: r["id"])
    assert summary["rows_inserted"] == 0 and summary["rows_updated"] == 0
    # Metadata included: unchanged rows keep their run id and times, except the time of their latest read.
    assert [_but_read_time(r) for r in after] == [_but_read_time(r) for r in before]
    assert all(a["_extracted_at"] > b["_extracted_at"] for a, b in zip(after, before, strict=True))


def _but_read_time(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "_extracted_at"}


def test_overlapping_ranges_never_duplicate(store, sandbox, connections, bq_client, table_name):
    connections(sandbox(store))
    run_operator(destination_table=table_name, date_start="2026-07-01", date_end="2026-08-20")
    run_operator(destination_table=table_name, date_start="2026-08-01", date_end="2026-10-01")
    run_operator(destination_table=table_name, date_start="2026-07-15", date_end="2026-09-15")
    assert_table_matches(bq_client, table_name, store.truth(START, END))


def test_customer_at_the_boundary_second_lands_once_in_its_own_day(store, sandbox, connections, bq_client, table_name):
    connections(sandbox(store))
    midnights = [unix(2026, 7, d) for d in range(2, 5)]
    boundary = [c for c in store.truth(START, END) if c["created_date_unix"] in midnights]
    assert boundary, "the sandbox always has customers at exact midnights"
    for day in range(1, 5):  # daily runs through the data-interval path, as the scheduler gives them
        interval = {"data_interval_start": datetime(2026, 7, day, tzinfo=UTC),
                    "data_interval_end": datetime(2026, 7, day + 1, tzinfo=UTC)}
        run_operator(run_id=f"scheduled__2026-07-0{day}", destination_table=table_name, context=interval)
    rows = assert_table_matches(bq_client, table_name, store.truth(unix(2026, 7, 1), unix(2026, 7, 5)))
    by_id = {r["id"]: r for r in rows}
    for customer in boundary:
        created = datetime.fromtimestamp(customer["created_date_unix"], UTC)
        assert by_id[customer["id"]]["_interval_start"] == created  # the run of the day it starts


def test_zero_width_interval_fails_and_says_why(store, sandbox, connections, bq_client, table_name):
    connections(sandbox(store))
    day = datetime(2026, 7, 1, tzinfo=UTC)
    with pytest.raises(RevCentConfigError, match="zero-width"):
        run_operator(destination_table=table_name, context={"data_interval_start": day, "data_interval_end": day})
    assert table_rows(bq_client, table_name) == []


def test_interval_without_customers_loads_nothing_and_says_so(sandbox, connections, bq_client, table_name, capsys):
    empty = CustomerStore(seed=1, count=10, start=unix(2025, 1, 1), end=unix(2025, 1, 2))
    connections(sandbox(empty))
    summary = run_operator(destination_table=table_name, date_start="2026-01-01", date_end="2026-02-01")
    assert summary["records_loaded"] == 0 and summary["bigquery_job_ids"] == []
    assert "No customers were created in [2026-01-01T00:00:00Z, 2026-02-01T00:00:00Z)" in capsys.readouterr().out
    assert table_rows(bq_client, table_name) == []


def test_failure_in_the_middle_leaves_the_destination_unchanged(store, sandbox, connections, bq_client, table_name):
    connections(sandbox(store))
    run_operator(destination_table=table_name, date_start="2026-07-01", date_end="2026-08-01")
    before = sorted(table_rows(bq_client, table_name), key=lambda r: r["id"])
    store.mutate(0.5, seed=2)  # the failed run would have changed rows
    # Every attempt at some pages fails: the run dies after extracting part of the range.
    broken = sandbox(store, faults=FaultPlan(seed=5, rates={"503": 0.3}, max_faults_per_request=50))
    connections(broken, retry_max_attempts=2)
    with pytest.raises(RevCentRetryBudgetExceeded, match=r"window \[.*page \d+.*after 2 attempts.*HTTP 503"):
        run_operator(destination_table=table_name, date_start="2026-07-01", date_end="2026-10-01",
                     window_size=timedelta(days=10))
    after = sorted(table_rows(bq_client, table_name), key=lambda r: r["id"])
    assert after == before
    # The run's staging is kept for its retry (run-scoped: the retry reads only the windows not marked); it
    # expires by itself when no retry comes.
    short = table_name.split(".")[1]
    staging = [t for t in bq_client.list_tables("demo.revcent_it")
               if t.table_id.startswith(f"_revcent_staging_{short}_")]
    assert staging and all(bq_client.get_table(t.reference).expires is not None for t in staging)


def test_changed_customers_are_updated_when_their_interval_is_rerun(store, sandbox, connections, bq_client, table_name):
    connections(sandbox(store))
    args = {"destination_table": table_name, "date_start": "2026-07-01", "date_end": "2026-10-01"}
    run_operator(run_id="first", **args)
    first = {r["id"]: r for r in table_rows(bq_client, table_name)}
    changed = set(store.mutate(0.2, seed=9))
    summary = run_operator(run_id="second", **args)
    rows = assert_table_matches(bq_client, table_name, store.truth(START, END))
    assert summary["rows_updated"] == len(changed) and summary["rows_inserted"] == 0
    for row in rows:
        old = first[row["id"]]
        assert row["_first_seen_at"] == old["_first_seen_at"]
        if row["id"] in changed:
            assert row["_run_id"] == "second" and row["_last_changed_at"] > old["_last_changed_at"]
        else:
            assert _but_read_time(row) == _but_read_time(old) and row["_extracted_at"] > old["_extracted_at"]


def test_filters_reach_the_api(store, sandbox, connections, bq_client, table_name):
    connections(sandbox(store))
    campaign = store.campaigns[0][0]
    run_operator(destination_table=table_name, date_start="2026-07-01", date_end="2026-10-01",
                 campaign_filter=[campaign], status_filter=["enabled", "blocked"])
    truth = store.truth(START, END, CustomerFilter(campaign_ids=frozenset({campaign}),
                                                      statuses=frozenset({"enabled", "blocked"})))
    assert truth and len(truth) < len(store.truth(START, END))
    assert_table_matches(bq_client, table_name, truth)


def test_existing_table_with_conflicting_schema_names_the_columns(store, sandbox, connections, bq_client, table_name):
    from google.cloud import bigquery

    bq_client.create_dataset("demo.revcent_it", exists_ok=True)
    bq_client.create_table(bigquery.Table(f"demo.{table_name}", schema=[
        bigquery.SchemaField("id", "STRING"), bigquery.SchemaField("email", "INTEGER"),
        bigquery.SchemaField("lifetime_value", "RECORD", fields=[
            bigquery.SchemaField("all", "RECORD", fields=[bigquery.SchemaField("amount_gross", "FLOAT")])]),
    ]))
    connections(sandbox(store))
    with pytest.raises(RevCentBigQueryError, match=r"email is INTEGER \(expected STRING\); "
                                                   r"lifetime_value.all.amount_gross is FLOAT \(expected NUMERIC\)"):
        run_operator(destination_table=table_name, date_start="2026-07-01", date_end="2026-07-02")


def test_dataset_in_another_location_is_refused_before_any_request(store, sandbox, connections, bq_client):
    from google.cloud import bigquery

    dataset = bigquery.Dataset("demo.revcent_eu")
    dataset.location = "EU"
    bq_client.create_dataset(dataset, exists_ok=True)
    server = sandbox(store)
    connections(server)
    with pytest.raises(RevCentBigQueryError, match="is in location 'EU', but location='US'"):
        run_operator(destination_table="revcent_eu.customers", location="US", date_start="2026-07-01",
                     date_end="2026-07-02")
    assert server.stats.list_requests == 0  # RevCent's document was read, no page
