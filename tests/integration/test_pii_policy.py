"""A table's PII policy is recorded with the table; a run that would write a field in a weaker form than
the table holds it (or change the policy without saying so) is refused before anything changes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.rows.pii import PiiSettings
from revcent_sandbox import CustomerStore

from .conftest import run_operator, unix
from .truth import table_rows

START, END = unix(2026, 7, 1), unix(2026, 8, 1)
RANGE = {"date_start": "2026-07-01", "date_end": "2026-08-01"}
#: The settings of the issue's example: a table created with them must keep them.
PROTECTED = PiiSettings(exclude_fields=["address_line_1", "address_line_2", "customer_card.first_6"],
                        hash_fields=["email", "phone"], hash_key_conn_id="revcent_pii")


@pytest.fixture
def store() -> CustomerStore:
    return CustomerStore(seed=23, count=60, start=START, end=END)


@pytest.fixture
def pii_key(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set the HMAC key held by the ``revcent_pii`` connection."""

    def use(key: str) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_REVCENT_PII", json.dumps({"conn_type": "generic", "password": key}))

    use("pepper-1234")
    return use


def _state(client: Any, table: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """Everything a run could change: the rows, the schema and the description."""
    got = client.get_table(f"demo.{table}")
    rows = sorted(table_rows(client, table), key=lambda r: r["id"])
    return rows, [f.to_api_repr() for f in got.schema], got.description or ""


def test_a_run_without_the_tables_pii_settings_is_refused_before_any_change(
        store, sandbox, connections, bq_client, table_name, pii_key):
    server = sandbox(store)
    connections(server)
    history = table_name + "_history"
    run_operator(run_id="protected", destination_table=table_name, history_table=history, pii=PROTECTED, **RANGE)
    before = _state(bq_client, table_name), _state(bq_client, history)
    requests = server.stats.list_requests
    store.mutate(0.5, seed=3)  # a run that got through would update rows
    # The sample daily DAG as it was: no PII settings, same table and range.
    with pytest.raises(RevCentConfigError, match="PII policy") as refused:
        run_operator(run_id="plain", destination_table=table_name, history_table=history, **RANGE)
    message = str(refused.value)
    assert f"demo.{table_name}" in message
    for field in ("email", "phone", "address_line_1", "address_line_2", "customer_card.first_6"):
        assert field in message
    assert "pii_policy_change='allow'" in message and "revcent-pii-policy" in message
    assert (_state(bq_client, table_name), _state(bq_client, history)) == before
    assert server.stats.list_requests == requests  # refused before it read a page (it read the document)
    # Without the history table too: the destination's own policy refuses it.
    with pytest.raises(RevCentConfigError, match="hashed in the table, plaintext in this run"):
        run_operator(run_id="plain_2", destination_table=table_name, **RANGE)
    assert _state(bq_client, table_name) == before[0]


def test_another_hash_key_is_refused_and_the_same_settings_write(store, sandbox, connections, bq_client, table_name,
                                                                  pii_key):
    connections(sandbox(store))
    run_operator(run_id="first", destination_table=table_name, pii=PROTECTED, **RANGE)
    before = _state(bq_client, table_name)
    assert "pepper" not in before[2]  # the description holds a fingerprint of the key, never the key
    changed = store.mutate(0.5, seed=4)
    pii_key("another-key-5678")
    with pytest.raises(RevCentConfigError, match="another key"):
        run_operator(run_id="other_key", destination_table=table_name, pii=PROTECTED, **RANGE)
    assert _state(bq_client, table_name) == before
    pii_key("pepper-1234")
    summary = run_operator(run_id="same", destination_table=table_name, pii=PROTECTED, **RANGE)
    assert summary["rows_updated"] == len(set(changed)) > 0


def test_a_policy_changes_only_on_purpose(store, sandbox, connections, bq_client, table_name, pii_key, caplog):
    from airflow_revcent.rows.pii import PiiPolicy, description_with_policy, policy_in_description

    connections(sandbox(store))
    run_operator(run_id="plain", destination_table=table_name, **RANGE)
    assert policy_in_description(bq_client.get_table(f"demo.{table_name}").description) == PiiPolicy()
    # Hashing a column that holds plaintext would leave it a mix of both: refused unless asked for.
    with pytest.raises(RevCentConfigError, match="plaintext in the table, hashed in this run"):
        run_operator(run_id="stronger", destination_table=table_name, pii=PROTECTED, **RANGE)
    run_operator(run_id="allowed", destination_table=table_name, pii=PROTECTED, pii_policy_change="allow", **RANGE)
    assert "Changed the PII policy of" in caplog.text
    table = bq_client.get_table(f"demo.{table_name}")
    recorded = policy_in_description(table.description)
    assert recorded is not None and recorded.hash_fields == {"email", "phone"}
    # The documented other way: edit the policy line of the table's description.
    table.description = description_with_policy(table.description, PiiPolicy())
    bq_client.update_table(table, ["description"])
    summary = run_operator(run_id="plain_again", destination_table=table_name, **RANGE)
    assert summary["records_loaded"] == len(store.truth(START, END))


def test_a_table_from_before_policies_were_recorded_keeps_its_hashed_columns(
        store, sandbox, connections, bq_client, table_name, pii_key):
    from google.cloud import bigquery

    from airflow_revcent.bigquery.fields import to_schema_fields
    from airflow_revcent.rows.columns import customer_columns, table_columns
    from airflow_revcent.rows.pii import apply_pii

    # What an earlier version created for hash_fields=["email"]: the column says it holds HMACs, and the
    # description has no policy line.
    hashed = apply_pii(customer_columns(), PiiSettings(hash_fields=["email"], hash_key_conn_id="revcent_pii"))
    bq_client.create_dataset("demo.revcent_it", exists_ok=True)
    bq_client.create_table(bigquery.Table(f"demo.{table_name}", schema=to_schema_fields(table_columns(hashed))))
    server = sandbox(store)
    connections(server)
    with pytest.raises(RevCentConfigError, match=r"email \(hashed in the table, plaintext in this run\)"):
        run_operator(destination_table=table_name, **RANGE)
    run_operator(destination_table=table_name, pii=PiiSettings(hash_fields=["email"], hash_key_conn_id="revcent_pii"),
                 **RANGE)
    recorded = bq_client.get_table(f"demo.{table_name}").description
    assert "revcent-pii-policy" in recorded and '"email"' in recorded
