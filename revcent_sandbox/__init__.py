"""A local fake of the RevCent v2 API's list resources (``GET /v2/customers`` and others) for tests and demos.

Standard library only. ``CustomerStore`` generates deterministic customers,
``FaultPlan`` injects deterministic faults and ``SandboxServer`` serves them
over HTTP/1.1. ``ResourceStore`` holds the other list resources (sales,
transactions, API calls, taxes, functions); ``GET /v2/openapi.json`` describes
them all. ``python -m revcent_sandbox --help`` runs it as a process.

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
from revcent_sandbox.openapi import OPENAPI_PATH, build_document
from revcent_sandbox.resources import (
    RESOURCE_KINDS,
    ResourceFilter,
    ResourceKind,
    ResourceStore,
    default_resources,
    resources_for,
)
from revcent_sandbox.server import (
    BadRequest,
    CustomerRequest,
    RangeExceeded,
    ResourceRequest,
    SandboxServer,
    SandboxStats,
    error_envelope,
    parse_customer_query,
    parse_resource_query,
)

__all__ = [
    "CUSTOMER_FIELDS",
    "FAULT_KINDS",
    "ID_ARRAY_FIELDS",
    "METADATA_NAME_EXISTS",
    "MIXED_KINDS",
    "OPENAPI_PATH",
    "RESOURCE_KINDS",
    "STATUS_FILTER_VALUES",
    "BadRequest",
    "CustomerFilter",
    "CustomerRequest",
    "CustomerStore",
    "FaultPlan",
    "RangeExceeded",
    "ResourceFilter",
    "ResourceKind",
    "ResourceRequest",
    "ResourceStore",
    "SandboxServer",
    "SandboxStats",
    "build_document",
    "default_resources",
    "error_envelope",
    "parse_customer_query",
    "parse_resource_query",
    "resources_for",
]
