"""End to end on BigQuery's documented rules, not only the local server's: the sample DAG and the operator
through a recording, fault-injecting proxy, with every statement they send analyzed by ZetaSQL against
the schemas the tables really had (see statements_check.py), and the table compared with the sandbox."""

from __future__ import annotations

import importlib.util
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField

from airflow_revcent.bigquery.fields import to_schema_fields
from airflow_revcent.bigquery.statements import MAX_DAYS_PER_STATEMENT
from airflow_revcent.bigquery.tables import STAGING_PREFIX
from airflow_revcent.exceptions import RevCentBigQueryError, RevCentBigQueryPermanentError
from airflow_revcent.rows.columns import table_columns
from airflow_revcent.rows.pii import PiiSettings
from revcent_sandbox import CustomerStore

from . import bqproxy
from .conftest import API_KEY, run_operator, unix
from .statements_check import assert_statements_valid
from .truth import assert_table_matches, table_rows

ROOT = Path(__file__).resolve().parents[2]
START, END = unix(2026, 5, 1), unix(2026, 5, 15)
RANGE = {"date_start": "2026-05-01", "date_end": "2026-05-15"}


@pytest.fixture
def store() -> CustomerStore:
    return CustomerStore(seed=23, count=60, start=START, end=END)


@pytest.fixture
def through_proxy(monkeypatch: pytest.MonkeyPatch, sandbox: Any, bq_proxy: bqproxy.BigQueryProxy,
                  bigquery_server: Any) -> Callable[[CustomerStore], Any]:
    """Point the connections at a sandbox for ``store`` and at BigQuery through the proxy; return a client
    that also goes through it (so the tables a test makes are recorded with their schemas)."""

    def point(store: CustomerStore) -> Any:
        server = sandbox(store)
        monkeypatch.setenv("AIRFLOW_CONN_REVCENT_DEFAULT", json.dumps(
            {"conn_type": "revcent", "host": server.url, "password": API_KEY,
             "extra": {"max_requests_per_second": 0, "max_concurrency": 8}}))
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(
            {"conn_type": "google_cloud_platform",
             "extra": {"project": bigquery_server.project, "api_endpoint": bq_proxy.url,
                       "is_anonymous": True}}))
        return bq_proxy.client(bigquery_server.project)

    return point


@pytest.fixture(scope="module")
def sample_dag() -> Iterator[Any]:
    """The sample DAG file, run in-process with ``dag.test`` as ``airflow dags test`` runs it."""
    from airflow.utils.db import resetdb

    resetdb()
    spec = importlib.util.spec_from_file_location("sample_dag", ROOT / "dags" / "revcent_customers_to_bigquery.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def run_dag(dag: Any, monkeypatch: pytest.MonkeyPatch, table: str, **conf: Any) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_REVCENT_CUSTOMERS_TABLE", table)
    run = dag.test(run_conf={**RANGE, **conf})
    assert str(run.state) in ("success", "DagRunState.SUCCESS"), run.state


def _reversed(fields: Sequence[SchemaField]) -> list[SchemaField]:
    return [SchemaField(f.name, f.field_type, mode=f.mode, description=f.description,
                        fields=_reversed(f.fields)[::-1]) for f in fields]


def _without(fields: Sequence[SchemaField], path: str) -> list[SchemaField]:
    head, _, rest = path.partition(".")
    out = []
    for f in fields:
        if f.name == head and not rest:
            continue
        nested = _without(f.fields, rest) if f.name == head else list(f.fields)
        out.append(SchemaField(f.name, f.field_type, mode=f.mode, description=f.description, fields=nested))
    return out


def _create(client: Any, table: str, schema: list[SchemaField], **options: Any) -> None:
    client.create_dataset(table.split(".", maxsplit=1)[0], exists_ok=True)
    new = bigquery.Table(f"{client.project}.{table}", schema=schema)
    new.time_partitioning = bigquery.TimePartitioning(field="_created_at")
    for name, value in options.items():
        setattr(new, name, value)
    client.create_table(new)


def _field_names(fields: Sequence[SchemaField], prefix: str = "") -> list[str]:
    names = []
    for f in fields:
        names.append(prefix + f.name)
        names += _field_names(f.fields, prefix + f.name + ".")
    return names


def test_a_destination_whose_records_are_in_reverse_order_gets_each_value_in_its_own_field(
        store, through_proxy, bq_proxy, sample_dag, monkeypatch, table_name):
    client = through_proxy(store)
    _create(client, table_name, _reversed(to_schema_fields(table_columns())))
    run_dag(sample_dag, monkeypatch, table_name)
    store.mutate(0.5, seed=4)  # the second run updates: SET rec = S.rec on every RECORD
    run_dag(sample_dag, monkeypatch, table_name)
    assert_table_matches(client, table_name, store.truth(START, END))
    assert assert_statements_valid(bq_proxy, client) >= 3  # lock set-up, two transactions
    stagings = [j["schema"] for j in bq_proxy.load_jobs()]
    wanted = _field_names(client.get_table(table_name).schema)
    assert stagings and all(_field_names([SchemaField.from_api_repr(f) for f in s]) ==
                            [n for n in wanted if n.split(".")[0] in {f["name"] for f in s}] for s in stagings)


def test_a_destination_from_an_older_spec_without_a_nested_field_in_the_middle(
        store, through_proxy, bq_proxy, sample_dag, monkeypatch, table_name):
    client = through_proxy(store)
    _create(client, table_name, _without(to_schema_fields(table_columns()), "lifetime_value.sale.amount_net"))
    run_dag(sample_dag, monkeypatch, table_name)
    store.mutate(0.5, seed=5)
    run_dag(sample_dag, monkeypatch, table_name)
    assert assert_statements_valid(bq_proxy, client) >= 3  # lock set-up, two transactions
    sale = next(f for f in next(f for f in client.get_table(table_name).schema if f.name == "lifetime_value").fields
                if f.name == "sale")
    truth = store.truth(START, END)
    if "amount_net" in [f.name for f in sale.fields]:  # BigQuery appends the new nested field at the end
        assert [f.name for f in sale.fields][-1] == "amount_net"
        assert_table_matches(client, table_name, truth)
    else:  # the local server cannot add a nested field: its values are kept in _unknown_fields, not lost
        rows = {r["id"]: r for r in table_rows(client, table_name)}
        for customer in truth:
            net = ((customer.get("lifetime_value") or {}).get("sale") or {}).get("amount_net")
            if net is not None:
                unknown = rows[customer["id"]]["_unknown_fields"]
                unknown = json.loads(unknown) if isinstance(unknown, str) else unknown
                assert float(unknown["lifetime_value"]["sale"]["amount_net"]) == pytest.approx(float(net))


def test_a_nested_exclusion_added_on_an_existing_table_keeps_the_shape(store, through_proxy, bq_proxy, table_name):
    client = through_proxy(store)
    run_operator(destination_table=table_name, **RANGE)
    store.mutate(0.5, seed=6)
    # Excluding fields of an existing table changes its PII policy: said on purpose.
    summary = run_operator(destination_table=table_name, pii=PiiSettings(
        exclude_fields=["customer_card.first_6", "lifetime_value.all"]), pii_policy_change="allow", **RANGE)
    assert assert_statements_valid(bq_proxy, client) >= 3  # lock set-up, two transactions
    # The content as loaded changed for every customer (the excluded values are gone), so every row is
    # rewritten: the RECORDs keep the table's shape, the excluded nested fields are NULL, the rest lands.
    rows = {r["id"]: r for r in table_rows(client, table_name)}
    truth = {c["id"]: c for c in store.truth(START, END)}
    assert summary["rows_updated"] == len(rows) == len(truth)
    for customer_id, row in rows.items():
        cards = row["customer_card"]
        assert all(card["first_6"] is None for card in cards)
        assert [c["last_4"] for c in cards] == [c.get("last_4") for c in truth[customer_id].get("customer_card") or []]
        if row["lifetime_value"] is not None:
            assert row["lifetime_value"]["all"] is None
            want = (truth[customer_id].get("lifetime_value") or {}).get("sale") or {}
            have = row["lifetime_value"]["sale"] or {}
            assert {k: (None if v is None else float(v)) for k, v in have.items() if k in want} == \
                   {k: (None if v is None else float(v)) for k, v in want.items()}


def test_excluding_a_clustering_column_on_a_new_table(store, through_proxy, bq_proxy, table_name):
    client = through_proxy(store)
    run_operator(destination_table=table_name, pii=PiiSettings(exclude_fields=["status", "campaign_id"]), **RANGE)
    table = client.get_table(table_name)
    assert table.clustering_fields == ["id"]
    assert "status" not in {f.name for f in table.schema}
    assert len(table_rows(client, table_name)) == len(store.truth(START, END))
    assert assert_statements_valid(bq_proxy, client) >= 2


def test_dataset_default_expirations_never_expire_the_customers(store, through_proxy, bq_proxy, table_name,
                                                                 caplog):
    client = through_proxy(store)
    dataset_name = f"expiring_{table_name.split('.')[1][:40]}"
    dataset = bigquery.Dataset(f"{client.project}.{dataset_name}")
    dataset.default_table_expiration_ms = 3_600_000
    dataset.default_partition_expiration_ms = 86_400_000
    client.create_dataset(dataset)
    table = f"{dataset_name}.customers"
    run_operator(destination_table=table, history_table=f"{dataset_name}.history", **RANGE)
    for name in ("customers", "history", "_revcent_lock_customers"):
        created = client.get_table(f"{dataset_name}.{name}")
        assert created.expires is None, name
        assert created.time_partitioning is None or not created.time_partitioning.expiration_ms, name
    cleared = [e.path.rsplit("/", 1)[-1] for e in bq_proxy.table_updates()
               if isinstance(e.body, dict) and "expirationTime" in e.body and e.body["expirationTime"] is None]
    assert {"customers", "history", "_revcent_lock_customers"} <= set(cleared)
    assert "default_table_expiration_ms=3600000" in caplog.text
    assert_table_matches(client, table, store.truth(START, END))


def test_a_range_longer_than_four_thousand_days_is_applied_in_steps_in_one_transaction(
        through_proxy, bq_proxy, sample_dag, monkeypatch, table_name):
    start, end = unix(2012, 1, 1), unix(2026, 11, 1)
    store = CustomerStore(seed=31, count=120, start=start, end=end)
    client = through_proxy(store)
    run_dag(sample_dag, monkeypatch, table_name, date_start="2012-01-01", date_end="2026-11-01")
    assert_table_matches(client, table_name, store.truth(start, end))
    days = {r["_created_at"].date() for r in table_rows(client, table_name)}
    assert (max(days) - min(days)).days > 4000
    [script] = [sql for _, sql in bq_proxy.queries() if "BEGIN TRANSACTION" in sql]
    bounds = re.findall(r"T\.`_created_at` >= TIMESTAMP '([^']+)' AND T\.`_created_at` < TIMESTAMP '([^']+)' AND",
                        script)
    spans = [(datetime.fromisoformat(b) - datetime.fromisoformat(a)).days for a, b in bounds]
    assert len(spans) >= 2 and max(spans) <= MAX_DAYS_PER_STATEMENT < 4000  # each UPDATE under the job limit
    assert script.count("BEGIN TRANSACTION") == 1 and script.count("COMMIT TRANSACTION") == 1
    assert assert_statements_valid(bq_proxy, client) >= 2


def test_history_updates_the_row_in_place_and_keeps_columns_the_pipeline_does_not_write(
        store, through_proxy, bq_proxy, table_name):
    client = through_proxy(store)
    history = table_name + "_history"
    run_operator(destination_table=table_name, history_table=history, **RANGE)
    table = client.get_table(table_name)
    table.schema = [*table.schema, SchemaField("team_note", "STRING")]
    client.update_table(table, ["schema"])
    client.query(f"UPDATE `{client.project}.{table_name}` SET team_note = CONCAT('n-', id) WHERE TRUE").result()
    before = {r["id"]: r for r in table_rows(client, table_name)}
    companies = {i: r["company"] for i, r in before.items()}
    store.mutate(0.5, seed=8)
    # company is no longer written: every customer's content changes, and its stored company stays.
    summary = run_operator(destination_table=table_name, history_table=history,
                           pii=PiiSettings(exclude_fields=["company"]), pii_policy_change="allow", **RANGE)
    rows = table_rows(client, table_name)
    rewritten = [r for r in rows if r["_content_hash"] != before[r["id"]]["_content_hash"]]
    assert summary["rows_updated"] == len(rewritten) > len(rows) / 2 and len(rows) == len(companies)
    assert all(r["team_note"] == f"n-{r['id']}" for r in rows)  # updated in place, never re-inserted
    assert {r["id"]: r["company"] for r in rows} == companies
    versions = table_rows(client, history)
    assert sum(v["_is_current"] for v in versions) == len(rows) and len(versions) == len(rows) + len(rewritten)
    assert assert_statements_valid(bq_proxy, client) >= 3  # lock set-up, two transactions


def test_a_table_that_requires_a_partition_filter_is_written(store, through_proxy, bq_proxy, table_name):
    client = through_proxy(store)
    _create(client, table_name, to_schema_fields(table_columns()), require_partition_filter=True)
    run_operator(destination_table=table_name, **RANGE)
    store.mutate(0.3, seed=9)
    run_operator(destination_table=table_name, **RANGE)
    rows = list(client.query(f"SELECT id FROM `{client.project}.{table_name}` "
                             "WHERE _created_at >= TIMESTAMP '2026-01-01'").result())
    assert len(rows) == len(store.truth(START, END))
    assert assert_statements_valid(bq_proxy, client) >= 3  # lock set-up, two transactions


def test_rows_written_elsewhere_without_metadata_are_updated_by_the_next_read(store, through_proxy, table_name):
    client = through_proxy(store)
    run_operator(destination_table=table_name, **RANGE)
    # A team's table (metadata columns nullable) filled before the pipeline wrote to it.
    other = table_name + "_team"
    schema = [SchemaField(f.name, f.field_type, mode="NULLABLE" if f.mode == "REQUIRED" else f.mode,
                          fields=f.fields) for f in to_schema_fields(table_columns())]
    _create(client, other, schema)
    client.query(f"INSERT INTO `{client.project}.{other}` (id, email, _created_at) "
                 f"SELECT id, 'stale@example.com', _created_at FROM `{client.project}.{table_name}`").result()
    run_operator(destination_table=other, **RANGE)
    assert_table_matches(client, other, store.truth(START, END))


def test_two_overlapping_runs_never_leave_two_rows_for_a_customer(store, through_proxy, bq_proxy, table_name):
    client = through_proxy(store)
    errors: list[BaseException] = []

    def run(run_id: str, date_start: str) -> None:
        try:
            run_operator(run_id=run_id, destination_table=table_name, date_start=date_start, date_end="2026-05-15")
        except BaseException as exc:
            errors.append(exc)

    # Both runs see the customers of 05-08..05-15 as new; the first writer's lock row makes the other's
    # transaction lose (aborted as on BigQuery, here from the local server or the injected conflict).
    bq_proxy.add_fault(bqproxy.transaction_aborted(f"{client.project}:{table_name.replace('.', ':', 0)}",
                                                   when=bqproxy.query_contains("BEGIN TRANSACTION"), first=1))
    threads = [threading.Thread(target=run, args=(f"run_{i}", day)) for i, day in enumerate(("2026-05-01",
                                                                                             "2026-05-08"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors
    assert_table_matches(client, table_name, store.truth(START, END))
    scripts = [job for job, sql in bq_proxy.queries() if "BEGIN TRANSACTION" in sql]
    assert len(scripts) >= 3  # one aborted and retried as a new job
    assert assert_statements_valid(bq_proxy, client) >= 3


def _staging_create(body: Any) -> bool:
    """A tables.insert of a staging table."""
    table_id = body.get("tableReference", {}).get("tableId", "") if isinstance(body, dict) else ""
    return str(table_id).startswith(STAGING_PREFIX)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(lambda t: bqproxy.server_error("POST", bqproxy.JOBS_INSERT, status=503, first=2), id="503"),
        pytest.param(lambda t: bqproxy.server_error("GET", bqproxy.TABLE, status=500, first=3), id="500-tables.get"),
        pytest.param(lambda t: bqproxy.rate_limited("GET", bqproxy.JOB_GET, first=2), id="rateLimitExceeded"),
        pytest.param(lambda t: bqproxy.dropped("GET", bqproxy.JOB_GET, first=1), id="dropped"),
        pytest.param(lambda t: bqproxy.reset_mid_upload(first=1), id="reset-upload"),
        pytest.param(lambda t: bqproxy.answer_lost(when=_staging_create, first=1),
                     id="staging-create-answer-lost"),
        pytest.param(lambda t: bqproxy.answer_lost(path=bqproxy.JOBS_INSERT, when=bqproxy.query_contains("BEGIN"),
                                                   first=1), id="transaction-insert-answer-lost"),
        pytest.param(lambda t: bqproxy.conflict_not_visible(
            unseen_gets=2, when=bqproxy.query_contains("BEGIN TRANSACTION"), first=1), id="409-not-visible"),
        pytest.param(lambda t: bqproxy.serialize_conflict(t, when=bqproxy.query_contains("BEGIN"), first=2),
                     id="serialize"),
        pytest.param(lambda t: bqproxy.too_many_dml(t, when=bqproxy.query_contains("BEGIN"), first=1),
                     id="too-many-dml"),
    ],
)
def test_transient_bigquery_faults_are_retried_and_the_table_is_exact(store, through_proxy, bq_proxy, table_name,
                                                                      fault, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)  # the backoff waits are not what is tested
    client = through_proxy(store)
    injected = bq_proxy.add_fault(fault(f"{client.project}:{table_name.replace('.', ':')}"))
    run_operator(destination_table=table_name, **RANGE)
    assert injected.fired >= 1
    assert_table_matches(client, table_name, store.truth(START, END))


def test_a_schema_update_that_races_another_is_read_again(store, through_proxy, bq_proxy, table_name):
    client = through_proxy(store)
    _create(client, table_name, _without(to_schema_fields(table_columns()), "company"))
    race = bq_proxy.add_fault(bqproxy.precondition_failed(first=1))
    run_operator(destination_table=table_name, **RANGE)
    assert race.fired == 1
    assert "company" in {f.name for f in client.get_table(table_name).schema}
    assert_table_matches(client, table_name, store.truth(START, END))


@pytest.mark.parametrize(("reason", "message"), [
    ("accessDenied", "Access Denied: Table x: permission bigquery.tables.updateData denied"),
    ("invalidQuery", "Syntax error: Unexpected keyword WHEN at [12:3]"),
])
def test_a_permanent_job_failure_fails_at_once_naming_job_and_table(store, through_proxy, bq_proxy, table_name,
                                                                     reason, message):
    client = through_proxy(store)
    run_operator(destination_table=table_name, **RANGE)
    before = sorted(table_rows(client, table_name), key=lambda r: r["id"])
    store.mutate(0.5, seed=12)
    bq_proxy.add_fault(bqproxy.job_failed(reason, message, when=bqproxy.query_contains("BEGIN")))
    with pytest.raises(RevCentBigQueryPermanentError, match=rf"BigQuery job revcent_apply_\w+ failed: {message[:12]}"
                                                            rf".*{table_name} was not changed") as info:
        run_operator(destination_table=table_name, **RANGE)
    assert info.value.reason == reason
    assert sorted(table_rows(client, table_name), key=lambda r: r["id"]) == before
    assert len([1 for _, sql in bq_proxy.queries() if "BEGIN TRANSACTION" in sql]) == 2  # no retry


def test_a_retried_attempt_stages_its_own_rows_and_a_failed_run_recovers(store, through_proxy, bq_proxy, table_name,
                                                                        monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    client = through_proxy(store)
    # Attempt 1: every apply job fails transiently until its budget is spent.
    bq_proxy.add_fault(bqproxy.job_failed("backendError", "Backend error", when=bqproxy.query_contains("BEGIN"),
                                          first=None))
    with pytest.raises(RevCentBigQueryError, match="failed 8 times"):
        run_operator(destination_table=table_name, **RANGE, context={"ti": _ti(1)})
    bq_proxy.faults.clear()
    loads = len(bq_proxy.load_jobs())
    # Attempt 2, once the cause is gone: the run's staging (issue 19: the run's, not the attempt's) still holds
    # every window, so it reads and loads nothing, and applies under a job id of its own; the run completes.
    summary = run_operator(destination_table=table_name, **RANGE, context={"ti": _ti(2)})
    assert not summary["already_applied"]
    assert_table_matches(client, table_name, store.truth(START, END))
    assert len(bq_proxy.load_jobs()) == loads and summary["bigquery_job_ids"][-1].endswith("_t2")
    # Attempt 3 (a cleared task): finds attempt 2's applied job and does not apply it again.
    again = run_operator(destination_table=table_name, **RANGE, context={"ti": _ti(3)})
    assert again["already_applied"]


def _ti(try_number: int) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(dag_id="it", task_id="customers_to_bigquery", map_index=-1, try_number=try_number)




def test_every_job_names_its_dag_and_task_and_a_deleted_lock_row_is_given_back(store, through_proxy, bq_proxy,
                                                                               table_name):
    client = through_proxy(store)
    dataset, table = table_name.split(".")
    lock = f"{client.project}.{dataset}._revcent_lock_{table}"
    run_operator(destination_table=table_name, **RANGE)
    jobs = [e for e in bq_proxy.requests
            if e.method == "POST" and re.search(f"{bqproxy.JOBS_INSERT}|{bqproxy.JOBS_QUERY}", e.path)]
    ids = [e.body.get("jobReference", {}).get("jobId", "") if isinstance(e.body, dict) else "" for e in jobs]
    # The lock set-up, the loads and the transaction: no counts query, and no automatic id.
    assert len(ids) >= 3 and all(i.startswith("revcent_") and "it__customers_to_bigquery_" in i for i in ids), ids
    assert [i for i in ids if i.startswith("revcent_lock_init_")]
    assert not [sql for _, sql in bq_proxy.queries() if "COUNTIF" in sql]
    first_init = {job for job, _ in bq_proxy.queries() if job.startswith("revcent_lock_init_")}

    # Someone deletes the lock row: the next run gives it back under a job of its own (not the first
    # run's, which would reattach to that success and insert nothing), and its transaction updates it.
    client.query(f"DELETE FROM `{lock}` WHERE TRUE").result()
    store.mutate(0.3, seed=12)
    run_operator(run_id="after_delete", destination_table=table_name, **RANGE)
    locks = list(client.query(f"SELECT revision, run_id FROM `{lock}`").result())
    assert [(r["revision"], r["run_id"]) for r in locks] == [(1, "after_delete")]
    inits = {job for job, _ in bq_proxy.queries() if job.startswith("revcent_lock_init_")}
    assert inits - first_init
    assert_table_matches(client, table_name, store.truth(START, END))
