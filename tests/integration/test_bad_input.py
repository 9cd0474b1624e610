"""Bad input gets a clear error naming the value and the fix, and loads nothing."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest

from airflow_revcent.exceptions import RevCentAuthError, RevCentConfigError, RevCentDataError
from airflow_revcent.transfers.customers_to_bigquery import CustomersToBigQueryOperator
from revcent_sandbox import CustomerStore

from .conftest import run_operator, unix
from .truth import table_rows

START, END = unix(2026, 2, 1), unix(2026, 3, 1)
RANGE = {"date_start": "2026-02-01", "date_end": "2026-03-01"}


@pytest.fixture
def store() -> CustomerStore:
    return CustomerStore(seed=51, count=60, start=START, end=END)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"campaign_filter": ["abc"]}, r"campaign_filter value 'abc' is not a RevCent id"),
        ({"status_filter": ["active"]}, r"status_filter value 'active' is unknown; use any of enabled"),
        ({"metadata_filter": [{"value": "x"}]}, r"metadata_filter\[0\] has no name"),
        ({"date_start": "2026-03-01", "date_end": "2026-02-01"}, r"date_end 2026-02-01.* is before date_start"),
        ({"date_start": "2026-02-01", "date_end": "2026-02-01"}, r"empty: date_end equals date_start"),
        ({"date_start": "2026-02-01T00:00:00"}, r"date_start='2026-02-01T00:00:00' has no UTC offset"),
        ({"date_end": "next tuesday"}, r"date_end='next tuesday' is not an ISO-8601 date"),
        ({"destination_table": "customers"}, r"destination_table='customers' is not a BigQuery table name"),
        ({"destination_table": "proj.ds.t;drop"}, r"is not a BigQuery table name"),
        ({"revcent_conn_id": "revcent_missing"}, r"RevCent connection 'revcent_missing' does not exist"),
    ],
)
def test_bad_templated_values_fail_before_any_request_or_load(kwargs, message, store, sandbox, connections,
                                                              bq_client, table_name):
    server = sandbox(store)
    connections(server)
    args = {"destination_table": table_name, **RANGE, **kwargs}
    with pytest.raises(RevCentConfigError, match=message):
        run_operator(**args)
    # No page was asked for; RevCent's document at most (filters are checked against it once it is read).
    assert server.stats.list_requests == 0 and server.stats.requests <= 1
    assert table_rows(bq_client, table_name) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"page_size": 26}, r"page_size=26 must be an integer from 1 to 25"),
        ({"page_size": 0}, r"page_size=0"),
        ({"window_size": timedelta(days=91)}, r"window_size=91 days, 0:00:00 is over the API's limit of 90 days"),
        ({"on_invalid_record": "ignore"}, r"on_invalid_record='ignore' must be one of 'fail', 'keep'"),
        ({"on_count_mismatch": "ignore"}, r"on_count_mismatch='ignore' must be one of 'warn', 'fail'"),
    ],
)
def test_bad_static_arguments_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(RevCentConfigError, match=message):
        CustomersToBigQueryOperator(task_id="t", destination_table="ds.t", **kwargs)


def test_empty_api_key(store, sandbox, connections, bq_client, table_name):
    server = sandbox(store)
    connections(server, key="")
    with pytest.raises(RevCentConfigError, match="has no API key: put your RevCent API key in its password field"):
        run_operator(destination_table=table_name, **RANGE)
    assert server.stats.requests == 0


def test_rejected_api_key_is_not_retried(store, sandbox, connections, bq_client, table_name):
    server = sandbox(store)
    connections(server, key="revoked-key-0000")
    with pytest.raises(RevCentAuthError, match=r"rejected the API key.*HTTP 401") as info:
        run_operator(destination_table=table_name, **RANGE)
    # RevCent's document needs no key (the sandbox serves it openly), then the first page is refused, once.
    assert server.stats.list_requests == 1 and server.stats.by_path == {"/v2/openapi.json": 1, "/v2/customers": 1}
    assert "revoked-key-0000" not in str(info.value)
    assert table_rows(bq_client, table_name) == []


def test_permanent_errors_fail_the_task_without_airflow_retries():
    from airflow_revcent.exceptions import RevCentTransientError

    operator = CustomersToBigQueryOperator(task_id="t", destination_table="ds.t", retries=3)
    policy = operator.retry_policy
    assert policy.evaluate(RevCentAuthError("x"), 1, 4).action.value == "fail"
    assert policy.evaluate(RevCentConfigError("x"), 1, 4).action.value == "fail"
    assert policy.evaluate(RevCentTransientError("x"), 1, 4).action.value != "fail"


def test_a_customer_of_the_wrong_type_is_named_by_id_and_field(store, static_api, bq_client, table_name):
    good = store.truth(START, END)[:2]
    bad = copy.deepcopy(good[1])
    bad["lifetime_value"] = {"all": {"amount_gross": "12.50"}}
    static_api.customers = [good[0], bad]
    with pytest.raises(RevCentDataError, match=rf"Customer '{bad['id']}': field lifetime_value.all.amount_gross "
                                               r"is '12.50' \(str\) but the spec says NUMERIC"):
        run_operator(destination_table=table_name, **RANGE)
    assert table_rows(bq_client, table_name) == []
    summary = run_operator(destination_table=table_name, on_invalid_record="keep", **RANGE)
    rows = {r["id"]: r for r in table_rows(bq_client, table_name)}
    assert summary["records_loaded"] == 2
    assert json.loads(json.dumps(rows[bad["id"]]["_unknown_fields"])) == {
        "lifetime_value": {"all": {"amount_gross": "12.50"}}}


def test_a_customer_without_id_is_reported_with_its_position(store, static_api, bq_client, table_name):
    good = store.truth(START, END)[0]
    nameless = {k: v for k, v in good.items() if k != "id"}
    static_api.customers = [good, nameless]
    with pytest.raises(RevCentDataError, match=r"page 1, position 1: the customer has id=None"):
        run_operator(destination_table=table_name, **RANGE)
    assert table_rows(bq_client, table_name) == []
    summary = run_operator(destination_table=table_name, on_invalid_record="keep", **RANGE)
    assert summary["skipped_records"] == 1 and summary["records_loaded"] == 1
