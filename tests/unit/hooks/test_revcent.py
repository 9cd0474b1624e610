"""RevCentHook with fakes (no network, no database): construction, settings, and the one request path."""

from __future__ import annotations

import io
import json
import warnings
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import requests
import tenacity
from airflow.models.connection import Connection
from airflow.providers.http.hooks import http as http_module
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk import BaseHook
from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter

from airflow_revcent.api.options import RequestOptions
from airflow_revcent.api.windows import Window
from airflow_revcent.exceptions import (
    RevCentAPIError,
    RevCentAuthError,
    RevCentCancelled,
    RevCentConfigError,
    RevCentDataError,
    RevCentRequestError,
    RevCentRetryBudgetExceeded,
)
from airflow_revcent.hooks.revcent import RevCentHook
from airflow_revcent.resources import customers_resource
from airflow_revcent.spec import load_spec

KEY = "rc-unit-key-0123456789"


def page_body(total: int = 1, page: int = 1, per_page: int = 25) -> bytes:
    results = [{"id": f"c{i}", "created_date_unix": 100 + i}
               for i in range((page - 1) * per_page, min(total, page * per_page))]
    return json.dumps({"code": 1, "current_page": page, "total_count": total,
                       "total_pages": -(-total // per_page), "results": results}).encode()


class FakeResponse(requests.Response):
    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.status_code, self.headers = status, headers or {}  # type: ignore[assignment]
        stream = io.BytesIO(body)
        self.raw = SimpleNamespace(read1=lambda n, decode_content=True: stream.read(n))

    def close(self) -> None:
        pass


class FakeSession:
    """Answers each GET with the next of ``answers`` (a response, an exception, or a function of the params)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def get(self, url: str, params: Any, **_kw: Any) -> FakeResponse:
        self.sent.append((url, dict(params or {})))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer(dict(params)) if callable(answer) else answer


class FakePacer:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def acquire(self) -> float:
        self.calls.append("acquire")
        return 1.0

    def on_success(self, sent_at: float) -> None:
        self.calls.append("success")

    def on_throttle(self, sent_at: float, retry_after: float | None) -> None:
        self.calls.append(f"throttle {retry_after}")


@pytest.fixture
def connection(monkeypatch):
    """The connection every hook reads: change ``conn.extra_dejson`` etc. before the hook reads it."""
    conn = SimpleNamespace(host="http://127.0.0.1:1", port=None, password=KEY, login=None,
                           extra_dejson={"retry_initial_backoff": 0, "max_requests_per_second": 0})
    lookups: list[str] = []

    def get_connection(conn_id: str) -> Any:
        lookups.append(conn_id)
        if conn_id != "revcent_default":
            raise type("AirflowNotFoundException", (Exception,), {})(conn_id)
        return conn

    monkeypatch.setattr(RevCentHook, "get_connection", staticmethod(get_connection))
    conn.lookups = lookups
    return conn


def wired(*answers: Any, **kw: Any) -> tuple[RevCentHook, FakeSession, FakePacer]:
    hook = RevCentHook(**kw)
    session, pacer = FakeSession(*answers), FakePacer()
    hook._local.session = session
    hook.__dict__["pacer"] = pacer
    return hook, session, pacer


def test_the_hook_is_an_http_hook_whose_request_methods_are_all_its_own():
    assert issubclass(RevCentHook, HttpHook) and issubclass(RevCentHook, BaseHook)
    # Every HttpHook method that builds a session or sends a request is overridden (none inherited).
    for name in ("run", "run_and_check", "run_with_advanced_retry", "get_conn", "url_from_endpoint",
                 "_set_base_url", "test_connection"):
        assert name in vars(RevCentHook), name
    assert (RevCentHook.conn_type, RevCentHook.default_conn_name, RevCentHook.conn_name_attr,
            RevCentHook.hook_name) == ("revcent", "revcent_default", "revcent_conn_id", "RevCent")


def test_the_constructor_reads_nothing(connection):
    hook = RevCentHook("revcent_nope", options=RequestOptions(max_concurrency=2))
    assert connection.lookups == [] and hook.requests_sent == 0
    with pytest.raises(RevCentConfigError, match="'revcent_nope' does not exist"):
        _ = hook.settings


def test_options_win_over_the_extras_without_a_warning(connection):
    connection.extra_dejson |= {"max_concurrency": 8, "read_timeout": 5}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hook = RevCentHook(options=RequestOptions(max_concurrency=2))
    assert (hook.settings.max_concurrency, hook.settings.read_timeout) == (2, 5.0)
    assert hook.settings.base_url == "http://127.0.0.1:1" and connection.lookups == ["revcent_default"]


def test_the_old_keyword_arguments_still_work_with_a_deprecation_warning(connection):
    with pytest.warns(DeprecationWarning, match=r"RevCentHook\(max_concurrency=\.\.\., read_timeout=\.\.\.\) is "
                                                r"deprecated: pass options=RequestOptions\("):
        hook = RevCentHook(max_concurrency=3, read_timeout=2.5, options=RequestOptions(stall_timeout=9))
    assert hook.options == RequestOptions(max_concurrency=3, read_timeout=2.5, stall_timeout=9)
    assert (hook.settings.max_concurrency, hook.settings.read_timeout, hook.stall_seconds) == (3, 2.5, 9.0)


def test_a_bad_old_keyword_argument_is_refused_naming_it():
    with (pytest.raises(RevCentConfigError, match="max_concurrency=0"),
          pytest.warns(DeprecationWarning, match="options=")):
        RevCentHook(max_concurrency=0)


def test_the_session_sends_only_the_key_and_the_settings(connection):
    connection.extra_dejson |= {"verify": "false", "X-Custom": "leak?"}
    session = RevCentHook().get_conn()
    assert session.headers["x-api-key"] == KEY and "X-Custom" not in session.headers
    assert session.verify is False


def test_one_page_is_paced_counted_and_sent_with_its_query(connection):
    hook, session, pacer = wired(FakeResponse(200, page_body(total=3)))
    page = hook.get_customers_page(100, 200, 1, limit=5)
    assert (page.total_count, len(page.customers)) == (3, 3) and page.received_at > 0
    assert session.sent == [("http://127.0.0.1:1/v2/customers",
                             {"date_start": 100, "date_end": 200, "page": 1, "limit": 5})]
    assert pacer.calls == ["acquire", "success"]
    assert hook.requests_sent == 1


def test_transient_failures_are_retried_through_the_pacer_and_counted(connection):
    hook, session, pacer = wired(FakeResponse(503, b""), requests.ConnectionError("reset"),
                                 FakeResponse(429, b"", {"Retry-After": "0"}), FakeResponse(200, page_body()))
    assert hook.get_customers_page(100, 200, 1).total_count == 1
    assert hook.requests_sent == len(session.sent) == 4
    assert pacer.calls == ["acquire", "acquire", "acquire", "throttle 0.0", "acquire", "success"]


def test_retries_and_429_answers_are_counted_for_the_task_log(connection):
    hook, session, _ = wired(FakeResponse(503, b""), FakeResponse(429, b"", {"Retry-After": "0"}),
                             FakeResponse(429, b""), FakeResponse(200, page_body()))
    assert (hook.retries, hook.throttled) == (0, 0)
    assert hook.get_customers_page(100, 200, 1).total_count == 1
    assert (hook.requests_sent, hook.retries, hook.throttled) == (len(session.sent), 3, 2) == (4, 3, 2)
    hook, _, _ = wired(FakeResponse(401, b""))
    with pytest.raises(RevCentAuthError):
        hook.get_customers_page(100, 200, 1)
    assert (hook.requests_sent, hook.retries, hook.throttled) == (1, 0, 0)


def test_a_rejected_key_fails_at_once(connection):
    hook, _, _ = wired(FakeResponse(401, b""))
    with pytest.raises(RevCentAuthError, match="rejected the API key"):
        hook.get_customers_page(100, 200, 1)
    assert hook.requests_sent == 1


def test_the_retry_budget_of_the_connection_ends_the_retries(connection):
    connection.extra_dejson |= {"retry_max_attempts": 3}
    hook, _, _ = wired(FakeResponse(503, b""))
    with pytest.raises(RevCentRetryBudgetExceeded, match=r"after 3 attempts.*budget: 3 attempts"):
        hook.get_customers_page(100, 200, 1)
    assert hook.requests_sent == 3


def test_a_request_error_never_quotes_the_key(connection):
    hook, _, _ = wired(requests.exceptions.InvalidHeader(f"x-api-key: {KEY}"))
    with pytest.raises(Exception, match="could not be sent: InvalidHeader") as info:
        hook.get_customers_page(100, 200, 1)
    assert KEY not in str(info.value)


def test_a_cancelled_hook_sends_nothing(connection):
    hook, session, pacer = wired(FakeResponse(200, page_body()))
    hook.cancel()
    with pytest.raises(RevCentCancelled):
        hook.get_customers_page(100, 200, 1)
    assert session.sent == [] and pacer.calls == [] and hook.requests_sent == 0


def test_a_page_size_beyond_the_api_limit_is_refused_before_sending(connection):
    hook, session, _ = wired(FakeResponse(200, page_body()))
    with pytest.raises(RevCentConfigError, match=r"page_size=26 is outside 1\.\.25"):
        hook.get_customers_page(100, 200, 1, limit=26)
    assert session.sent == []


def test_reading_windows_sends_every_page_through_the_choke_point(connection):
    connection.extra_dejson |= {"max_concurrency": 1}  # one thread: the fake session is that thread's
    hook = RevCentHook()
    session, pacer = FakeSession(lambda params: FakeResponse(200, page_body(total=7, page=params["page"],
                                                                            per_page=params["limit"]))), FakePacer()
    hook.__dict__["pacer"] = pacer
    hook._session = lambda keyed=True: session  # type: ignore[method-assign,assignment,return-value]  # the fake session
    got = [c["id"] for c in hook.iter_customers(Window(100, 200), page_size=3)]
    assert sorted(got) == [f"c{i}" for i in range(7)]
    assert [p["page"] for _, p in session.sent] == [1, 2, 3]
    assert hook.requests_sent == 3 and pacer.calls.count("acquire") == 3


def test_the_connection_test_goes_through_the_choke_point_with_a_short_budget(connection):
    hook, session, _ = wired(FakeResponse(503, b""))
    ok, message = hook.test_connection()
    assert not ok and "Gave up" in message and "after 2 attempts" in message
    assert hook.requests_sent == len(session.sent) == 2
    hook, _, _ = wired(FakeResponse(200, page_body(total=4)))
    assert hook.test_connection() == (True, "Connected to http://127.0.0.1:1: 4 customers created in the last day.")


# -- HttpHook's quirks, one test each ----------------------------------------------------------------------
def test_quirk_no_connection_extra_ever_becomes_a_header(connection):
    # HttpHook sends every extra it does not know as a header: here an extra named like a header is not sent.
    connection.extra_dejson |= {"X-Custom": "leak?", "Authorization": "Basic leak", "max_concurrency": 3}
    as_headers, _ = http_module._process_extra_options_from_connection(connection, {})
    assert {"X-Custom", "Authorization", "max_concurrency"} <= set(as_headers)  # the quirk, as HttpHook has it
    hook = RevCentHook()
    for session in (hook.get_conn(), hook._session(), hook._session(keyed=False)):
        names = {name.lower() for name in session.headers}
        assert names <= {"x-api-key", "accept", "user-agent", "accept-encoding", "connection"}
        assert "leak" not in " ".join(map(str, session.headers.values()))
    assert hook.get_conn().headers["x-api-key"] == KEY
    assert "x-api-key" not in hook._session(keyed=False).headers  # the session for other hosts has no key


def test_quirk_a_login_is_never_sent_and_the_password_is_the_key(connection):
    # HttpHook sends basic auth (login:password) only when login is set, and ignores a password alone.
    connection.login = "someone"
    assert HttpHook()._extract_auth(connection) is not None  # the quirk: HttpHook would send login:password
    session = RevCentHook().get_conn()
    assert session.auth is None and "Authorization" not in session.headers
    assert session.headers["x-api-key"] == KEY


def test_quirk_each_get_conn_is_a_new_session_on_the_one_keep_alive_adapter(connection):
    connection.extra_dejson |= {"max_concurrency": 6}
    hook = RevCentHook()
    first, second = hook.get_conn(), hook.get_conn()
    assert first is not second
    adapter: Any = hook._adapter
    assert isinstance(adapter, TCPKeepAliveAdapter)
    assert adapter._pool_maxsize == 6 and adapter.max_retries.total == 0  # the retry policy retries, not urllib3
    assert first.get_adapter("https://a.test") is second.get_adapter("http://b.test") is adapter
    assert hook._session() is hook._session()  # one per thread on the request path


def test_quirk_run_with_advanced_retry_is_retried_by_the_hooks_budget_not_tenacity(connection):
    hook, session, pacer = wired(FakeResponse(503, b""), FakeResponse(503, b""), FakeResponse(200, b'{"a": 1}'))
    # tenacity would stop after one attempt; the hook's own budget retries the 503s.
    response = hook.run_with_advanced_retry({"stop": tenacity.stop_after_attempt(1)}, "/v2/sales")
    assert response.json() == {"a": 1}
    assert hook.requests_sent == len(session.sent) == 3 and hook.retries == 2
    assert pacer.calls.count("acquire") == 3


def test_quirk_the_uri_form_with_an_https_type_keeps_https(connection):
    # HttpHook makes a host without a scheme http:// (the URI's scheme becomes the connection type).
    uri_conn = Connection(conn_id="revcent_default", uri=f"https://:{KEY}@api.example.test")
    http_hook = HttpHook()
    http_hook._set_base_url(uri_conn)
    assert http_hook.base_url == "http://api.example.test"  # the quirk, as HttpHook has it
    connection.host, connection.password = uri_conn.host, uri_conn.password
    hook = RevCentHook()
    assert hook.settings.base_url == "https://api.example.test"
    hook._set_base_url(uri_conn)
    assert hook.base_url == "https://api.example.test"
    assert hook.url_from_endpoint("v2/sales") == "https://api.example.test/v2/sales"


# -- run() and run_and_check() take the one request path ----------------------------------------------------
def test_run_is_paced_retried_counted_and_returns_the_read_response(connection):
    hook, session, pacer = wired(FakeResponse(429, b"", {"Retry-After": "0"}), FakeResponse(200, b'{"code": 1}'))
    response = hook.run("/v2/sales", data={"page": 2})
    assert response.status_code == 200 and response.json() == {"code": 1}
    assert session.sent == [("http://127.0.0.1:1/v2/sales", {"page": 2})] * 2
    assert pacer.calls == ["acquire", "throttle 0.0", "acquire", "success"]
    assert (hook.requests_sent, hook.throttled) == (2, 1)


def test_run_classifies_answers_like_pages(connection):
    hook, _, _ = wired(FakeResponse(401, b""))
    with pytest.raises(RevCentAuthError):
        hook.run("/v2/sales")
    hook, _, _ = wired(FakeResponse(200, b'{"code": 0, "error_code": "invalid_parameter", "message": "bad"}'))
    with pytest.raises(RevCentRequestError, match="error envelope"):
        hook.run("/v2/sales")
    assert hook.requests_sent == 1


def test_run_refuses_what_would_bypass_the_path_or_move_the_key(connection):
    hook, session, _ = wired(FakeResponse(200, b"{}"))
    with pytest.raises(RevCentConfigError, match="API's host"):
        hook.run("https://elsewhere.test/v2/sales")
    with pytest.raises(RevCentConfigError, match="extra_options"):
        hook.run("/v2/sales", extra_options={"timeout": 1, "verify": False})
    with pytest.raises(RevCentConfigError, match="x-api-key"):
        hook.run("/v2/sales", headers={"X-API-Key": "another"})
    with pytest.raises(RevCentConfigError, match="json"):
        hook.run("/v2/sales", json={"a": 1})
    hook.method = "POST"
    with pytest.raises(RevCentConfigError, match="GET requests only"):
        hook.run("/v2/sales")
    assert session.sent == [] and hook.requests_sent == 0


def test_run_and_check_sends_a_prepared_get_through_the_path(connection):
    hook, session, _ = wired(FakeResponse(503, b""), FakeResponse(200, b"{}"))
    prepared = requests.Request("GET", "http://127.0.0.1:1/v2/tax?page=1", headers={"X-Leak": "1"}).prepare()
    assert hook.run_and_check(requests.Session(), prepared, {}).status_code == 200
    assert session.sent[0][0] == "http://127.0.0.1:1/v2/tax?page=1" and hook.requests_sent == 2
    elsewhere = requests.Request("GET", "https://elsewhere.test/x").prepare()
    with pytest.raises(RevCentConfigError, match="API's host"):
        hook.run_and_check(requests.Session(), elsewhere, {})


def test_a_cancelled_hook_runs_nothing(connection):
    hook, session, _ = wired(FakeResponse(200, b"{}"))
    hook.cancel()
    with pytest.raises(RevCentCancelled):
        hook.run("/v2/sales")
    assert session.sent == []


# -- RevCent's OpenAPI document --------------------------------------------------------------------------
DOCUMENT = {"openapi": "3.1.0", "paths": {}}


def test_the_document_is_fetched_from_the_api_once_per_hook(connection):
    hook, session, pacer = wired(FakeResponse(503, b""), FakeResponse(200, json.dumps(DOCUMENT).encode()))
    assert hook.get_openapi_document() == DOCUMENT
    assert hook.get_openapi_document() is hook.get_openapi_document()
    assert [url for url, _ in session.sent] == ["http://127.0.0.1:1/v2/openapi.json"] * 2  # one retry, then cached
    assert pacer.calls.count("acquire") == 2 and hook.requests_sent == 2


def test_a_document_on_another_host_never_gets_the_key(connection):
    connection.extra_dejson |= {"openapi_spec": "https://docs.example.test/openapi.json?v=3"}
    hook, keyed, _ = wired(FakeResponse(200, b"{}"))
    plain = FakeSession(FakeResponse(200, json.dumps(DOCUMENT).encode()))
    hook._local.plain_session = plain
    assert hook.get_openapi_document() == DOCUMENT
    assert keyed.sent == [] and plain.sent == [("https://docs.example.test/openapi.json?v=3", {})]


def test_a_document_url_on_the_apis_own_host_gets_the_key(connection):
    hook, keyed, _ = wired(FakeResponse(200, json.dumps(DOCUMENT).encode()),
                           openapi_spec="http://127.0.0.1:1/pinned/openapi.json")
    assert hook.get_openapi_document() == DOCUMENT
    assert keyed.sent == [("http://127.0.0.1:1/pinned/openapi.json", {})]


def test_a_bad_openapi_spec_argument_fails_in_the_constructor(connection):
    for bad in ("", "ftp://host/openapi.json"):
        with pytest.raises(RevCentConfigError, match="openapi_spec"):
            RevCentHook(openapi_spec=bad)
    assert connection.lookups == []


def test_a_document_file_is_read_without_a_request(connection, tmp_path):
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(DOCUMENT))
    connection.extra_dejson |= {"openapi_spec": str(path)}
    hook, session, _ = wired(FakeResponse(200, b"{}"))
    assert hook.get_openapi_document() == DOCUMENT and session.sent == []
    hook, _, _ = wired(FakeResponse(200, b"{}"), openapi_spec=str(tmp_path / "missing.json"))
    with pytest.raises(RevCentConfigError, match=r"missing\.json.*exists on every worker"):
        hook.get_openapi_document()


def test_a_missing_document_is_a_clear_error(connection):
    hook, _, _ = wired(FakeResponse(404, b"not here"))
    with pytest.raises(RevCentRequestError, match=r"refused the OpenAPI document request .*404"):
        hook.get_openapi_document()
    hook, _, _ = wired(FakeResponse(200, b"[1, 2]"))
    with pytest.raises(RevCentAPIError, match="not an OpenAPI document"):
        hook.get_openapi_document()


def test_customers_falls_back_to_the_packaged_operation_when_no_document_can_be_had(connection):
    hook, _, _ = wired(FakeResponse(404, b""))
    resource = hook.get_resource("customers")
    assert resource.path == "/v2/customers" and resource.operation_id == "GetCustomers"
    hook, _, _ = wired(FakeResponse(404, b""))
    with pytest.raises(RevCentConfigError, match=r"'sales' needs RevCent's OpenAPI document.*HTTP 404.*openapi_spec"):
        hook.get_resource("sales")


def test_a_pinned_document_that_cannot_be_read_is_never_replaced(connection, tmp_path):
    hook, _, _ = wired(FakeResponse(200, b"{}"), openapi_spec=str(tmp_path / "gone.json"))
    with pytest.raises(RevCentConfigError, match=r"gone\.json"):
        hook.get_resource("customers")


def test_a_rejected_key_on_the_document_is_an_auth_error_not_a_fallback(connection):
    hook, session, _ = wired(FakeResponse(401, b'{"code": 0, "error_code": "unauthorized"}'))
    with pytest.raises(RevCentAuthError, match="rejected the API key"):
        hook.get_resource("customers")
    assert len(session.sent) == 1  # not retried, and no list request follows


@pytest.mark.parametrize(("answer", "why"), [
    (FakeResponse(200, json.dumps(DOCUMENT).encode()), "has no list resource 'customers'"),
    (FakeResponse(200, b'"a string"'), "not an OpenAPI document"),
    (FakeResponse(404, b"not here"), "HTTP 404"),
])
def test_customers_falls_back_to_the_packaged_operation_saying_why(connection, monkeypatch, answer, why):
    warned: list[str] = []
    monkeypatch.setattr(RevCentHook, "log", property(lambda self: SimpleNamespace(
        info=lambda *a: None, warning=lambda message, *args: warned.append(message % args))))
    hook, _, _ = wired(answer)
    assert hook.get_resource("customers") == customers_resource()
    [warning] = warned
    assert why in warning and "packaged" in warning


def test_customers_come_from_the_live_document_when_it_has_them(connection):
    document = load_spec()
    document["description"] = "GetCustomers. The date range cannot exceed a 30 day period."
    hook, _, _ = wired(FakeResponse(200, json.dumps(document).encode()))
    assert hook.get_resource("customers").max_window == timedelta(days=30)  # not the packaged 90 days


def test_a_pinned_document_without_customers_is_an_error(connection, tmp_path):
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(DOCUMENT))
    hook, _, _ = wired(FakeResponse(200, b"{}"), openapi_spec=str(path))
    with pytest.raises(RevCentConfigError, match="has no list resource 'customers'"):
        hook.get_resource("customers")


def test_a_worker_parses_the_same_document_once_and_fetches_it_once_per_hook(connection, monkeypatch):
    from airflow_revcent.api import documents

    documents.clear_document_cache()
    parsed: list[int] = []
    real = documents.parse_document
    def counting(*args: Any, **kwargs: Any) -> dict[str, Any]:
        parsed.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr("airflow_revcent.hooks.revcent.parse_document", counting)
    body = json.dumps(load_spec()).encode()
    first, session_1, _ = wired(FakeResponse(200, body))
    second, session_2, _ = wired(FakeResponse(200, body))
    assert first.get_resource("customers") is second.get_resource("customers")
    assert len(session_1.sent) == len(session_2.sent) == 1  # each task fetches it
    assert parsed == [1]  # the second hook's bytes were known: not parsed again
    changed, _, _ = wired(FakeResponse(200, body + b" "))
    assert changed.get_resource("customers") == first.get_resource("customers")
    assert parsed == [1, 1]  # other bytes: parsed


def test_iter_pages_skip_invalid_still_works_with_a_deprecation_warning(connection):
    from airflow.exceptions import AirflowProviderDeprecationWarning

    good = {"id": "a" * 20, "created_date_unix": 10}
    page = {"code": 1, "current_page": 1, "total_count": 2, "total_pages": 1, "current_count": 2,
            "results": [{"id": None, "created_date_unix": 5}, good]}

    def read(**kwargs: Any) -> list[dict[str, Any]]:
        hook, session, _ = wired(FakeResponse(200, json.dumps(page).encode()))
        hook._session = lambda keyed=True: session  # type: ignore[method-assign,assignment,return-value]  # every thread's
        return [c for batch in hook.iter_pages([Window(0, 86400)], **kwargs) for c in batch.customers]

    with pytest.warns(AirflowProviderDeprecationWarning, match="on_invalid_record='keep'"):
        assert read(skip_invalid=True) == [good]
    assert read(on_invalid_record="keep") == [good]
    with pytest.raises(RevCentDataError, match="on_invalid_record='keep' to skip"):
        read()
    with pytest.raises(RevCentConfigError, match="on_invalid_record='skip' must be one of 'fail', 'keep'"):
        read(on_invalid_record="skip")
