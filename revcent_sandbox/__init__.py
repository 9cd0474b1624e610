"""A local fake of the RevCent v2 API ``GET /v2/customers`` for tests and demos.

Standard library only. ``CustomerStore`` generates deterministic customers,
``FaultPlan`` injects deterministic faults and ``SandboxServer`` serves them
over HTTP/1.1. ``python -m revcent_sandbox --help`` runs it as a process.

In-process use::

    store = CustomerStore(seed=1, count=500, start=START, end=END)
    with SandboxServer(store, api_key="k", faults=FaultPlan.mixed(seed=1, rate=0.1)) as server:
        ...  # point the client at server.url
        assert rows == store.truth(START, END)
"""

from __future__ import annotations

from revcent_sandbox.data import (
    CUSTOMER_FIELDS,
    ID_ARRAY_FIELDS,
    METADATA_NAME_EXISTS,
    STATUS_FILTER_VALUES,
    CustomerFilter,
    CustomerStore,
)
from revcent_sandbox.faults import FAULT_KINDS, MIXED_KINDS, FaultPlan
from revcent_sandbox.server import (
    BadRequest,
    CustomerRequest,
    SandboxServer,
    SandboxStats,
    error_envelope,
    parse_customer_query,
)

__all__ = [
    "CUSTOMER_FIELDS",
    "FAULT_KINDS",
    "ID_ARRAY_FIELDS",
    "METADATA_NAME_EXISTS",
    "MIXED_KINDS",
    "STATUS_FILTER_VALUES",
    "BadRequest",
    "CustomerFilter",
    "CustomerRequest",
    "CustomerStore",
    "FaultPlan",
    "SandboxServer",
    "SandboxStats",
    "error_envelope",
    "parse_customer_query",
]
