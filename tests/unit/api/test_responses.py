"""What one answer of the API is (error classification), base URL rules and Retry-After."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from airflow_revcent.api.responses import base_url_from_host, parse_customers_response, parse_retry_after
from airflow_revcent.exceptions import (
    RevCentAPIError,
    RevCentAuthError,
    RevCentConfigError,
    RevCentRequestError,
    RevCentTransientError,
)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        (None, None, "https://api.revcent.com"),
        ("", None, "https://api.revcent.com"),
        ("api.revcent.com", None, "https://api.revcent.com"),
        ("https://api.revcent.com/", None, "https://api.revcent.com"),
        ("https://api.revcent.com/v2", None, "https://api.revcent.com"),
        ("http://127.0.0.1:8089", None, "http://127.0.0.1:8089"),
        ("127.0.0.1", 8089, "https://127.0.0.1:8089"),
        ("http://localhost", 8089, "http://localhost:8089"),
        ("https://proxy.example/revcent", None, "https://proxy.example/revcent"),
    ],
)
def test_base_url_rules(host, port, expected):
    assert base_url_from_host(host, port) == expected


@pytest.mark.parametrize("host", ["ftp://api.revcent.com", "https://"])
def test_bad_hosts_are_refused(host):
    with pytest.raises(RevCentConfigError, match="not an http"):
        base_url_from_host(host)


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)


def body(**kw) -> bytes:
    return json.dumps(kw).encode()


OK = body(code=1, current_page=2, total_count=30, total_pages=2, current_count=5, results=[{"id": "x"}])


def test_success_envelope_is_a_page():
    page = parse_customers_response(200, OK)
    assert (page.current_page, page.total_count, page.total_pages, page.customers) == (2, 30, 2, [{"id": "x"}])


ERROR = body(code=0, error_code="invalid_range", message="date range too long", result="error")


@pytest.mark.parametrize(
    ("status", "content", "headers", "kind", "text"),
    [
        (200, ERROR, {}, RevCentRequestError, "refused.*error envelope despite HTTP 200.*invalid_range"),
        (200, body(code=0, error_code="internal_error", message="try again"), {}, RevCentTransientError,
         "error envelope despite HTTP 200.*internal_error"),
        (200, body(code=0, error_code="invalid_api_key", message="The API key is not valid"), {}, RevCentAuthError,
         "rejected the API key.*error envelope despite HTTP 200"),
        (200, body(code=0, error_code="unauthorized", message="x"), {}, RevCentAuthError, "password field"),
        (200, body(code=0, error_code="error", message="Invalid API Key"), {}, RevCentAuthError, "Live or Test"),
        (200, OK[: len(OK) // 2], {}, RevCentTransientError, "not JSON"),
        (200, b"<html>gateway</html>", {}, RevCentTransientError, "not JSON"),
        (200, body(code=1, results=[]), {}, RevCentAPIError, "not the documented envelope"),
        (429, ERROR, {"Retry-After": "2"}, RevCentTransientError, "throttled"),
        (500, ERROR, {}, RevCentTransientError, "HTTP 500.*invalid_range.*date range too long"),
        (502, b"<html>bad gateway</html>", {}, RevCentTransientError, "HTTP 502"),
        (503, b"", {}, RevCentTransientError, "HTTP 503"),
        (504, b"", {}, RevCentTransientError, "HTTP 504"),
        (408, b"", {}, RevCentTransientError, "HTTP 408"),
        (401, body(code=0, error_code="unauthorized", message="bad key"), {}, RevCentAuthError, "API key"),
        (403, b"", {}, RevCentAuthError, "password field"),
        (400, ERROR, {}, RevCentRequestError, "refused.*HTTP 400.*invalid_range.*the query was"),
        (404, b"", {}, RevCentRequestError, "API root"),
    ],
)
def test_error_classification(status, content, headers, kind, text):
    with pytest.raises(kind, match=text) as info:
        parse_customers_response(status, content, headers, what="window X, page 3")
    assert type(info.value) is kind
    assert info.value.status == status


def test_429_carries_retry_after_and_envelope_fields():
    with pytest.raises(RevCentTransientError) as info:
        parse_customers_response(429, ERROR, {"Retry-After": "7"})
    assert info.value.retry_after == 7.0
    assert info.value.error_code == "invalid_range"
    assert info.value.api_message == "date range too long"


def test_a_lone_surrogate_is_replaced_and_reported_by_customer_and_path():
    content = (b'{"code":1,"current_page":1,"total_count":2,"total_pages":1,"results":['
               b'{"id":"A","first_name":"Zo\\u00eb \\ud83d!","notes":[{"text":"ok \\ud83d\\ude80"}],'
               b'"k\\udc00":"v"},{"id":"B","notes":[{"text":"\\ude80x"}]}]}')
    page = parse_customers_response(200, content)
    first, second = page.customers
    assert first["first_name"] == "Zo\u00eb \ufffd!"  # the rest of the string intact
    assert first["notes"][0]["text"] == "ok \U0001f680"  # a valid pair is one character, untouched
    assert first["k\ufffd"] == "v"
    assert second["notes"][0]["text"] == "\ufffdx"
    assert sorted(page.repairs) == [("A", "first_name"), ("A", "k\ufffd"), ("B", "notes[].text")]


def test_numbers_are_read_as_exact_decimals():
    content = (b'{"code":1,"current_page":1,"total_count":1,"total_pages":1,"results":[{"id":"A",'
               b'"a":12345678901234567890.12,"b":1e-7,"c":33.333333333333336,"d":9223372036854775808}]}')
    (customer,) = parse_customers_response(200, content).customers
    assert customer["a"] == Decimal("12345678901234567890.12")
    assert customer["b"] == Decimal("1E-7") and customer["c"] == Decimal("33.333333333333336")
    assert customer["d"] == 2**63


@pytest.mark.parametrize("content", [OK[:-1], b'{"code":1,"results":[NaN]}', b'{"code":1, "x": "\xff"}'])
def test_a_cut_or_garbled_body_stays_transient(content):
    with pytest.raises(RevCentTransientError, match="not JSON"):
        parse_customers_response(200, content)


def test_a_list_envelope_without_totals_is_a_page_with_none_totals_but_customers_must_have_them():
    from airflow_revcent.api.responses import parse_list_response

    plain = body(code=1, current_count=1, current_page=1, results=[{"id": "t1", "created_date_unix": 5}])
    page = parse_list_response(200, plain, require_totals=False, path="/v2/tax")
    assert (page.total_count, page.total_pages, page.current_page) == (None, None, 1)
    with pytest.raises(RevCentAPIError, match="not the documented envelope"):
        parse_customers_response(200, plain)
    # Present totals must still be integers.
    with pytest.raises(RevCentAPIError, match="not the documented envelope"):
        parse_list_response(200, body(code=1, current_page=1, total_count="3", total_pages=1, results=[]),
                            require_totals=False)


def test_a_404_names_the_resources_path():
    from airflow_revcent.api.responses import parse_list_response

    with pytest.raises(RevCentRequestError, match="RevCent has no /v2/sales at this host"):
        parse_list_response(404, b"", path="/v2/sales", require_totals=False)
