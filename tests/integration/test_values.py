"""Values a real API sends (the sandbox's messy mode) land under README "How values land"; every
uploaded file is checked against BigQuery's loader rules (conftest.loader_rules)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from airflow_revcent.exceptions import RevCentDataError
from revcent_sandbox import CustomerStore

from .conftest import run_operator, unix
from .truth import assert_table_matches, table_rows

START, END = unix(2026, 5, 1), unix(2026, 5, 15)
RANGE = {"date_start": "2026-05-01", "date_end": "2026-05-15"}


def messy_store(mode: str = "landing") -> CustomerStore:
    return CustomerStore(seed=71, count=90, start=START, end=END, messy=mode)


def by_variant(store: CustomerStore, rows: list[dict]) -> dict[str, dict]:
    ids = {store.id_of(i): v for i, v in store.messy.items()}
    return {ids[r["id"]]: r for r in rows if r["id"] in ids}


def test_messy_values_land_through_the_sample_dag(sandbox, connections, bq_client, table_name, monkeypatch,
                                                   loader_rules):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    store = messy_store()
    connections(sandbox(store))
    monkeypatch.setenv("AIRFLOW_VAR_REVCENT_CUSTOMERS_TABLE", table_name)
    db.resetdb()
    dag = DagBag(dag_folder=str(Path(__file__).parents[2] / "dags")).dags["revcent_customers_to_bigquery"]
    dag.get_task("customers_to_bigquery").retries = 0  # a failure fails now, not after minutes of retries
    run = dag.test(logical_date=datetime(2026, 5, 15, tzinfo=UTC), run_conf=RANGE)
    assert run.state == "success"
    assert loader_rules, "the upload was checked"
    rows = assert_table_matches(bq_client, table_name, store.truth(START, END, exact=True))
    got = by_variant(store, rows)
    assert got["surrogate"]["first_name"] == "Ana \ufffd Lima"
    assert got["surrogate"]["last_name"] == "Zo\u00eb \U0001f680 ok \ufffd"
    assert got["surrogate"]["notes"][-1]["text"] == "cut \ufffd"
    lifetime = {v: got[v]["lifetime_value"] for v in ("dates", "dates1", "dates2", "dates3", "money")}
    assert lifetime["dates"]["last_sale_date"] == datetime(1, 1, 1, tzinfo=UTC)
    assert lifetime["dates"]["last_subscription_renewal_date"] == datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert lifetime["dates1"]["last_sale_date"] == datetime(1, 1, 1, 1, 30, tzinfo=UTC)
    assert lifetime["dates2"]["last_sale_date"] == datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert lifetime["dates3"]["last_sale_date"] is None
    money = lifetime["money"]
    assert money["sale"]["avg"] == Decimal("33.333333333") and money["sale"]["amount_gross"] == Decimal("0.3")
    assert money["sale"]["num"] == 2**63 - 1
    assert money["subscription_renewal"]["avg"] == Decimal("0.0000001")
    assert money["subscription_renewal"]["amount_net"] == Decimal(2500)
    assert money["chargeback"]["avg"] == Decimal("0.000000001")
    assert money["all"]["amount_total"] == Decimal("12345678901234567890.12")
    assert money["all"]["amount_gross"] == Decimal("99999999999999999999999999999.999999999")


def test_the_summary_counts_repairs_and_rounding_and_rows_carry_their_read_time(sandbox, connections, bq_client,
                                                                             table_name):
    store = messy_store()
    connections(sandbox(store), max_concurrency=2)
    before = datetime.now(UTC)
    summary = run_operator(destination_table=table_name, page_size=5, **RANGE)
    after = datetime.now(UTC)
    assert summary["replaced_surrogates"] == 3  # first_name, last_name, notes[].text of one customer
    assert summary["rounded_numbers"] == 3  # 33.333333333333336, 0.30000000000000004, 0.0000000005
    rows = table_rows(bq_client, table_name)
    read_times = {r["_extracted_at"] for r in rows}
    assert all(before <= t <= after for t in read_times)
    assert len(read_times) > 1  # each page's rows carry the time that page arrived, not the run start


def test_values_no_column_holds_are_data_errors_naming_customer_and_field(sandbox, connections, bq_client,
                                                                        table_name):
    store = messy_store("out-of-range")
    connections(sandbox(store))
    with pytest.raises(RevCentDataError, match=r"Customer '\w{20}': field lifetime_value\.\S+ is .* but the spec "
                                               r"says .*(INT64|29 integer digits|0001-01-01)"):
        run_operator(destination_table=table_name, **RANGE)
    assert table_rows(bq_client, table_name) == []
    summary = run_operator(destination_table=table_name, on_invalid_record="keep", **RANGE)
    got = by_variant(store, table_rows(bq_client, table_name))
    assert summary["records_loaded"] == len(store.truth(START, END))

    def kept(variant: str) -> dict:
        value = got[variant]["_unknown_fields"]
        return json.loads(value) if isinstance(value, str) else value

    assert kept("big_integer") == {"lifetime_value": {"sale": {"num": 9223372036854775808}}}
    assert got["big_integer"]["lifetime_value"]["sale"]["num"] is None
    assert kept("early_timestamp") == {"lifetime_value": {"last_sale_date": "0001-01-01T00:00:00+01:00"}}
    # Beyond 64 bits: kept exactly, as a string of its digits (no JSON number type holds it).
    assert kept("big_numeric")["lifetime_value"]["all"]["amount_total"] == str(10**29)
