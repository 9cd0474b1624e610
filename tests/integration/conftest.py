"""Real servers for end-to-end tests: the RevCent sandbox (in-process, threads) and the local
BigQuery-API server (a subprocess from its own Python 3.13 venv). Nothing here is mocked.

A missing server fails the tests; it is never a skip.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from devtools import localbq
from revcent_sandbox import SandboxServer
from tests.conftest import running_sandboxes
from tests.integration.bqproxy import BigQueryProxy

API_KEY = "rc-test-key-7f3a9c1e5b"
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this directory needs servers: mark it ``integration`` (``./dev unit`` leaves them out)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)
_tables = itertools.count()


def unix(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


@pytest.fixture(scope="session")
def bigquery_server() -> Iterator[localbq.LocalBigQuery]:
    server = localbq.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def bq_client(bigquery_server: localbq.LocalBigQuery) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(project=bigquery_server.project, credentials=AnonymousCredentials(),
                           client_options={"api_endpoint": bigquery_server.url})


@pytest.fixture
def bq_proxy(bigquery_server: localbq.LocalBigQuery) -> Iterator[BigQueryProxy]:
    """A recording, fault-injecting proxy in front of the session's BigQuery server; ``bq_proxy.client(project)``."""
    with BigQueryProxy(bigquery_server.url) as proxy:
        yield proxy


@pytest.fixture
def table_name(request: pytest.FixtureRequest) -> str:
    """A fresh destination table per test (same dataset, so tests share one server)."""
    return f"revcent_it.t{next(_tables)}_{request.node.name[:40].replace('[', '_').replace(']', '').replace('-', '_')}"


@pytest.fixture
def sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Start sandboxes on demand; all are stopped after the test."""
    with running_sandboxes(API_KEY) as start:
        yield start


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch, bigquery_server: localbq.LocalBigQuery) -> Callable[..., None]:
    """Point revcent_default at a sandbox and google_cloud_default at the local BigQuery server."""
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", bigquery_server.connection_uri_json())

    def point(server: SandboxServer, *, key: str = API_KEY, **extra: Any) -> None:
        extra.setdefault("max_requests_per_second", 0)
        extra.setdefault("max_concurrency", 8)
        monkeypatch.setenv("AIRFLOW_CONN_REVCENT_DEFAULT", json.dumps(
            {"conn_type": "revcent", "host": server.url, "password": key, "extra": extra}))

    return point


def run_operator(run_id: str = "manual__test", **kwargs: Any) -> dict[str, Any]:
    """Build the operator as a DAG file would and run it the way the task runner does."""
    from airflow_revcent.transfers.customers_to_bigquery import CustomersToBigQueryOperator

    kwargs.setdefault("task_id", "customers_to_bigquery")
    context = kwargs.pop("context", {})
    operator = CustomersToBigQueryOperator(**kwargs)
    ctx = {"run_id": run_id, "ti": SimpleNamespace(dag_id="it", task_id=operator.task_id, map_index=-1), **context}
    return operator.execute(ctx)  # type: ignore[arg-type]  # a plain dict stands in for Airflow's Context


class StaticPage(BaseHTTPRequestHandler):
    """Answers every request with one fixed page: for API behaviour the sandbox does not produce."""

    customers: list[dict[str, Any]] = []
    total_count: int | None = None

    def do_GET(self) -> None:
        total = len(self.customers) if self.total_count is None else self.total_count
        body = json.dumps({"code": 1, "current_page": 1, "total_count": total, "total_pages": 1,
                           "current_count": len(self.customers), "results": self.customers}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def static_api(monkeypatch: pytest.MonkeyPatch, bigquery_server: localbq.LocalBigQuery) -> Iterator[type[StaticPage]]:
    """A real HTTP server answering one configurable page; the connections point at it."""
    handler = type("Page", (StaticPage,), {"customers": [], "total_count": None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AIRFLOW_CONN_REVCENT_DEFAULT", json.dumps(
        {"conn_type": "revcent", "host": f"http://127.0.0.1:{server.server_address[1]}", "password": API_KEY}))
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", bigquery_server.connection_uri_json())
    yield handler
    server.shutdown()


@pytest.fixture(autouse=True)
def loader_rules(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every NDJSON file the pipeline uploads is checked row by row against its load job's schema
    (tests/bq_rules/loader.py) before it is sent: a row real BigQuery's loader would refuse fails the
    test, even where the local server is lenient. Yields the names of the files checked."""
    import inspect

    from google.cloud import bigquery

    from tests.bq_rules.loader import check_ndjson

    original = bigquery.Client.load_table_from_file
    signature = inspect.signature(original)
    checked: list[str] = []

    def checked_load(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        handle, config = bound.arguments["file_obj"], bound.arguments.get("job_config")
        schema = getattr(config, "schema", None)
        if not schema:  # no schema in the job: the destination table's
            schema = self.get_table(bound.arguments["destination"]).schema
        if getattr(config, "source_format", None) in (None, bigquery.SourceFormat.NEWLINE_DELIMITED_JSON):
            start = handle.tell()
            data = handle.read()
            handle.seek(start)
            problems = check_ndjson(data, schema)
            name = getattr(handle, "name", repr(handle))
            assert not problems, f"BigQuery's NDJSON loader would refuse {name}: " + "; ".join(problems)
            checked.append(str(name))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(bigquery.Client, "load_table_from_file", checked_load)
    return checked
