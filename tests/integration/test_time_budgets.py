"""Time budgets and error envelopes against real HTTP servers: a server that trickles bytes, one that
holds requests open, and a key rejected inside a code 0 envelope with HTTP 200."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_revcent.api.windows import Window
from airflow_revcent.exceptions import RevCentAuthError, RevCentRetryBudgetExceeded, RevCentStalledError
from airflow_revcent.hooks.revcent import RevCentHook

from .conftest import API_KEY

PAGE = json.dumps({"code": 1, "current_page": 1, "total_count": 0, "total_pages": 0, "current_count": 0,
                   "results": []}).encode()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., dict[str, int]]]:
    """Start a server answering with ``respond(handler)``; the RevCent connection points at it."""
    servers: list[ThreadingHTTPServer] = []
    stop = threading.Event()

    def start(respond: Callable[[BaseHTTPRequestHandler, threading.Event], None], **extra: float) -> dict[str, int]:
        counts = {"requests": 0}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                counts["requests"] += 1
                respond(self, stop)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        monkeypatch.setenv("AIRFLOW_CONN_REVCENT_DEFAULT", json.dumps({
            "conn_type": "revcent", "host": f"http://127.0.0.1:{server.server_address[1]}", "password": API_KEY,
            "extra": {"max_requests_per_second": 0, "retry_initial_backoff": 0.01, **extra}}))
        return counts

    yield start
    stop.set()
    for server in servers:
        server.shutdown()


def trickle(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(PAGE)))
    handler.end_headers()
    for byte in PAGE:  # one byte every 0.2 s: each read is well within read_timeout
        if stop.wait(0.2):
            return
        try:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
        except OSError:
            return


def test_a_server_that_trickles_bytes_cannot_hold_a_request_past_its_deadline(api):
    counts = api(trickle, read_timeout=5, request_timeout=1, retry_max_attempts=2)
    started = time.monotonic()
    with pytest.raises(RevCentRetryBudgetExceeded, match=r"within request_timeout=1 s .*sending too slowly"):
        RevCentHook().get_customers_page(0, 86400, 1)
    assert time.monotonic() - started < 6  # two attempts of about a second each, not 30 s of trickle
    assert counts["requests"] == 2


def test_a_run_that_gets_no_page_fails_naming_the_window_and_page(api):
    def hold(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        stop.wait(30)

    api(hold, read_timeout=30, stall_timeout=1.5)
    window = Window(0, 86400)
    started = time.monotonic()
    waiting = re.escape(f"no page arrived for 1.5 s while waiting on window {window} page 1")
    with pytest.raises(RevCentStalledError, match=waiting + ".*stall_timeout"):
        list(RevCentHook().iter_pages([window]))
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("envelope", [
    {"code": 0, "error_code": "invalid_api_key", "message": "The API key is invalid", "result": "Error"},
    {"code": 0, "error_code": "unauthorized", "message": "Unauthorized", "result": "Error"},
])
def test_a_key_rejected_in_an_http_200_envelope_fails_at_once(api, envelope):
    def rejected(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        body = json.dumps(envelope).encode()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    counts = api(rejected, retry_max_attempts=8)
    with pytest.raises(RevCentAuthError, match=r"rejected the API key.*despite HTTP 200") as info:
        list(RevCentHook().iter_pages([Window(0, 86400)]))
    assert counts["requests"] == 1  # not retried
    assert API_KEY not in str(info.value)
    ok, message = RevCentHook().test_connection()  # the connection test reads envelopes the same way
    assert not ok and message.startswith("The API key was rejected")
