"""What users of the google operators expect: job labels and ids, KMS encryption, the disk check, on_kill."""

from __future__ import annotations

import json
from collections import namedtuple
from types import SimpleNamespace

import pytest

from airflow_revcent.exceptions import RevCentDiskSpaceError
from airflow_revcent.rows import ndjson
from revcent_sandbox import CustomerStore

from .conftest import API_KEY, run_operator, unix
from .truth import assert_table_matches, table_rows

START, END = unix(2026, 5, 1), unix(2026, 5, 15)
RANGE = {"date_start": "2026-05-01", "date_end": "2026-05-15"}
KEY = "projects/p/locations/us/keyRings/r/cryptoKeys/customers"


@pytest.fixture
def store() -> CustomerStore:
    return CustomerStore(seed=29, count=60, start=START, end=END)


@pytest.fixture
def proxied(monkeypatch, sandbox, bq_proxy, bigquery_server):
    def point(store: CustomerStore):
        server = sandbox(store)
        monkeypatch.setenv("AIRFLOW_CONN_REVCENT_DEFAULT", json.dumps(
            {"conn_type": "revcent", "host": server.url, "password": API_KEY, "extra": {"max_requests_per_second": 0}}))
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(
            {"conn_type": "google_cloud_platform",
             "extra": {"project": bigquery_server.project, "api_endpoint": bq_proxy.url, "is_anonymous": True}}))
        return server, bq_proxy.client(bigquery_server.project)

    return point


def test_every_job_is_labelled_and_named_after_its_dag_and_task(store, proxied, bq_proxy, table_name):
    _, client = proxied(store)
    summary = run_operator(destination_table=table_name, labels={"team": "data-eng"},
                           context={"ti": SimpleNamespace(dag_id="Revcent.Daily", task_id="to_bq", map_index=-1,
                                                          try_number=1)},
                           **RANGE)
    # The task log names the last job as the one that applied the run.
    assert summary["bigquery_job_ids"][-1].startswith("revcent_apply_Revcent_Daily__to_bq_")
    assert summary["rows_inserted"] == summary["records_loaded"] == len(store.truth(START, END))
    assert summary["rows_unchanged"] == 0
    jobs = [e.body for e in bq_proxy.requests if e.method == "POST" and "/jobs" in e.path
            and isinstance(e.body, dict) and "configuration" in e.body]
    assert len(jobs) >= 3  # the lock's first row, the load, the count and the transaction
    for job in jobs:
        assert job["configuration"]["labels"] == {"airflow-dag": "revcent_daily", "airflow-task": "to_bq",
                                                  "team": "data-eng"}
    named = [j["jobReference"]["jobId"] for j in jobs if j["jobReference"]["jobId"].startswith("revcent_")]
    assert any(n.startswith("revcent_apply_Revcent_Daily__to_bq_") for n in named)
    assert any(n.startswith("revcent_load_Revcent_Daily__to_bq_") for n in named)
    assert_table_matches(client, table_name, store.truth(START, END))


def test_every_table_the_pipeline_creates_is_encrypted_with_the_kms_key(store, proxied, bq_proxy, table_name):
    proxied(store)
    run_operator(destination_table=table_name, history_table=table_name + "_history",
                 encryption_configuration={"kmsKeyName": KEY}, **RANGE)
    created = {e.body["tableReference"]["tableId"]: e.body.get("encryptionConfiguration")
               for e in bq_proxy.requests if e.method == "POST" and e.path.endswith("/tables")}
    short = table_name.split(".")[1]
    assert {short, short + "_history", f"_revcent_lock_{short}"} <= set(created)
    assert any(t.startswith("_revcent_staging_") for t in created)
    assert all(config == {"kmsKeyName": KEY} for config in created.values()), created


def test_a_run_the_disk_cannot_hold_fails_after_the_first_page(store, proxied, monkeypatch, table_name):
    server, client = proxied(store)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("shutil.disk_usage", lambda path: usage(0, 0, 50_000))
    with pytest.raises(RevCentDiskSpaceError, match="tmp_dir"):
        run_operator(destination_table=table_name, **RANGE)
    assert server.stats.list_requests <= 5  # the first page told the total: nothing more was read
    assert table_rows(client, table_name) == []


def test_tmp_dir_holds_the_files(store, proxied, tmp_path, table_name, monkeypatch):
    _, client = proxied(store)
    seen: list[str] = []
    original = ndjson.NdjsonWriter.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(str(self.folder))

    monkeypatch.setattr(ndjson.NdjsonWriter, "__init__", spy)
    run_operator(destination_table=table_name, tmp_dir=str(tmp_path), **RANGE)
    assert seen and all(folder.startswith(str(tmp_path)) for folder in seen)
    assert_table_matches(client, table_name, store.truth(START, END))


def test_on_kill_stops_the_read_and_cancels_the_running_job():
    from airflow_revcent.transfers.customers_to_bigquery import CustomersToBigQueryOperator

    operator = CustomersToBigQueryOperator(task_id="t", destination_table="ds.t")
    calls: list[str] = []
    operator.__dict__["revcent_hook"] = SimpleNamespace(cancel=lambda: calls.append("read"))
    operator._active_destination = SimpleNamespace(cancel=lambda: calls.append("job"))  # type: ignore[assignment]  # a fake destination that only cancels
    operator.on_kill()
    assert calls == ["read", "job"]


def test_jobs_run_in_the_billing_project_and_the_tables_stay_in_theirs(store, proxied, bq_proxy, bigquery_server,
                                                                       table_name):
    _, client = proxied(store)
    run_operator(destination_table=table_name, project_id="billing-project-1", **RANGE)
    jobs = [e for e in bq_proxy.requests if e.method == "POST" and e.path.endswith("/jobs")
            and isinstance(e.body, dict) and "configuration" in e.body]
    assert jobs and all("/projects/billing-project-1/jobs" in e.path for e in jobs), [e.path for e in jobs]
    assert all(e.body["jobReference"]["projectId"] == "billing-project-1" for e in jobs)
    tables = [e.path for e in bq_proxy.requests if e.method == "POST" and e.path.endswith("/tables")]
    assert tables and all(f"/projects/{bigquery_server.project}/" in p for p in tables)
    assert_table_matches(client, table_name, store.truth(START, END))
