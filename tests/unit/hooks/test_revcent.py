"""RevCentHook with fakes (no network, no database): construction, settings, and the one request path."""

from __future__ import annotations

import io
import json
import warnings
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from airflow.sdk import BaseHook

from airflow_revcent.api.options import RequestOptions
from airflow_revcent.exceptions import (
    RevCentAuthError,
    RevCentCancelled,
    RevCentConfigError,
    RevCentRetryBudgetExceeded,
)
from airflow_revcent.hooks.revcent import RevCentHook
from airflow_revcent.windows import Window

KEY = "rc-unit-key-0123456789"


def page_body(total: int = 1, page: int = 1, per_page: int = 25) -> bytes:
    results = [{"id": f"c{i}", "created_date_unix": 100 + i}
               for i in range((page - 1) * per_page, min(total, page * per_page))]
    return json.dumps({"code": 1, "current_page": page, "total_count": total,
                       "total_pages": -(-total // per_page), "results": results}).encode()


class FakeResponse:
    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status_code, self.headers = status, headers or {}
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
        self.sent.append((url, dict(params)))
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


def test_the_hook_is_a_plain_base_hook_with_no_request_path_around_the_choke_point():
    assert issubclass(RevCentHook, BaseHook)
    assert not hasattr(RevCentHook, "run")  # HttpHook.run sent requests around the pacer and the retries
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
    hook._session = lambda: session  # type: ignore[method-assign,assignment,return-value]  # the fake session
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
