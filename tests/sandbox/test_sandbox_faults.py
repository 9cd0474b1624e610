"""FaultPlan decisions, and every fault kind as a client observes it."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from revcent_sandbox import FAULT_KINDS, MIXED_KINDS, CustomerStore, FaultPlan, SandboxServer

DAY = 86_400


# --- the plan alone ----------------------------------------------------------------------------


def test_plan_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultPlan(rates={"teapot": 0.1})
    with pytest.raises(ValueError, match="sum to at most 1"):
        FaultPlan(rates={"500": 0.6, "503": 0.6})
    with pytest.raises(ValueError, match=r"rates\['500'\]"):
        FaultPlan(rates={"500": -0.1})
    with pytest.raises(ValueError, match="shift_size"):
        FaultPlan(shift_size=0)


def test_decisions_are_deterministic_per_key_and_order_independent() -> None:
    rates = {"500": 0.2, "reset": 0.2, "truncated": 0.2}
    keys = [f"page={p}" for p in range(1, 30)]

    def sequences(interleaved: bool) -> dict[str, list[str | None]]:
        plan = FaultPlan(7, rates, max_faults_per_request=10)
        out: dict[str, list[str | None]] = {k: [] for k in keys}
        order = (
            [k for _ in range(4) for k in keys]  # round robin
            if interleaved
            else [k for k in reversed(keys) for _ in range(4)]  # key by key, backwards
        )
        for key in order:
            out[key].append(plan.decide(key))
        return out

    first = sequences(interleaved=True)
    assert first == sequences(interleaved=False)
    decisions = [d for seq in first.values() for d in seq]
    assert {"500", "reset", "truncated", None} == set(decisions)
    other_seed = FaultPlan(8, rates, max_faults_per_request=10)
    assert [other_seed.decide(k) for k in keys] != [seq[0] for seq in first.values()]


def test_faults_per_request_are_bounded() -> None:
    plan = FaultPlan(1, {"500": 1.0}, max_faults_per_request=3)
    assert [plan.decide("a") for _ in range(6)] == ["500", "500", "500", None, None, None]
    assert plan.decide("b") == "500"  # the bound is per request key
    plan.reset()
    assert plan.decide("a") == "500"


def test_shift_is_not_a_fault_and_is_capped_in_total() -> None:
    plan = FaultPlan(1, {"shift": 1.0}, max_faults_per_request=0, max_shifts=2)
    assert [plan.decide(k) for k in ("a", "b", "a", "c")] == ["shift", "shift", None, None]
    assert plan.shifts_done == 2
    unlimited = FaultPlan(1, {"shift": 1.0}, max_shifts=None)
    assert [unlimited.decide("a") for _ in range(10)] == ["shift"] * 10


def test_mixed_spreads_the_rate() -> None:
    plan = FaultPlan.mixed(seed=3, rate=0.5)
    assert set(plan.rates) == set(MIXED_KINDS) == set(FAULT_KINDS) - {"shift", "hang"}
    assert sum(plan.rates.values()) == pytest.approx(0.5)
    seen = {plan.decide(f"k{i}") for i in range(2_000)}
    assert seen == set(MIXED_KINDS) | {None}
    custom = FaultPlan.mixed(seed=3, rate=0.3, kinds=["429", "500"], max_faults_per_request=1)
    assert custom.rates == {"429": pytest.approx(0.15), "500": pytest.approx(0.15)}
    assert custom.max_faults_per_request == 1


# --- through the server ------------------------------------------------------------------------


def _params(store: CustomerStore, page: int = 1) -> dict[str, int]:
    return {"date_start": store.start, "date_end": store.start + 30 * DAY, "page": page, "limit": 25}


def _one_fault_server(store: CustomerStore, make_server: Any, kind: str, **plan: Any) -> SandboxServer:
    server: SandboxServer = make_server(store, faults=FaultPlan(5, {kind: 1.0}, max_faults_per_request=1, **plan))
    return server


def _good(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["code"] == 1
    return body


@pytest.mark.integration
@pytest.mark.parametrize(
    ("kind", "status", "retry_after"),
    [("429", 429, "1"), ("429_no_retry_after", 429, None), ("500", 500, None), ("503", 503, None)],
)
def test_json_error_faults(
    store: CustomerStore, make_server: Any, call: Any, kind: str, status: int, *, retry_after: str | None
) -> None:
    server = _one_fault_server(store, make_server, kind)
    response = call(server, **_params(store))
    assert response.status_code == status
    assert response.headers.get("Retry-After") == retry_after
    body = response.json()
    assert body["code"] == 0
    assert body["error_code"]
    assert body["message"]
    _good(call(server, **_params(store)))  # the bound (1) is reached: the retry succeeds
    assert server.stats.faults == {kind: 1}
    assert server.stats.by_status == {status: 1, 200: 1}


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["502", "504"])
def test_proxy_html_faults(store: CustomerStore, make_server: Any, call: Any, kind: str) -> None:
    server = _one_fault_server(store, make_server, kind)
    response = call(server, **_params(store))
    assert response.status_code == int(kind)
    assert response.headers["Content-Type"].startswith("text/html")
    assert f"<h1>{kind} " in response.text
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)
    _good(call(server, **_params(store)))


@pytest.mark.integration
def test_code0_is_an_error_inside_http_200(store: CustomerStore, make_server: Any, call: Any) -> None:
    server = _one_fault_server(store, make_server, "code0")
    response = call(server, **_params(store))
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == 0
    assert body["error_code"] == "internal_error"
    assert "results" not in body
    _good(call(server, **_params(store)))


@pytest.mark.integration
def test_truncated_body(store: CustomerStore, make_server: Any, call: Any) -> None:
    server = _one_fault_server(store, make_server, "truncated")
    response = call(server, **_params(store))
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert response.content.startswith(b'{"api_call_id":')
    with pytest.raises(ValueError, match=r"(?i)unterminated|expecting|delimiter|invalid"):
        json.loads(response.content)
    full = call(server, **_params(store))
    _good(full)
    # Cut in the middle of the same page (api_call_id and api_call_unix differ per call).
    assert 0.3 < len(response.content) / len(full.content) < 0.7
    assert response.content[60:200] == full.content[60:200]


@pytest.mark.integration
def test_connection_reset(store: CustomerStore, make_server: Any, call: Any) -> None:
    server = _one_fault_server(store, make_server, "reset")
    with pytest.raises(requests.ConnectionError) as info:
        call(server, **_params(store))
    assert "reset" in str(info.value).lower() or "aborted" in str(info.value).lower()
    _good(call(server, **_params(store)))
    assert server.stats.faults == {"reset": 1}
    assert server.stats.by_status == {200: 1}


@pytest.mark.integration
def test_hang_trips_the_client_timeout(store: CustomerStore, make_server: Any, call: Any, record_waits: Any) -> None:
    server = _one_fault_server(store, make_server, "hang", hang_seconds=2.0)
    waits = record_waits(server)
    # A hang that ended would close the connection (ConnectionError): a ReadTimeout is the client's 0.3 s.
    with pytest.raises(requests.ReadTimeout):
        call(server, timeout=0.3, **_params(store))
    _good(call(server, timeout=5, **_params(store)))
    assert server.stats.faults == {"hang": 1}
    assert waits == [2.0]


@pytest.mark.integration
def test_slow_answers_late_but_correctly(store: CustomerStore, make_server: Any, call: Any, record_waits: Any) -> None:
    server = _one_fault_server(store, make_server, "slow", slow_ms=300)
    waits = record_waits(server)
    slow = _good(call(server, **_params(store)))
    assert waits == [0.3]  # the slow answer waited 300 ms
    fast = _good(call(server, **_params(store)))
    assert waits == [0.3]  # the next one did not wait
    assert slow["results"] == fast["results"]


@pytest.mark.integration
def test_shift_changes_total_count_and_respects_max_shifts(store: CustomerStore, make_server: Any, call: Any) -> None:
    plan = FaultPlan(5, {"shift": 1.0}, shift_size=4, max_shifts=2)
    server = make_server(store, faults=plan, end_inclusive=False)
    params = _params(store)
    totals = [_good(call(server, **params))["total_count"] for _ in range(4)]
    # The response is served first, then the window grows by shift_size (twice, then settles).
    assert totals[1] == totals[0] + 4
    assert totals[2] == totals[3] == totals[0] + 8
    assert server.stats.faults == {"shift": 2}
    inserted = store.truth(params["date_start"], params["date_end"])
    assert len(inserted) == totals[3]
    # The window's first page moved: pages are not stable under inserts.
    assert plan.shifts_done == 2


@pytest.mark.integration
def test_unlimited_shifts_never_settle(store: CustomerStore, make_server: Any, call: Any) -> None:
    server = make_server(store, faults=FaultPlan(5, {"shift": 1.0}, shift_size=1, max_shifts=None))
    totals = [_good(call(server, **_params(store)))["total_count"] for _ in range(5)]
    assert totals == list(range(totals[0], totals[0] + 5))


@pytest.mark.integration
def test_bounded_retries_converge_under_heavy_faults(
    store: CustomerStore, make_server: Any, http: requests.Session
) -> None:
    kinds = [k for k in MIXED_KINDS if k != "slow"]
    server = make_server(store, faults=FaultPlan.mixed(seed=9, rate=1.0, kinds=kinds, max_faults_per_request=3))
    attempts_per_page: list[int] = []
    for page in range(1, 5):
        for attempt in range(1, 10):
            try:
                response = http.get(
                    f"{server.url}/v2/customers",
                    params=_params(store, page),
                    headers={"x-api-key": server.api_key},
                    timeout=5,
                )
                body = response.json() if response.status_code == 200 else {}
            except (requests.ConnectionError, ValueError):
                continue
            if body.get("code") == 1:
                attempts_per_page.append(attempt)
                break
    # Every attempt faults until the bound of 3, then the 4th succeeds.
    assert attempts_per_page == [4, 4, 4, 4]
    stats = server.stats
    assert sum(stats.faults.values()) == 12
    assert set(stats.faults) <= set(kinds)
    assert len(stats.faults) >= 4


@pytest.mark.integration
def test_same_faults_whatever_the_request_order(store: CustomerStore, make_server: Any, call: Any) -> None:
    def observe(pages: list[int]) -> dict[int, list[int]]:
        plan = FaultPlan.mixed(seed=4, rate=0.6, kinds=["429", "500", "503", "code0"])
        server = make_server(store, faults=plan)
        seen: dict[int, list[int]] = {}
        for page in pages:
            response = call(server, **_params(store, page))
            code = response.json().get("code", -1) if response.status_code == 200 else -response.status_code
            seen.setdefault(page, []).append(code)
        return seen

    forward = observe([p for _ in range(3) for p in range(1, 6)])
    backward = observe([p for p in range(5, 0, -1) for _ in range(3)])
    assert forward == backward
    assert any(code != 1 for codes in forward.values() for code in codes)


@pytest.mark.integration
def test_reset_faults_endpoint_restarts_the_plan(
    store: CustomerStore, make_server: Any, call: Any, http: requests.Session
) -> None:
    server = _one_fault_server(store, make_server, "503")
    assert call(server, **_params(store)).status_code == 503
    assert call(server, **_params(store)).status_code == 200
    assert http.post(f"{server.url}/_sandbox/reset-faults", timeout=10).json() == {"ok": True}
    assert call(server, **_params(store)).status_code == 503
    stats = http.get(f"{server.url}/_sandbox/stats", timeout=10).json()
    assert stats["faults"] == {"503": 2}
    assert stats["by_status"] == {"200": 1, "503": 2}
