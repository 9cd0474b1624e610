"""Shared fixtures for the RevCent sandbox tests.

Helpers are exposed as fixtures rather than importable modules so the tests work
under any pytest import mode and beside any other conftest.py.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from airflow_revcent.spec import load_spec
from revcent_sandbox import CustomerStore, SandboxServer
from tests.conftest import running_sandboxes

DAY = 86_400
START = 1_767_225_600  # 2026-01-01T00:00:00Z
END = START + 120 * DAY
API_KEY = "test-key-not-a-secret"

ServerFactory = Callable[..., SandboxServer]
CallCustomers = Callable[..., requests.Response]


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    """The vendor's OpenAPI operation: the one the provider ships, so the sandbox is checked against it
    (a copy, so no test can change the provider's)."""
    return copy.deepcopy(load_spec())


@pytest.fixture(scope="session")
def customer_schema(spec: dict[str, Any]) -> dict[str, Any]:
    """The schema of one item of ``results`` (the customer object)."""
    schema: dict[str, Any] = spec["responses"]["200"]["content"]["application/json"]["schema"]
    item: dict[str, Any] = schema["properties"]["results"]["items"]
    return item


@pytest.fixture
def store() -> CustomerStore:
    """A fresh 300-customer store over 120 days starting 2026-01-01 UTC."""
    return CustomerStore(seed=7, count=300, start=START, end=END)


@pytest.fixture
def make_server() -> Iterator[ServerFactory]:
    """Start sandbox servers (API key ``API_KEY`` unless given); all stopped at teardown."""
    with running_sandboxes(API_KEY) as start:
        yield start


@pytest.fixture
def server(store: CustomerStore, make_server: ServerFactory) -> SandboxServer:
    """A default server: desc order, inclusive date_end, page base 1, no faults."""
    return make_server(store)


class RecordedWaits(threading.Event):
    """The server's stop event, recording every wait (latency, "slow", "hang") it is asked for, in seconds:
    what the server decided to delay, independent of how busy the machine is."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return super().wait(timeout)


@pytest.fixture
def record_waits() -> Callable[[SandboxServer], list[float | None]]:
    """``record_waits(server)``: every delay ``server`` applies from then on, in order."""

    def record(server: SandboxServer) -> list[float | None]:
        recorder = RecordedWaits()
        server._stopping = recorder
        return recorder.waits

    return record


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def call(http: requests.Session) -> CallCustomers:
    """``call(server, key=..., timeout=..., **params)``: GET /v2/customers with the server's key."""

    def _call(
        server: SandboxServer, *, key: str | None = "", timeout: float = 10.0, **params: Any
    ) -> requests.Response:
        api_key = server.api_key if key == "" else key
        headers = {} if api_key is None else {"x-api-key": api_key}
        return http.get(f"{server.url}/v2/customers", params=params, headers=headers, timeout=timeout)

    return _call
