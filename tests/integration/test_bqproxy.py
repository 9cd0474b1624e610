"""The BigQuery proxy against the real local BigQuery-API server: it forwards, records and injects faults."""

from __future__ import annotations

import io
import itertools
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.api_core import exceptions
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY

from devtools import localbq

from .bqproxy import (
    UPLOAD,
    BigQueryProxy,
    answer_lost,
    conflict_not_visible,
    dropped,
    precondition_failed,
    query_contains,
    rate_limited,
    reset_mid_upload,
    serialize_conflict,
    server_error,
    too_many_dml,
    transaction_aborted,
)

pytestmark = pytest.mark.integration
DATASET = "bqproxy_it"
SCHEMA = [bigquery.SchemaField("id", "STRING"), bigquery.SchemaField("n", "INTEGER")]
FAST = bigquery.DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.05)
_tables = itertools.count()


@pytest.fixture
def client(bq_proxy: BigQueryProxy, bigquery_server: localbq.LocalBigQuery) -> Iterator[Any]:
    client = bq_proxy.client(bigquery_server.project)
    client.create_dataset(DATASET, exists_ok=True)
    yield client
    client.close()


@pytest.fixture
def table(client: Any) -> str:
    """A fresh table holding rows a=1 and b=2."""
    table_id = f"{client.project}.{DATASET}.t{next(_tables)}"
    client.create_table(bigquery.Table(table_id, schema=SCHEMA))
    load(client, table_id, [{"id": "a", "n": 1}, {"id": "b", "n": 2}])
    return table_id


def load(client: Any, table_id: str, rows: list[dict[str, Any]], *, resumable: bool = False) -> Any:
    data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    config = bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON", schema=SCHEMA,
                                    write_disposition="WRITE_APPEND")
    # With a size under 5 MB the client sends one multipart request; without one it starts a resumable upload.
    size = None if resumable else len(data)
    return client.load_table_from_file(io.BytesIO(data), table_id, size=size, job_config=config).result()


def rows_of(client: Any, table_id: str) -> list[tuple[str, int]]:
    return sorted((row["id"], row["n"]) for row in client.list_rows(table_id))


def test_forwards_and_records_tables_loads_queries(bq_proxy: BigQueryProxy, client: Any, table: str) -> None:
    load(client, table, [{"id": "c", "n": 3}], resumable=True)
    job = client.query(f"SELECT SUM(n) AS total FROM `{table}`")
    assert next(iter(job.result()))["total"] == 6
    assert rows_of(client, table) == [("a", 1), ("b", 2), ("c", 3)]
    updated = client.get_table(table)
    updated.description = "through the proxy"
    client.update_table(updated, ["description"])

    assert [(j["upload"], j["write_disposition"]) for j in bq_proxy.load_jobs()] == [
        ("multipart", "WRITE_APPEND"), ("resumable", "WRITE_APPEND")]
    first = bq_proxy.load_jobs()[0]
    assert first["destination"]["tableId"] == table.rsplit(".", 1)[1]
    assert [f["name"] for f in first["schema"]] == ["id", "n"]
    assert bq_proxy.queries() == [(job.job_id, f"SELECT SUM(n) AS total FROM `{table}`")]
    [patch] = bq_proxy.table_updates()
    assert patch.method == "PATCH" and patch.body["description"] == "through the proxy"
    # The resumable upload's data came back through the proxy (its Location was rewritten).
    assert any(e.method == "PUT" and e.path.startswith("/upload/") and e.status == 200 for e in bq_proxy.requests)
    assert all(e.status is not None and e.status < 400 for e in bq_proxy.requests)


@pytest.mark.parametrize(("make", "status", "error"), [
    (server_error, 503, exceptions.ServiceUnavailable),
    (server_error, 500, exceptions.InternalServerError),
    (rate_limited, 429, exceptions.TooManyRequests),
    (rate_limited, 403, exceptions.Forbidden),
])
def test_http_errors_reach_the_client_and_are_retried(bq_proxy: BigQueryProxy, client: Any, make: Any, status: int,
                                                      error: type[Exception]) -> None:
    fault = bq_proxy.add_fault(make("GET", f"/datasets/{DATASET}$", status=status))
    bq_proxy.requests.clear()
    with pytest.raises(error) as raised:
        client.get_dataset(DATASET, retry=None)
    assert raised.value.errors[0]["reason"] == fault.reason  # type: ignore[attr-defined]  # a GoogleAPICallError
    fault.first = 2  # one more failure, which the client's default retry rides out
    assert client.get_dataset(DATASET, retry=FAST).dataset_id == DATASET
    assert [e.status for e in bq_proxy.requests if e.path.endswith(DATASET)] == [fault.status, fault.status, 200]


def test_every_nth_request(bq_proxy: BigQueryProxy, client: Any) -> None:
    bq_proxy.add_fault(server_error("GET", f"/datasets/{DATASET}$", first=None, every=2))
    statuses = []
    for _ in range(4):
        try:
            client.get_dataset(DATASET, retry=None)
            statuses.append(200)
        except exceptions.ServiceUnavailable:
            statuses.append(503)
    assert statuses == [200, 503, 200, 503]


def test_dropped_connection(bq_proxy: BigQueryProxy, client: Any) -> None:
    bq_proxy.add_fault(dropped("GET", f"/datasets/{DATASET}$", first=2))
    bq_proxy.requests.clear()
    with pytest.raises(requests.exceptions.ConnectionError):
        client.get_dataset(DATASET, retry=None)
    assert client.get_dataset(DATASET, retry=FAST).dataset_id == DATASET
    assert [(e.fault, e.status) for e in bq_proxy.requests if e.path.endswith(DATASET)] == [
        ("drop", None), ("drop", None), (None, 200)]


def test_a_create_whose_answer_was_lost_is_retried_and_answered_409(bq_proxy: BigQueryProxy, client: Any) -> None:
    table_id = f"{client.project}.{DATASET}.t{next(_tables)}"
    bq_proxy.add_fault(answer_lost(first=1))
    with pytest.raises(exceptions.Conflict):  # the retry meets the table the lost request made
        client.create_table(bigquery.Table(table_id, schema=SCHEMA), retry=FAST)
    assert [(e.fault, e.status) for e in bq_proxy.requests if e.method == "POST" and e.path.endswith("/tables")] == [
        ("lost", None), (None, 409)]
    bq_proxy.add_fault(answer_lost(first=1))
    other = f"{table_id}_b"
    assert client.create_table(bigquery.Table(other, schema=SCHEMA), exists_ok=True, retry=FAST).table_id == (
        other.rsplit(".", 1)[1])


def test_reset_mid_upload_is_retried_without_loading_twice(bq_proxy: BigQueryProxy, client: Any, table: str) -> None:
    bq_proxy.add_fault(reset_mid_upload("PUT", UPLOAD))
    load(client, table, [{"id": "c", "n": 3}], resumable=True)
    assert rows_of(client, table) == [("a", 1), ("b", 2), ("c", 3)]
    puts = [e for e in bq_proxy.requests if e.method == "PUT"]
    assert [(e.fault, e.status) for e in puts] == [("reset", None), (None, 200)]


def test_conflict_whose_job_is_not_yet_visible(bq_proxy: BigQueryProxy, client: Any, table: str) -> None:
    # A generated job id: the client looks the job up, rides out the 404 and reattaches to the job.
    bq_proxy.add_fault(conflict_not_visible(unseen_gets=1))
    job = client.query(f"SELECT COUNT(*) AS c FROM `{table}`")
    assert next(iter(job.result()))["c"] == 2
    gets = [e.status for e in bq_proxy.requests if e.method == "GET" and e.path.endswith(f"/jobs/{job.job_id}")]
    assert gets[:2] == [404, 200]
    assert len(bq_proxy.queries()) == 1  # the job ran once, on the server
    # A job id given by the caller: the 409 reaches it (the job exists on the server all the same).
    bq_proxy.add_fault(conflict_not_visible())
    with pytest.raises(exceptions.Conflict):
        client.query(f"SELECT COUNT(*) AS c FROM `{table}`", job_id="bqproxy_given_1", job_retry=None)
    with pytest.raises(exceptions.NotFound):
        client.get_job("bqproxy_given_1", retry=None)  # not visible yet
    assert client.get_job("bqproxy_given_1").state in {"RUNNING", "DONE"}


def test_precondition_failed_on_table_patch(bq_proxy: BigQueryProxy, client: Any, table: str) -> None:
    bq_proxy.add_fault(precondition_failed())
    current = client.get_table(table)
    current.description = "lost the race"
    with pytest.raises(exceptions.PreconditionFailed):
        client.update_table(current, ["description"])
    assert client.get_table(table).description is None
    assert bq_proxy.table_updates()[0].headers["If-Match"] == current.etag


@pytest.mark.parametrize(("make", "reason", "text"), [
    (serialize_conflict, "invalidQuery", "Could not serialize access to table"),
    (transaction_aborted, "invalidQuery", "Transaction is aborted due to concurrent update against table"),
    (too_many_dml, "resourcesExceeded", "Too many DML statements outstanding against table"),
])
def test_job_failures_do_not_apply(bq_proxy: BigQueryProxy, client: Any, table: str, make: Any, reason: str,
                                   text: str) -> None:
    bq_proxy.add_fault(make(table.replace(".", ":", 1), when=query_contains("MERGE"), first=None))
    merge = (f"MERGE `{table}` T USING (SELECT 'a' AS id, 10 AS n) S ON T.id = S.id "
             "WHEN MATCHED THEN UPDATE SET n = S.n")
    job = client.query(merge, job_id=f"bqproxy_merge_{next(_tables)}", job_retry=None)
    with pytest.raises(exceptions.BadRequest, match=text):
        job.result()
    assert client.get_job(job.job_id).error_result["reason"] == reason
    with pytest.raises(exceptions.BadRequest, match=text):
        client.query_and_wait(merge, job_retry=None)  # jobs.query answers the same error
    assert rows_of(client, table) == [("a", 1), ("b", 2)]  # nothing reached the server
    assert bq_proxy.queries()[0] == (job.job_id, merge)


def test_backend_error_job_is_restarted_by_the_client(bq_proxy: BigQueryProxy, client: Any, table: str) -> None:
    fault = serialize_conflict(table)
    fault.reason, fault.message = "backendError", "Error encountered during execution. Retrying may solve the problem."
    bq_proxy.add_fault(fault)
    update = f"UPDATE `{table}` SET n = n + 1 WHERE TRUE"
    client.query(update, job_retry=DEFAULT_JOB_RETRY.with_delay(initial=0.01, maximum=0.05)).result()
    assert rows_of(client, table) == [("a", 2), ("b", 3)]  # applied once, by the second job
    first, second = bq_proxy.queries()
    assert first[1] == second[1] == update and first[0] != second[0]


def test_close_stops_every_thread_even_with_kept_alive_connections(bigquery_server: localbq.LocalBigQuery) -> None:
    before = set(threading.enumerate())
    with BigQueryProxy(bigquery_server.url) as proxy:
        client = proxy.client(bigquery_server.project)
        client.create_dataset(DATASET, exists_ok=True)  # the client's session keeps its connection open
        assert len(set(threading.enumerate()) - before) >= 2  # the server loop and a connection's handler
    assert set(threading.enumerate()) - before == set()
    client.close()
