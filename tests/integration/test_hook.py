"""RevCentHook against real HTTP servers: concurrency budget, pacing, settings, headers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_revcent.api.options import RequestOptions
from airflow_revcent.api.windows import Interval, Window, split_windows
from airflow_revcent.exceptions import RevCentAuthError, RevCentConfigError
from airflow_revcent.hooks.revcent import RevCentHook
from airflow_revcent.spec import load_spec
from revcent_sandbox import CustomerStore

from .conftest import API_KEY, unix

START, END = unix(2026, 1, 1), unix(2026, 3, 31)  # 89 days: one window


@pytest.fixture
def store() -> CustomerStore:
    return CustomerStore(seed=5, count=600, start=START, end=END)


def ids(hook: RevCentHook, windows: list[Window]) -> list[str]:
    return [c["id"] for batch in hook.iter_pages(windows) for c in batch.customers]


def test_pages_are_fetched_concurrently_within_one_budget_shared_by_windows(store, sandbox, connections):
    server = sandbox(store, latency_ms=40, jitter_ms=30)
    connections(server, max_concurrency=4)
    windows = split_windows(Interval(START, END), timedelta(days=30))
    got = ids(RevCentHook(), windows)
    assert sorted(got) == sorted(c["id"] for c in store.truth(START, END))
    assert len(got) == len(set(got))
    assert 3 <= server.stats.peak_concurrency <= 4


def test_results_do_not_depend_on_arrival_order(store, sandbox, connections):
    windows = [Window(START, END - 86400 * 5), Window(END - 86400 * 5, END)]
    runs = []
    for seed in (1, 2):
        server = sandbox(store, latency_ms=20, jitter_ms=20, seed=seed, order="asc" if seed == 1 else "desc")
        connections(server, max_concurrency=8)
        runs.append(sorted(ids(RevCentHook(), windows)))
    assert runs[0] == runs[1] == sorted(c["id"] for c in store.truth(START, END))


def test_operator_arguments_win_over_connection_extras(store, sandbox, connections):
    server = sandbox(store, latency_ms=30)
    connections(server, max_concurrency=8, max_requests_per_second=0)
    hook = RevCentHook(options=RequestOptions(max_concurrency=2))
    ids(hook, [Window(START, END)])
    assert hook.settings.max_concurrency == 2
    assert server.stats.peak_concurrency <= 2


def test_rate_limit_is_shared_by_every_thread(store, sandbox, connections):
    server = sandbox(store)
    connections(server, max_concurrency=8, max_requests_per_second=10)
    started = time.monotonic()
    ids(RevCentHook(), [Window(START, END)])
    elapsed = time.monotonic() - started
    requests = server.stats.requests
    assert requests >= 20
    assert elapsed >= (requests - 1) / 10 * 0.95  # starts spaced at 1/10 s across all threads


def test_a_rate_limited_api_is_read_completely_and_throttling_slows_everyone(store, sandbox, connections):
    server = sandbox(store, rate_limit=8, latency_ms=10)
    connections(server, max_concurrency=8, max_requests_per_second=0, retry_initial_backoff=0.05)
    hook = RevCentHook()
    got = ids(hook, [Window(START, END)])
    assert sorted(got) == sorted(c["id"] for c in store.truth(START, END))
    assert server.stats.throttled >= 1
    assert hook.pacer.throttles >= 1
    # After the first 429s the pace dropped: far fewer 429s than requests.
    assert server.stats.throttled < server.stats.requests / 3


class _Capture(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
        status = 401 if self.headers.get("x-api-key") != API_KEY else 200
        body = json.dumps({"code": 1, "current_page": 1, "total_count": 0, "total_pages": 0, "results": []}
                          if status == 200 else {"code": 0, "error_code": "unauthorized", "message": "bad key"})
        # /docs/ is a document host that needs no key (and must never get it); the API's needs the key.
        if self.path.startswith("/docs/") or (self.path == "/v2/openapi.json" and status == 200):
            status, body = 200, json.dumps(load_spec())
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


def _serve() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def capture() -> Iterator[str]:
    _Capture.seen = []
    server = _serve()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def other_host() -> Iterator[str]:
    """Another origin (another port) serving a document at /docs/openapi.json without a key."""
    server = _serve()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_only_the_key_header_is_sent_and_no_extra_becomes_a_header(capture, monkeypatch):
    extras = {"max_concurrency": 3, "max_requests_per_second": 0, "read_timeout": 5, "verify": True,
              "retry_max_attempts": 2, "X-Custom": "leak?"}
    monkeypatch.setenv("AIRFLOW_CONN_REVCENT_DEFAULT", json.dumps(
        {"conn_type": "revcent", "host": capture + "/v2/", "password": API_KEY, "extra": extras}))
    page = RevCentHook().get_customers_page(100, 200, 1, limit=25)
    assert page.total_count == 0
    headers = _Capture.seen[0]
    assert headers["x-api-key"] == API_KEY
    assert headers["path"] == "/v2/customers?date_start=100&date_end=200&page=1&limit=25"
    for name in extras:
        assert name.lower() not in headers
    assert API_KEY not in headers["path"]


def test_rejected_key_fails_at_once_without_retry(capture, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_REVCENT_DEFAULT", json.dumps(
        {"conn_type": "revcent", "host": capture, "password": "wrong-key-123456"}))
    with pytest.raises(RevCentAuthError, match=r"rejected the API key.*HTTP 401.*unauthorized") as info:
        RevCentHook().get_customers_page(100, 200, 1)
    assert len(_Capture.seen) == 1
    assert "wrong-key-123456" not in str(info.value)


def test_empty_key_and_missing_connection_are_clear_errors(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_REVCENT_DEFAULT", json.dumps({"conn_type": "revcent", "host": "", "password": ""}))
    with pytest.raises(RevCentConfigError, match=r"no API key: put your RevCent API key in its password field"):
        _ = RevCentHook().settings
    with pytest.raises(RevCentConfigError, match="'revcent_nope' does not exist"):
        _ = RevCentHook("revcent_nope").settings


def test_turning_tls_verification_off_is_explicit_and_warns(monkeypatch, capsys):
    monkeypatch.setenv("AIRFLOW_CONN_REVCENT_DEFAULT", json.dumps(
        {"conn_type": "revcent", "host": "api.revcent.com", "password": API_KEY, "extra": {"verify": "false"}}))
    hook = RevCentHook()
    assert hook.settings.verify is False and hook.get_conn().verify is False
    assert "TLS certificate verification is OFF" in capsys.readouterr().out
    monkeypatch.setenv("AIRFLOW_CONN_REVCENT_DEFAULT", json.dumps({"conn_type": "revcent", "password": API_KEY}))
    default = RevCentHook()
    assert default.settings.verify is True and default.settings.base_url == "https://api.revcent.com"
    assert API_KEY not in repr(default.settings)


def test_test_connection_reports_success_and_a_bad_key(store, sandbox, connections):
    server = sandbox(store)
    connections(server)
    ok, message = RevCentHook().test_connection()
    assert ok and message.startswith(f"Connected to {server.url}")
    connections(server, key="not-the-key-000")
    ok, message = RevCentHook().test_connection()
    assert not ok and "API key was rejected" in message and "not-the-key-000" not in message


def test_test_connection_names_an_unreachable_host_and_a_wrong_host_quickly(monkeypatch, tmp_path):
    import functools
    from http.server import SimpleHTTPRequestHandler

    from devtools import localbq

    def point(host: str) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_REVCENT_DEFAULT",
                           json.dumps({"conn_type": "revcent", "host": host, "password": API_KEY}))

    point(f"http://127.0.0.1:{localbq.free_port()}")  # nothing listens there
    started = time.monotonic()
    ok, message = RevCentHook().test_connection()
    assert not ok and "The connection to http://127.0.0.1" in message and "ConnectionError" in message
    assert time.monotonic() - started < 20

    # Some other web server: a 404 page for /v2/customers.
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    web = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        point(f"http://127.0.0.1:{web.server_address[1]}")
        ok, message = RevCentHook().test_connection()
    finally:
        web.shutdown()
    assert not ok and "has no /v2/customers at this host" in message and "API root" in message


def test_run_and_the_document_take_the_real_session_with_only_the_key_header(capture, monkeypatch):
    # HttpHook would send the extra as a header and login:password as basic auth; the URI-less JSON form here.
    monkeypatch.setenv("AIRFLOW_CONN_REVCENT_DEFAULT", json.dumps(
        {"conn_type": "revcent", "host": capture, "login": "someone", "password": API_KEY,
         "extra": {"X-Custom": "leak?", "max_requests_per_second": 0}}))
    hook = RevCentHook()
    response = hook.run("/v2/sales", data={"page": 1, "limit": 25})
    assert response.status_code == 200 and response.json()["code"] == 1
    document = hook.get_openapi_document()
    assert document == load_spec() and hook.get_openapi_document() is document  # fetched once
    assert hook.get_resource("customers").operation_id == "GetCustomers"
    assert [h["path"] for h in _Capture.seen] == ["/v2/sales?page=1&limit=25", "/v2/openapi.json"]
    for headers in _Capture.seen:
        assert headers["x-api-key"] == API_KEY
        assert "x-custom" not in headers and "authorization" not in headers
    assert hook.requests_sent == 2


def test_a_document_url_on_another_host_never_receives_the_key(capture, other_host, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_REVCENT_DEFAULT", json.dumps(
        {"conn_type": "revcent", "host": capture, "password": API_KEY,
         "extra": {"openapi_spec": other_host + "/docs/openapi.json"}}))
    hook = RevCentHook()
    assert hook.get_openapi_document() == load_spec()
    assert [h["path"] for h in _Capture.seen] == ["/docs/openapi.json"]
    assert "x-api-key" not in _Capture.seen[0] and API_KEY not in json.dumps(_Capture.seen)
    assert _Capture.seen[0]["host"] == other_host.removeprefix("http://")
