"""Lookback, full refresh, content hashes, PII, reconciliation, unknown fields."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_revcent.exceptions import RevCentCountMismatchError, RevCentDataError
from airflow_revcent.rows.pii import PiiSettings
from revcent_sandbox import CustomerStore

from .conftest import API_KEY, run_operator, unix
from .truth import assert_table_matches, table_rows

START, END = unix(2026, 5, 1), unix(2026, 8, 1)


@pytest.fixture
def store() -> CustomerStore:
    return CustomerStore(seed=81, count=300, start=START, end=END)


def by_id(client, table: str) -> dict[str, dict]:
    return {r["id"]: r for r in table_rows(client, table)}


def test_lookback_updates_changed_customers_of_earlier_days_without_reading_anyone_twice(
        store, sandbox, connections, bq_client, table_name):
    server = sandbox(store)
    connections(server)
    run_operator(run_id="first", destination_table=table_name, date_start="2026-06-01", date_end="2026-07-01")
    before = by_id(bq_client, table_name)
    changed = set(store.mutate(0.3, seed=5))
    server.reset_stats()
    summary = run_operator(run_id="daily", destination_table=table_name, date_start="2026-07-01",
                           date_end="2026-07-02", lookback="P30D")
    assert summary["read_start"] == "2026-06-01T00:00:00Z" and summary["windows"] == 1
    # Every customer of the 31 days was read once: one window, each page once (no re-reads).
    assert summary["records_loaded"] == len(store.truth(unix(2026, 6, 1), unix(2026, 7, 2)))
    after = by_id(bq_client, table_name)
    in_lookback = {c["id"] for c in store.truth(unix(2026, 6, 1), unix(2026, 7, 1))}
    assert summary["rows_updated"] == len(changed & in_lookback)
    for customer_id, row in before.items():
        if customer_id in changed:
            assert row["_content_hash"] != after[customer_id]["_content_hash"]
            assert after[customer_id]["_last_changed_at"] > row["_last_changed_at"]
            assert after[customer_id]["_first_seen_at"] == row["_first_seen_at"]
        else:
            # The hash kept unchanged rows as they were; only the time of their latest read moved.
            unchanged = {k: v for k, v in after[customer_id].items() if k != "_extracted_at"}
            assert unchanged == {k: v for k, v in row.items() if k != "_extracted_at"}
            assert after[customer_id]["_extracted_at"] > row["_extracted_at"]
    assert_table_matches(bq_client, table_name, store.truth(unix(2026, 6, 1), unix(2026, 7, 2)))


def test_full_refresh_dag_leaves_every_row_current_in_resumable_chunks(store, sandbox, bigquery_server, bq_client,
                                                                     tmp_path):
    server = sandbox(store)
    table = "revcent_refresh.customers"
    env = dict(os.environ)
    env["AIRFLOW_CONN_REVCENT_DEFAULT"] = json.dumps({"conn_type": "revcent", "host": server.url, "password": API_KEY,
                                                      "extra": {"max_concurrency": 8, "max_requests_per_second": 0}})
    env["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"] = bigquery_server.connection_uri_json()
    env["AIRFLOW_VAR_REVCENT_CUSTOMERS_TABLE"] = table
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, check=True)
    conf = json.dumps({"since": "2026-05-01", "chunk_days": 30})
    changed: set[str] = set()
    for refresh in range(2):
        result = subprocess.run([airflow, "dags", "test", "revcent_customers_full_refresh", "-c", conf], env=env,
                                capture_output=True, text=True, check=False, timeout=600)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-3000:]
        assert API_KEY not in output
        assert output.count("Loaded ") >= 7, "one load per 30-day chunk from May to today"
        rows = assert_table_matches(bq_client, table, store.truth(START, END))  # every row current
        if refresh == 0:
            first = {r["id"]: r for r in rows}
            changed = set(store.mutate(0.25, seed=9))  # customers change between refreshes
    for row in rows:
        assert (row["_content_hash"] != first[row["id"]]["_content_hash"]) == (row["id"] in changed)


def test_pii_is_excluded_and_hashed_everywhere_and_the_schema_says_so(store, sandbox, connections, bq_client,
                                                                      table_name, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_REVCENT_PII", json.dumps({"conn_type": "generic", "password": "pepper-1234"}))
    connections(sandbox(store))
    run_operator(destination_table=table_name, date_start="2026-05-01", date_end="2026-08-01",
                 pii=PiiSettings(exclude_fields=["address_line_1", "customer_card.first_6"],
                                 hash_fields=["email", "phone", "notes.username"], hash_key_conn_id="revcent_pii"))
    schema = {f.name: f for f in bq_client.get_table(f"demo.{table_name}").schema}
    assert "address_line_1" not in schema
    assert "first_6" not in {f.name for f in schema["customer_card"].fields}
    assert "HMAC-SHA256" in schema["email"].description
    truth = {c["id"]: c for c in store.truth(START, END)}
    rows = table_rows(bq_client, table_name)

    def keyed(value: str) -> str:
        return hmac.new(b"pepper-1234", value.encode(), hashlib.sha256).hexdigest()

    checked_notes = 0
    for row in rows:
        customer = truth[row["id"]]
        if "email" in customer:
            assert row["email"] == keyed(customer["email"])
        for note, original in zip(row["notes"], customer.get("notes") or [], strict=True):
            if "username" in original:
                assert note["username"] == keyed(original["username"])
                checked_notes += 1
        assert all("first_6" not in card for card in row["customer_card"])
        assert row["_unknown_fields"] is None  # excluded fields are dropped, not kept
        assert "pepper-1234" not in json.dumps(row, default=str)
    assert checked_notes > 0


def test_unknown_fields_are_reported_with_their_paths(store, sandbox, connections, bq_client, table_name, capsys):
    connections(sandbox(store))
    store.add_unknown_fields(0.5, seed=3)
    summary = run_operator(destination_table=table_name, date_start="2026-05-01", date_end="2026-08-01")
    assert summary["unknown_fields"]
    assert any("[]" in path for path in summary["unknown_fields"])  # nested in arrays too
    assert "Fields the spec does not describe were kept in _unknown_fields" in capsys.readouterr().out
    rows = assert_table_matches(bq_client, table_name, store.truth(START, END))
    assert sum(1 for r in rows if r["_unknown_fields"]) > 0


def test_count_mismatch_is_logged_or_fails_before_loading(store, static_api, bq_client, table_name, capsys):
    # The API lists three customers but counts two (say one was deleted between count and listing).
    static_api.customers = store.truth(START, END)[:3]
    static_api.total_count = 2
    args = {"destination_table": table_name, "date_start": "2026-05-01", "date_end": "2026-07-01"}
    summary = run_operator(**args)
    assert summary["count_mismatches"] == [
        "window [2026-05-01T00:00:00Z, 2026-07-01T00:00:00Z): the API's total_count is 2 but 3 distinct customers "
        "were read"]
    assert "Count mismatch: window [2026-05-01" in capsys.readouterr().out
    bq_client.delete_table(f"demo.{table_name}")
    with pytest.raises(RevCentCountMismatchError, match=r"1 window\(s\) read a different number .* Nothing was loaded"):
        run_operator(on_count_mismatch="fail", **args)
    assert table_rows(bq_client, table_name) == []


def test_history_records_exactly_the_changes_in_the_same_step(store, sandbox, connections, bq_client, table_name):
    connections(sandbox(store))
    history = table_name + "_history"
    args = {"destination_table": table_name, "history_table": history, "date_start": "2026-05-01",
            "date_end": "2026-08-01"}
    first = run_operator(run_id="v1", **args)
    truth = store.truth(START, END)
    versions = table_rows(bq_client, history)
    assert len(versions) == len(truth) == first["rows_inserted"]
    assert all(v["_is_current"] and v["_valid_to"] is None for v in versions)
    again = run_operator(run_id="v1-rerun", **args)  # nothing changed: no version
    assert (again["rows_inserted"], again["rows_updated"]) == (0, 0)
    assert len(table_rows(bq_client, history)) == len(truth)
    changed = set(store.mutate(0.2, seed=13))
    second = run_operator(run_id="v2", **args)
    assert second["rows_updated"] == len(changed)
    assert_table_matches(bq_client, table_name, store.truth(START, END))
    versions = table_rows(bq_client, history)
    assert len(versions) == len(truth) + len(changed)
    for customer_id in changed:
        old, new = sorted((v for v in versions if v["id"] == customer_id), key=lambda v: v["_valid_from"])
        assert not old["_is_current"] and old["_valid_to"] == new["_valid_from"]
        assert new["_is_current"] and new["_valid_to"] is None and new["_run_id"] == "v2"
        assert old["_content_hash"] != new["_content_hash"]
    current = {v["id"]: v for v in versions if v["_is_current"]}
    table = {r["id"]: r for r in table_rows(bq_client, table_name)}
    assert set(current) == set(table)
    assert all(current[i]["_content_hash"] == table[i]["_content_hash"] for i in table)


def test_unknown_fields_are_promoted_to_typed_columns_and_stay_there(store, sandbox, connections, bq_client,
                                                                     table_name):
    connections(sandbox(store))
    store.add_unknown_fields(0.5, seed=21)
    args = {"destination_table": table_name, "date_start": "2026-05-01", "date_end": "2026-08-01",
            "promote_unknown_fields": True}
    summary = run_operator(run_id="drift", **args)
    assert summary["promoted_fields"], summary
    assert "loyalty_tier" in summary["promoted_fields"]
    schema = {f.name: f for f in bq_client.get_table(f"demo.{table_name}").schema}
    for path, kind in summary["promoted_fields"].items():
        top, *rest = path.replace("[]", "").split(".")
        field = schema[top]
        for name in rest:
            field = {f.name: f for f in field.fields}[name]
        assert field.field_type == kind and field.mode == "NULLABLE", path
    truth = {c["id"]: c for c in store.truth(START, END)}
    rows = assert_table_matches(bq_client, table_name, list(truth.values()))
    promoted_top = [p for p in summary["promoted_fields"] if "." not in p and "[]" not in p]
    assert promoted_top
    for row in rows:
        for name in promoted_top:
            assert row[name] == truth[row["id"]].get(name)
            assert name not in (row["_unknown_fields"] or {})
    for path in summary["unknown_fields"]:  # what could not be promoted stays in the JSON column
        assert path not in summary["promoted_fields"]
    again = run_operator(run_id="drift-again", **args)  # values now go straight to the columns
    assert again["promoted_fields"] == {}
    assert set(again["unknown_fields"]) == set(summary["unknown_fields"])
    assert (again["rows_inserted"], again["rows_updated"]) == (0, 0)


def test_a_value_conflicting_with_a_promoted_column_fails_with_its_path(store, static_api, bq_client, table_name):
    customer = dict(store.truth(START, END)[0], loyalty_tier="gold")
    static_api.customers = [customer]
    args = {"destination_table": table_name, "date_start": "2026-05-01", "date_end": "2026-07-01"}
    run_operator(promote_unknown_fields=True, **args)
    static_api.customers = [dict(customer, loyalty_tier=7)]
    with pytest.raises(RevCentDataError, match=rf"Customer '{customer['id']}': field loyalty_tier is 7 \(int\)"):
        run_operator(**args)
    run_operator(on_invalid_record="keep", **args)
    [row] = table_rows(bq_client, table_name)
    assert row["loyalty_tier"] is None and dict(row["_unknown_fields"]) == {"loyalty_tier": 7}
