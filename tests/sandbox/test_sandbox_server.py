"""SandboxServer over real HTTP: envelopes, validation, paging, order, filters, limits."""

from __future__ import annotations

import http.client
import json
import logging
import math
import re
import threading
import time
from typing import Any

import pytest
import requests

from revcent_sandbox import CustomerStore, SandboxServer

pytestmark = pytest.mark.integration  # every test here starts a sandbox server

DAY = 86_400
ID20 = re.compile(r"[0-9A-Za-z]{20}")


def _window(store: CustomerStore, days: int = 30, offset_days: int = 0) -> dict[str, int]:
    start = store.start + offset_days * DAY
    return {"date_start": start, "date_end": start + days * DAY}


def _envelope_keys(spec: dict[str, Any], status: str) -> set[str]:
    return set(spec["responses"][status]["content"]["application/json"]["schema"]["properties"])


def _all_pages(call: Any, server: SandboxServer, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Walk pages from the server's page base until an empty page."""
    out: list[dict[str, Any]] = []
    page = server.page_base
    while True:
        body = call(server, page=page, limit=limit, **params).json()
        assert body["code"] == 1
        if not body["results"]:
            return out
        out.extend(body["results"])
        page += 1


# --- envelopes ---------------------------------------------------------------------------------


def test_success_envelope(server: SandboxServer, store: CustomerStore, call: Any, spec: dict[str, Any]) -> None:
    response = call(server, page=1, limit=25, **_window(store))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert int(response.headers["Content-Length"]) == len(response.content)
    body = response.json()
    assert set(body) == _envelope_keys(spec, "200")
    assert body["code"] == 1
    assert ID20.fullmatch(body["api_call_id"])
    assert abs(body["api_call_unix"] - time.time()) < 60
    window = _window(store)
    total = len(store.query(window["date_start"], window["date_end"], end_inclusive=True))
    assert body["total_count"] == total > 25
    assert body["total_pages"] == math.ceil(total / 25)
    assert body["current_page"] == 1
    assert body["current_count"] == len(body["results"]) == 25


def test_unauthorized(server: SandboxServer, store: CustomerStore, call: Any, spec: dict[str, Any]) -> None:
    for key in (None, "wrong-key", server.api_key + "x"):
        response = call(server, key=key, page=1, limit=25, **_window(store))
        assert response.status_code == 401
        body = response.json()
        assert set(body) == _envelope_keys(spec, "default")
        assert body["code"] == 0
        assert body["error_code"] == "unauthorized"
        assert ID20.fullmatch(body["api_call_id"])
        assert isinstance(body["api_call_unix"], int)


@pytest.mark.parametrize(
    ("change", "error_code"),
    [
        ({"date_start": None}, "missing_parameter"),
        ({"date_end": None}, "missing_parameter"),
        ({"page": None}, "missing_parameter"),
        ({"limit": None}, "missing_parameter"),
        ({"date_start": "yesterday"}, "invalid_parameter"),
        ({"page": "1.5"}, "invalid_parameter"),
        ({"limit": "ten"}, "invalid_parameter"),
        ({"limit": 0}, "invalid_parameter"),
        ({"limit": 26}, "invalid_parameter"),
        ({"page": 0}, "invalid_parameter"),
        ({"date_end": "START-1"}, "invalid_date_range"),
        ({"date_end": "START+90d+1"}, "invalid_date_range"),
        ({"campaign_filter": "short"}, "invalid_parameter"),
        ({"customer_group_filter": "x" * 21}, "invalid_parameter"),
        ({"product_filter": ""}, "invalid_parameter"),
        ({"status_filter": "Enabled"}, "invalid_parameter"),
        ({"status_filter": ["enabled", "vip"]}, "invalid_parameter"),
        ({"metadata_filter[0][value]": "x"}, "invalid_parameter"),
        ({"metadata_filter[0][name]": "utm_source"}, "invalid_parameter"),
        ({"metadata_filter[name]": "utm_source"}, "invalid_parameter"),
        ({"campaign_filter[]": "x" * 20}, "invalid_parameter"),
    ],
)
def test_validation_errors(
    server: SandboxServer, store: CustomerStore, call: Any, change: dict[str, Any], error_code: str
) -> None:
    params: dict[str, Any] = {
        "date_start": store.start,
        "date_end": store.start + DAY,
        "page": 1,
        "limit": 25,
    }
    for key, value in change.items():
        if value is None:
            del params[key]
        elif value == "START-1":
            params[key] = store.start - 1
        elif value == "START+90d+1":
            params[key] = store.start + 90 * DAY + 1
        else:
            params[key] = value
    response = call(server, **params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 0
    assert body["error_code"] == error_code
    assert body["message"]


def test_exactly_ninety_days_and_equal_bounds_are_allowed(
    server: SandboxServer, store: CustomerStore, call: Any
) -> None:
    assert call(server, date_start=store.start, date_end=store.start + 90 * DAY, page=1, limit=1).ok
    body = call(server, date_start=store.start, date_end=store.start, page=1, limit=1).json()
    assert body["code"] == 1
    assert body["total_count"] >= 3


def test_duplicate_scalar_parameter_is_rejected(server: SandboxServer, store: CustomerStore, http: Any) -> None:
    url = f"{server.url}/v2/customers?date_start={store.start}&date_end={store.end}&page=1&page=2&limit=5"
    response = http.get(url, headers={"x-api-key": server.api_key}, timeout=10)
    assert response.status_code == 400


def test_unknown_paths_are_404(server: SandboxServer, http: Any) -> None:
    for method, path in (("GET", "/v2/customer"), ("GET", "/v2/customers/abc"), ("POST", "/v2/customers")):
        response = http.request(method, f"{server.url}{path}", headers={"x-api-key": server.api_key}, timeout=10)
        assert response.status_code == 404
        body = response.json()
        assert body["code"] == 0
        assert body["error_code"] == "not_found"


# --- paging and order --------------------------------------------------------------------------


def test_pages_cover_the_window_once(server: SandboxServer, store: CustomerStore, call: Any) -> None:
    params = _window(store, days=20)
    results = _all_pages(call, server, limit=7, **params)
    expected = [
        store.customer(i)
        for i in store.query(params["date_start"], params["date_end"], end_inclusive=True, order="desc")
    ]
    assert results == expected
    assert len({c["id"] for c in results}) == len(results)


def test_page_numbers_and_out_of_range(server: SandboxServer, store: CustomerStore, call: Any) -> None:
    params = _window(store, days=10)
    first = call(server, page=1, limit=10, **params).json()
    total, pages = first["total_count"], first["total_pages"]
    assert pages == math.ceil(total / 10) >= 2
    last = call(server, page=pages, limit=10, **params).json()
    assert last["current_page"] == pages
    assert last["current_count"] == len(last["results"]) == total - 10 * (pages - 1)
    beyond = call(server, page=pages + 1, limit=10, **params).json()
    assert beyond["code"] == 1
    assert beyond["results"] == []
    assert beyond["current_count"] == 0
    assert beyond["current_page"] == pages + 1
    assert beyond["total_count"] == total
    far = call(server, page=10**6, limit=10, **params).json()
    assert far["code"] == 1
    assert far["results"] == []


def test_empty_window(server: SandboxServer, store: CustomerStore, call: Any) -> None:
    body = call(server, date_start=store.end + DAY, date_end=store.end + 2 * DAY, page=1, limit=25).json()
    assert body["code"] == 1
    assert body["total_count"] == 0
    assert body["total_pages"] == 0
    assert body["results"] == []


def test_page_base_zero(store: CustomerStore, make_server: Any, call: Any) -> None:
    server = make_server(store, page_base=0)
    params = _window(store, days=10)
    first = call(server, page=0, limit=10, **params).json()
    assert first["current_page"] == 0
    expected = [store.customer(i) for i in store.query(params["date_start"], params["date_end"], end_inclusive=True)]
    assert first["results"] == expected[:10]
    assert call(server, page=1, limit=10, **params).json()["results"] == expected[10:20]
    assert call(server, page=-1, limit=10, **params).status_code == 400
    assert _all_pages(call, server, limit=10, **params) == expected


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_order(store: CustomerStore, make_server: Any, call: Any, order: str) -> None:
    server = make_server(store, order=order)
    results = _all_pages(call, server, limit=25, **_window(store, days=40))
    keys = [(c["created_date_unix"], c["id"]) for c in results]
    assert keys == sorted(keys, reverse=order == "desc")
    assert len({c["created_date_unix"] for c in results}) < len(results), "ties exist in the window"


@pytest.mark.parametrize("end_inclusive", [True, False])
def test_end_inclusive(store: CustomerStore, make_server: Any, call: Any, end_inclusive: bool) -> None:
    server = make_server(store, end_inclusive=end_inclusive, order="asc")
    lo, hi = store.start + 3 * DAY, store.start + 4 * DAY  # both midnights carry a customer
    results = _all_pages(call, server, limit=25, date_start=lo, date_end=hi)
    created = [c["created_date_unix"] for c in results]
    assert created[0] == lo
    assert (hi in created) is end_inclusive
    assert created[-1] == (hi if end_inclusive else hi - 1)


# --- filters -----------------------------------------------------------------------------------


def _ids(results: list[dict[str, Any]]) -> set[str]:
    return {c["id"] for c in results}


def test_status_filter_repeated_keys(server: SandboxServer, store: CustomerStore, call: Any) -> None:
    params = {"date_start": store.start, "date_end": store.start + 90 * DAY}
    everyone = [c for c in store.truth(store.start, store.start + 90 * DAY + 1)]
    got = _all_pages(call, server, limit=25, status_filter=["disabled", "fraud"], **params)
    expected = {
        c["id"] for c in everyone if c["status"] == "Disabled" or c["lifetime_value"]["fraud_detection"]["num"] > 0
    }
    assert _ids(got) == expected
    assert expected
    assert len(expected) < len(everyone)
    blocked = _all_pages(call, server, limit=25, status_filter="blocked", **params)
    assert blocked
    assert all(c["status"] == "Blocked" for c in blocked)


def test_id_filters(server: SandboxServer, store: CustomerStore, call: Any) -> None:
    params = {"date_start": store.start, "date_end": store.start + 90 * DAY}
    everyone = store.truth(store.start, store.start + 90 * DAY + 1)
    campaigns = [store.campaigns[0][0], store.campaigns[1][0]]
    got = _all_pages(call, server, limit=25, campaign_filter=campaigns, **params)
    assert _ids(got) == {c["id"] for c in everyone if c["campaign_id"] in campaigns}
    group = store.customer_groups[2][0]
    got = _all_pages(call, server, limit=25, customer_group_filter=group, **params)
    assert got
    assert all(any(g["id"] == group for g in c["customer_group"]) for c in got)
    product = store.products[0][0]
    got = _all_pages(call, server, limit=25, product_filter=product, **params)
    assert _ids(got) == {c["id"] for c in everyone if any(p["id"] == product for p in c.get("products_purchased", []))}
    # Different filter kinds are ANDed.
    both = _all_pages(call, server, limit=25, product_filter=product, status_filter="enabled", **params)
    assert _ids(both) == {c["id"] for c in got if c["status"] == "Enabled"}


def test_metadata_filter_deep_object(server: SandboxServer, store: CustomerStore, call: Any) -> None:
    params = {"date_start": store.start, "date_end": store.start + 90 * DAY}
    everyone = store.truth(store.start, store.start + 90 * DAY + 1)

    def has(c: dict[str, Any], name: str, value: str | None = None) -> bool:
        return any(m["name"] == name and value in (None, m["value"]) for m in c.get("metadata", []))

    exists = _all_pages(
        call,
        server,
        limit=25,
        **{"metadata_filter[0][name]": "utm_source", "metadata_filter[0][value]": "METADATA_NAME_EXISTS"},
        **params,
    )
    assert _ids(exists) == {c["id"] for c in everyone if has(c, "utm_source")} != set()
    both = _all_pages(
        call,
        server,
        limit=25,
        **{
            "metadata_filter[0][name]": "utm_source",
            "metadata_filter[0][value]": "google",
            "metadata_filter[1][name]": "affiliate_id",
            "metadata_filter[1][value]": "METADATA_NAME_EXISTS",
        },
        **params,
    )
    expected = {c["id"] for c in everyone if has(c, "utm_source", "google") and has(c, "affiliate_id")}
    assert _ids(both) == expected
    assert expected < _ids(exists)


# --- transport behaviour -----------------------------------------------------------------------


def test_keep_alive_and_content_length(server: SandboxServer, store: CustomerStore) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        path = f"/v2/customers?date_start={store.start}&date_end={store.start + DAY}&page=1&limit=5"
        for _ in range(3):
            conn.request("GET", path, headers={"x-api-key": server.api_key})
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200
            assert response.version == 11
            assert int(response.headers["Content-Length"]) == len(body)
            assert response.headers.get("Connection", "").lower() != "close"
        conn.request("GET", "/nowhere")
        response = conn.getresponse()
        assert response.status == 404
        assert int(response.headers["Content-Length"]) == len(response.read())
    finally:
        conn.close()


def test_rate_limit(store: CustomerStore, make_server: Any, call: Any, spec: dict[str, Any]) -> None:
    server = make_server(store, rate_limit=2)
    params = {"page": 1, "limit": 1, **_window(store, days=1)}
    began = time.monotonic()
    responses = [call(server, **params) for _ in range(8)]
    elapsed = time.monotonic() - began
    limited = [r for r in responses if r.status_code == 429]
    assert responses[0].status_code == 200
    # A burst of 2 (the capacity) plus 2 tokens per second of elapsed time may pass.
    assert limited
    assert 8 - len(limited) <= 2 + math.ceil(2 * elapsed)
    for response in limited:
        assert int(response.headers["Retry-After"]) >= 1
        body = response.json()
        assert body["code"] == 0
        assert set(body) == _envelope_keys(spec, "default")
    stats = server.stats
    assert stats.rate_limited == len(limited) == stats.throttled
    assert stats.by_status[200] == 8 - len(limited)
    time.sleep(0.6)
    assert call(server, **params).status_code == 200


def test_latency_and_jitter(store: CustomerStore, make_server: Any, call: Any, record_waits: Any) -> None:
    server = make_server(store, latency_ms=80, jitter_ms=20)
    waits = record_waits(server)
    params = {"page": 1, "limit": 1, **_window(store, days=1)}
    for _ in range(4):
        assert call(server, **params).ok
    # Every answer waits 80 ms give or take 20, a different amount each time (the jitter is seeded).
    assert len(waits) == 4 and len(set(waits)) == 4
    assert all(w is not None and 0.06 <= w <= 0.1 for w in waits), waits


def test_concurrency_is_measured(store: CustomerStore, make_server: Any) -> None:
    server = make_server(store, latency_ms=200)
    statuses: list[int] = []

    def fetch(page: int) -> None:
        with requests.Session() as session:
            response = session.get(
                f"{server.url}/v2/customers",
                params={"page": page, "limit": 5, **_window(store)},
                headers={"x-api-key": server.api_key},
                timeout=10,
            )
            statuses.append(response.status_code)

    threads = [threading.Thread(target=fetch, args=(page,)) for page in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert statuses == [200] * 6
    stats = server.stats
    assert stats.requests == 6
    assert stats.peak_concurrency >= 3
    # A handler finishes its bookkeeping just after the client has the response.
    deadline = time.monotonic() + 2
    while server.stats.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.stats.in_flight == 0


def test_stop_drops_pooled_connections(store: CustomerStore, make_server: Any, http: Any) -> None:
    server = make_server(store)
    url = f"{server.url}/v2/customers"
    params = {"page": 1, "limit": 1, **_window(store, days=1)}
    assert http.get(url, params=params, headers={"x-api-key": server.api_key}, timeout=5).ok
    server.stop()
    with pytest.raises(requests.ConnectionError):
        http.get(url, params=params, headers={"x-api-key": server.api_key}, timeout=5)


def test_api_key_is_never_logged(
    store: CustomerStore, make_server: Any, call: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(store, api_key="very-secret-key-123")
    with caplog.at_level(logging.DEBUG, logger="revcent_sandbox"):
        call(server, page=1, limit=1, **_window(store, days=1))
        call(server, key="very-secret-key-1234", page=1, limit=1, **_window(store, days=1))
    assert caplog.records, "requests are logged at DEBUG"
    assert all("very-secret-key" not in r.getMessage() for r in caplog.records)


# --- /_sandbox endpoints -----------------------------------------------------------------------


def test_truth_endpoint(server: SandboxServer, store: CustomerStore, http: Any) -> None:
    lo, hi = store.start + 2 * DAY, store.start + 3 * DAY
    response = http.get(f"{server.url}/_sandbox/truth", params={"date_start": lo, "date_end": hi}, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    lines = response.content.split(b"\n")
    assert lines[-1] == b""
    assert [json.loads(line) for line in lines[:-1]] == store.truth(lo, hi)
    assert all(lo <= json.loads(line)["created_date_unix"] < hi for line in lines[:-1])
    filtered = http.get(
        f"{server.url}/_sandbox/truth",
        params={"date_start": lo, "date_end": hi, "status_filter": "enabled"},
        timeout=10,
    )
    assert 0 < filtered.text.count("\n") < len(lines) - 1
    assert http.get(f"{server.url}/_sandbox/truth", params={"date_start": lo}, timeout=10).status_code == 400


def test_stats_endpoints(server: SandboxServer, store: CustomerStore, call: Any, http: Any) -> None:
    call(server, page=1, limit=1, **_window(store, days=1))
    call(server, key=None, page=1, limit=1, **_window(store, days=1))
    stats = http.get(f"{server.url}/_sandbox/stats", timeout=10).json()
    assert stats["requests"] == 2
    assert stats["by_status"] == {"200": 1, "401": 1}
    assert stats["faults"] == {}
    assert stats["rate_limited"] == 0
    assert http.post(f"{server.url}/_sandbox/reset-stats", timeout=10).json() == {"ok": True}
    assert http.get(f"{server.url}/_sandbox/stats", timeout=10).json()["requests"] == 0
    assert server.stats.requests == 0
    call(server, page=1, limit=1, **_window(store, days=1))
    server.reset_stats()
    assert server.stats.by_status == {}


def test_mutation_endpoints_change_what_is_served(
    server: SandboxServer, store: CustomerStore, call: Any, http: Any
) -> None:
    params = {"date_start": store.start, "date_end": store.start + 90 * DAY}
    before = {c["id"]: c for c in _all_pages(call, server, limit=25, **params)}
    mutated = http.post(f"{server.url}/_sandbox/mutate", params={"fraction": 0.2, "seed": 3}, timeout=10).json()
    assert mutated["count"] == len(mutated["ids"]) > 0
    after = {c["id"]: c for c in _all_pages(call, server, limit=25, **params)}
    changed = {cid for cid in before if before[cid] != after[cid]}
    assert changed == set(mutated["ids"]) & set(before)
    unknown = http.post(
        f"{server.url}/_sandbox/add-unknown-fields", params={"fraction": 0.1, "seed": 1}, timeout=10
    ).json()
    assert unknown["count"] > 0
    served = {c["id"]: c for c in _all_pages(call, server, limit=25, **params)}
    assert {cid for cid, c in served.items() if "loyalty_tier" in c} == set(unknown["ids"]) & set(served)
    added = http.post(
        f"{server.url}/_sandbox/add-customers",
        params={"n": 4, "date_start": store.start + DAY, "date_end": store.start + 2 * DAY, "seed": 1},
        timeout=10,
    ).json()
    assert added["count"] == 4
    assert set(added["ids"]) <= {c["id"] for c in _all_pages(call, server, limit=25, **params)}
    bad = http.post(f"{server.url}/_sandbox/mutate", params={"fraction": 2}, timeout=10)
    assert bad.status_code == 400
    assert bad.json()["code"] == 0
    assert http.post(f"{server.url}/_sandbox/mutate", timeout=10).status_code == 400


def test_server_validates_options(store: CustomerStore) -> None:
    for options in ({"order": "random"}, {"page_base": 2}, {"api_key": ""}, {"rate_limit": -1}):
        with pytest.raises(ValueError, match=next(iter(options))):
            SandboxServer(store, **options)
