"""A local HTTP fake of RevCent's ``GET /v2/customers``.

Standard library only: ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive
(every response carries Content-Length), one daemon thread per connection.

Behaviour the vendor does not document is configurable (``end_inclusive``,
``order``, ``page_base``) so a client can be tested against each reading.
Test-only endpoints under ``/_sandbox/`` expose the truth and the statistics to
out-of-process users and need no API key.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import math
import os
import random
import re
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

from revcent_sandbox.data import METADATA_NAME_EXISTS, STATUS_FILTER_VALUES, CustomerFilter, CustomerStore
from revcent_sandbox.faults import FaultPlan
from revcent_sandbox.openapi import OPENAPI_PATH, build_document
from revcent_sandbox.resources import (
    API_CALL_SOURCES,
    ResourceFilter,
    ResourceKind,
    ResourceStore,
    resources_for,
)

__all__ = [
    "BadRequest",
    "CustomerRequest",
    "RangeExceeded",
    "ResourceRequest",
    "SandboxServer",
    "SandboxStats",
    "error_envelope",
    "parse_customer_query",
    "parse_resource_query",
]

_log = logging.getLogger(__name__)

MAX_RANGE_SECONDS: Final = 90 * 86_400
MAX_LIMIT: Final = 25
CUSTOMERS_PATH: Final = "/v2/customers"

_ID_TABLE: Final = bytes(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[b % 62] for b in range(256)
)
_INT_RE: Final = re.compile(r"-?[0-9]+")
_METADATA_KEY_RE: Final = re.compile(r"metadata_filter\[([0-9]+)\]\[(name|value)\]")
_REQUIRED: Final = ("date_start", "date_end", "page", "limit")
_ID_FILTERS: Final = ("campaign_filter", "customer_group_filter", "product_filter")

_PROXY_HTML: Final = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def _api_call_id() -> str:
    return os.urandom(20).translate(_ID_TABLE).decode("ascii")


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_envelope(error_code: str, message: str, result: str) -> bytes:
    """The vendor's ``APIStandardErrors`` body (``code`` is always 0)."""
    return _compact(
        {
            "api_call_id": _api_call_id(),
            "api_call_unix": int(time.time()),
            "code": 0,
            "error_code": error_code,
            "message": message,
            "result": result,
        }
    )


# --- request parsing ---------------------------------------------------------------------


class BadRequest(Exception):
    """A request the API answers with HTTP 400 (and an error envelope)."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


class RangeExceeded(BadRequest):
    """``date_end - date_start`` is over the resource's maximum range (``span`` seconds asked for)."""

    def __init__(self, span: int, max_days: int) -> None:
        super().__init__(
            "invalid_date_range",
            f"The difference between date_start and date_end cannot exceed {max_days} days",
        )
        self.span = span


@dataclass(frozen=True)
class CustomerRequest:
    """A validated ``GET /v2/customers`` query."""

    date_start: int
    date_end: int
    page: int
    limit: int
    filters: CustomerFilter = field(default_factory=CustomerFilter)

    def key(self) -> str:
        """The request without noise: what identifies "the same request" for fault plans."""
        return (
            f"date_start={self.date_start}&date_end={self.date_end}&page={self.page}&limit={self.limit}"
            f"&{self.filters.key()}"
        )


def _parse_int(name: str, raw: str) -> int:
    if not _INT_RE.fullmatch(raw):
        raise BadRequest("invalid_parameter", f"{name} must be an integer, got {raw!r}")
    return int(raw)


def _split_query(query: str) -> tuple[dict[str, str], CustomerFilter]:  # noqa: C901, PLR0912 - one branch per documented query parameter
    """Scalar parameters and filters of a query string (filters validated here)."""
    scalars: dict[str, str] = {}
    lists: dict[str, list[str]] = {name: [] for name in (*_ID_FILTERS, "status_filter")}
    metadata: dict[int, dict[str, str]] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in lists:
            lists[key].append(value)
        elif key.startswith("metadata_filter"):
            match = _METADATA_KEY_RE.fullmatch(key)
            if match is None:
                raise BadRequest(
                    "invalid_parameter", f"{key}: use deepObject style metadata_filter[N][name] / [value]"
                )
            metadata.setdefault(int(match.group(1)), {})[match.group(2)] = value
        elif any(key.startswith(name) for name in lists):
            # e.g. campaign_filter[]=...: silently ignoring it would return unfiltered data.
            raise BadRequest(
                "invalid_parameter", f"{key}: filters are repeated keys, e.g. {key.split('[')[0]}=ID"
            )
        elif key in scalars:
            raise BadRequest("invalid_parameter", f"{key} given more than once")
        else:
            scalars[key] = value
    for name in _ID_FILTERS:
        for value in lists[name]:
            if len(value) != 20:
                raise BadRequest("invalid_parameter", f"{name}: ids are 20 characters, got {value!r}")
    for value in lists["status_filter"]:
        if value not in STATUS_FILTER_VALUES:
            raise BadRequest(
                "invalid_parameter",
                f"status_filter must be one of {sorted(STATUS_FILTER_VALUES)}, got {value!r}",
            )
    pairs: list[tuple[str, str]] = []
    for index in sorted(metadata):
        item = metadata[index]
        if not item.get("name"):
            raise BadRequest("invalid_parameter", f"metadata_filter[{index}][name] is required")
        if "value" not in item:
            raise BadRequest(
                "invalid_parameter",
                f"metadata_filter[{index}][value] is required "
                f"(use {METADATA_NAME_EXISTS} to match the name alone)",
            )
        pairs.append((item["name"], item["value"]))
    filters = CustomerFilter(
        campaign_ids=frozenset(lists["campaign_filter"]),
        customer_group_ids=frozenset(lists["customer_group_filter"]),
        product_ids=frozenset(lists["product_filter"]),
        statuses=frozenset(lists["status_filter"]),
        metadata=tuple(pairs),
    )
    return scalars, filters


def parse_customer_query(query: str, *, page_base: int = 1) -> CustomerRequest:
    """Validate a ``/v2/customers`` query string as the API does; raise :class:`BadRequest`."""
    scalars, filters = _split_query(query)
    missing = [name for name in _REQUIRED if name not in scalars]
    if missing:
        raise BadRequest("missing_parameter", f"required parameter(s) missing: {', '.join(missing)}")
    date_start = _parse_int("date_start", scalars["date_start"])
    date_end = _parse_int("date_end", scalars["date_end"])
    page = _parse_int("page", scalars["page"])
    limit = _parse_int("limit", scalars["limit"])
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest("invalid_parameter", f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if page < page_base:
        raise BadRequest("invalid_parameter", f"page must be >= {page_base}, got {page}")
    if date_end < date_start:
        raise BadRequest("invalid_date_range", "date_end must not be before date_start")
    if date_end - date_start > MAX_RANGE_SECONDS:
        raise RangeExceeded(date_end - date_start, MAX_RANGE_SECONDS // 86_400)
    return CustomerRequest(date_start, date_end, page, limit, filters)


# Constraints of the other resources' filter values: (exact length, allowed values); the document
# (revcent_sandbox/openapi.py) states the same.
_RESOURCE_FILTER_RULES: Final[Mapping[str, tuple[int | None, frozenset[str] | None]]] = {
    "campaign_filter": (20, None),
    "currency_filter": (3, None),
    "gateway_filter": (20, None),
    "api_account_filter": (20, None),
    "api_call_source_filter": (None, frozenset(API_CALL_SOURCES)),
}


@dataclass(frozen=True)
class ResourceRequest:
    """A validated query of one of the other list resources (dates are ``None`` for a list without a range)."""

    kind: ResourceKind
    date_start: int | None
    date_end: int | None
    page: int
    limit: int
    filters: ResourceFilter = field(default_factory=ResourceFilter)

    def key(self) -> str:
        """The request without noise, prefixed by its path so resources never share a fault sequence."""
        dates = "" if self.date_start is None else f"date_start={self.date_start}&date_end={self.date_end}&"
        return f"{self.kind.path}?{dates}page={self.page}&limit={self.limit}&{self.filters.key()}"


def _resource_filters(kind: ResourceKind, pairs: list[tuple[str, str]]) -> tuple[dict[str, str], ResourceFilter]:
    scalars: dict[str, str] = {}
    lists: dict[str, list[str]] = {name: [] for name in kind.filters}
    for key, value in pairs:
        if key in lists:
            rule_length, allowed = _RESOURCE_FILTER_RULES[key]
            if rule_length is not None and len(value) != rule_length:
                raise BadRequest("invalid_parameter", f"{key}: values are {rule_length} characters, got {value!r}")
            if allowed is not None and value not in allowed:
                raise BadRequest("invalid_parameter", f"{key} must be one of {sorted(allowed)}, got {value!r}")
            lists[key].append(value)
        elif key.endswith("_filter") or "[" in key:
            # An unknown filter (or campaign_filter[]=...) silently ignored would return unfiltered data.
            raise BadRequest(
                "invalid_parameter",
                f"{key} is not a filter of {kind.operation_id}; it takes {', '.join(kind.filters) or 'none'}",
            )
        elif key in scalars:
            raise BadRequest("invalid_parameter", f"{key} given more than once")
        else:
            scalars[key] = value
    return scalars, ResourceFilter.of(**lists)


def parse_resource_query(kind: ResourceKind, query: str, *, page_base: int = 1) -> ResourceRequest:
    """Validate a query of ``kind`` as the API does (its own maximum range); raise :class:`BadRequest`
    (:class:`RangeExceeded` for a range over the maximum)."""
    scalars, filters = _resource_filters(kind, parse_qsl(query, keep_blank_values=True))
    required = _REQUIRED if kind.date_ranged else ("page", "limit")
    missing = [name for name in required if name not in scalars]
    if missing:
        raise BadRequest("missing_parameter", f"required parameter(s) missing: {', '.join(missing)}")
    page = _parse_int("page", scalars["page"])
    limit = _parse_int("limit", scalars["limit"])
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest("invalid_parameter", f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if page < page_base:
        raise BadRequest("invalid_parameter", f"page must be >= {page_base}, got {page}")
    if kind.max_days is None:
        return ResourceRequest(kind, None, None, page, limit, filters)
    date_start = _parse_int("date_start", scalars["date_start"])
    date_end = _parse_int("date_end", scalars["date_end"])
    if date_end < date_start:
        raise BadRequest("invalid_date_range", "date_end must not be before date_start")
    if date_end - date_start > kind.max_days * 86_400:
        raise RangeExceeded(date_end - date_start, kind.max_days)
    return ResourceRequest(kind, date_start, date_end, page, limit, filters)


# --- statistics --------------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxStats:
    """A snapshot of the server's counters (API requests only, not ``/_sandbox/*``)."""

    requests: int = 0
    by_status: Mapping[int, int] = field(default_factory=dict)
    rate_limited: int = 0
    faults: Mapping[str, int] = field(default_factory=dict)
    peak_concurrency: int = 0
    in_flight: int = 0
    #: API requests per path (``/v2/sales``), every answer counted.
    by_path: Mapping[str, int] = field(default_factory=dict)
    #: Requests refused because their date range was over the resource's maximum, per path.
    over_range: Mapping[str, int] = field(default_factory=dict)
    #: The widest ``date_end - date_start`` (seconds) asked of each path, refused or not.
    widest_range: Mapping[str, int] = field(default_factory=dict)

    @property
    def throttled(self) -> int:
        """Every HTTP 429 sent, from the rate limiter or from a fault."""
        return self.by_status.get(429, 0)

    @property
    def list_requests(self) -> int:
        """API requests other than for the OpenAPI document (``/v2/openapi.json``): pages, and refused ones."""
        return self.requests - self.by_path.get(OPENAPI_PATH, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "rate_limited": self.rate_limited,
            "throttled": self.throttled,
            "faults": dict(sorted(self.faults.items())),
            "peak_concurrency": self.peak_concurrency,
            "in_flight": self.in_flight,
            "by_path": dict(sorted(self.by_path.items())),
            "over_range": dict(sorted(self.over_range.items())),
            "widest_range": dict(sorted(self.widest_range.items())),
        }


class _Counters:
    """Thread-safe counters behind :class:`SandboxStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.by_status: dict[int, int] = {}
        self.rate_limited = 0
        self.faults: dict[str, int] = {}
        self.in_flight = 0
        self.peak = 0
        self.by_path: dict[str, int] = {}
        self.over_range: dict[str, int] = {}
        self.widest_range: dict[str, int] = {}

    def reset(self) -> None:
        # in_flight is a gauge of requests being served right now: it survives a reset.
        with self._lock:
            self.requests = 0
            self.by_status = {}
            self.rate_limited = 0
            self.faults = {}
            self.peak = self.in_flight
            self.by_path = {}
            self.over_range = {}
            self.widest_range = {}

    def begin(self, path: str) -> None:
        with self._lock:
            self.requests += 1
            self.by_path[path] = self.by_path.get(path, 0) + 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def end(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def status(self, code: int) -> None:
        with self._lock:
            self.by_status[code] = self.by_status.get(code, 0) + 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1

    def date_range(self, path: str, span: int, *, refused: bool) -> None:
        with self._lock:
            self.widest_range[path] = max(self.widest_range.get(path, span), span)
            if refused:
                self.over_range[path] = self.over_range.get(path, 0) + 1

    def limited(self) -> None:
        with self._lock:
            self.rate_limited += 1

    def snapshot(self) -> SandboxStats:
        with self._lock:
            return SandboxStats(
                self.requests,
                dict(self.by_status),
                self.rate_limited,
                dict(self.faults),
                self.peak,
                self.in_flight,
                dict(self.by_path),
                dict(self.over_range),
                dict(self.widest_range),
            )


class _TokenBucket:
    """``rate`` tokens per second, capacity ``max(1, rate)``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> int | None:
        """None when a token was taken, else the whole seconds a client should wait (>= 1)."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return max(1, math.ceil((1.0 - self._tokens) / self.rate))


# --- HTTP --------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # The default backlog of 5 refuses connections when a client opens a pool at once.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can
        # stall for seconds on a machine without network.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out and go away are normal here; no tracebacks on stderr.
        _log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "RevCentSandbox/1.0"
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK
    # stalls every response by ~40 ms.
    disable_nagle_algorithm = True
    server: _HTTPServer

    # -- plumbing -------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.server.sandbox._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sandbox._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        # Requests are logged at DEBUG only; headers (the API key) are never logged.
        _log.debug("%s " + format, self.address_string(), *args)

    def _send(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json; charset=utf-8",
        headers: Mapping[str, str] | None = None,
        count: bool = True,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if count:
            self.server.sandbox._counters.status(status)
        try:
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            # The client went away (typically after its read timeout during "hang").
            self.close_connection = True

    def _send_error(self, status: int, error_code: str, message: str, *, count: bool = True) -> None:
        reason = self.responses.get(status, ("Error",))[0]
        self._send(status, error_envelope(error_code, message, reason), count=count)

    def _discard_body(self) -> None:
        # Keep-alive needs the request body consumed even when it is not used.
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
            self.close_connection = True  # the stream position is unknown
        if length > 0:
            self.rfile.read(length)

    # -- routing --------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._discard_body()
        parts = urlsplit(self.path)
        if parts.path == CUSTOMERS_PATH:
            self._counted(self._customers, parts.query)
        elif (resource := self._resource_at(parts.path)) is not None:
            self._counted(lambda query: self._resource(resource, query), parts.query)
        elif parts.path == OPENAPI_PATH:
            self._counted(self._openapi, parts.query)
        elif parts.path == "/_sandbox/truth":
            self._sandbox_call(self._truth, parts.query)
        elif parts.path == "/_sandbox/stats":
            self._sandbox_call(lambda _q: self._json(self.server.sandbox.stats.to_dict()), parts.query)
        else:
            self._counted(self._not_found, parts.query)

    def do_POST(self) -> None:
        self._discard_body()
        parts = urlsplit(self.path)
        routes = {
            "/_sandbox/reset-stats": self._reset_stats,
            "/_sandbox/reset-faults": self._reset_faults,
            "/_sandbox/mutate": self._mutate,
            "/_sandbox/add-unknown-fields": self._add_unknown_fields,
            "/_sandbox/add-customers": self._add_customers,
        }
        route = routes.get(parts.path)
        if route is None:
            self._counted(self._not_found, parts.query)
        else:
            self._sandbox_call(route, parts.query)

    def _resource_at(self, path: str) -> ResourceStore | None:
        if not path.startswith("/v2/"):
            return None
        resource = self.server.sandbox.resources.get(path.removeprefix("/v2/"))
        return resource if resource is not None and resource.kind.path == path else None

    def _counted(self, handler: Any, query: str) -> None:
        counters = self.server.sandbox._counters
        counters.begin(urlsplit(self.path).path)
        try:
            handler(query)
        finally:
            counters.end()

    def _sandbox_call(self, handler: Any, query: str) -> None:
        try:
            handler(query)
        except (BadRequest, ValueError) as exc:
            code = exc.error_code if isinstance(exc, BadRequest) else "invalid_parameter"
            self._send_error(400, code, str(exc), count=False)

    def _not_found(self, _query: str) -> None:
        self._send_error(404, "not_found", f"No such endpoint: {urlsplit(self.path).path}")

    # -- the API --------------------------------------------------------------------------

    def _admitted(self, *, need_key: bool = True) -> bool:
        """Latency, the rate limiter and the API key, as every API request meets them; False when the
        request has been answered (429 or 401)."""
        sandbox = self.server.sandbox
        sandbox._sleep_latency()
        if sandbox._bucket is not None:
            wait = sandbox._bucket.take()
            if wait is not None:
                sandbox._counters.limited()
                self._send(
                    429,
                    error_envelope("rate_limited", "Too many requests, retry later", "Too Many Requests"),
                    headers={"Retry-After": str(wait)},
                )
                return False
        key = self.headers.get("x-api-key")
        if need_key and (key is None or not hmac.compare_digest(key.encode(), sandbox.api_key.encode())):
            self._send_error(401, "unauthorized", "Missing or invalid API key")
            return False
        return True

    def _refused(self, exc: BadRequest) -> None:
        if isinstance(exc, RangeExceeded):
            self.server.sandbox._counters.date_range(urlsplit(self.path).path, exc.span, refused=True)
        self._send_error(400, exc.error_code, exc.message)

    def _serve(self, key: str, body: Callable[[], bytes], shift: Callable[[], None]) -> None:
        """Faults, then the page: the same for every resource."""
        sandbox = self.server.sandbox
        fault = sandbox.faults.decide(key) if sandbox.faults is not None else None
        if fault is not None:
            sandbox._counters.fault(fault)
            if self._inject(fault, body):
                return
        page = body()
        if fault == "shift":
            # The page reflects the store before the insert; inserting before sending
            # means any request the client makes after this response sees the change.
            shift()
        self._send(200, page)

    def _customers(self, query: str) -> None:
        sandbox = self.server.sandbox
        if not self._admitted():
            return
        try:
            request = parse_customer_query(query, page_base=sandbox.page_base)
        except BadRequest as exc:
            self._refused(exc)
            return
        sandbox._counters.date_range(CUSTOMERS_PATH, request.date_end - request.date_start, refused=False)
        self._serve(request.key(), lambda: sandbox._page_body(request), lambda: sandbox._shift(request))

    def _resource(self, store: ResourceStore, query: str) -> None:
        sandbox = self.server.sandbox
        if not self._admitted():
            return
        try:
            request = parse_resource_query(store.kind, query, page_base=sandbox.page_base)
        except BadRequest as exc:
            self._refused(exc)
            return
        if request.date_start is not None and request.date_end is not None:
            sandbox._counters.date_range(store.kind.path, request.date_end - request.date_start, refused=False)
        self._serve(
            request.key(),
            lambda: sandbox._resource_page_body(store, request),
            lambda: sandbox._shift_resource(store, request),
        )

    def _openapi(self, _query: str) -> None:
        # RevCent publishes its document openly: a key is not needed (nor checked when sent), but the
        # rate limiter and the fault plan apply as to any request.
        if not self._admitted(need_key=False):
            return
        host = self.headers.get("Host") or f"{self.server.sandbox.host}:{self.server.sandbox.port}"
        document = self.server.sandbox.openapi_document(f"http://{host}")
        self._serve(OPENAPI_PATH, lambda: document, lambda: None)

    def _inject(self, fault: str, page_body: Callable[[], bytes]) -> bool:
        """Apply a fault; True when the response (or its absence) is complete."""
        sandbox = self.server.sandbox
        plan = sandbox.faults
        assert plan is not None
        if fault == "429":
            body = error_envelope("rate_limited", "Too many requests, retry later", "Too Many Requests")
            self._send(429, body, headers={"Retry-After": "1"})
        elif fault == "429_no_retry_after":
            self._send(429, error_envelope("rate_limited", "Too many requests", "Too Many Requests"))
        elif fault in ("500", "503"):
            codes = {"500": "internal_error", "503": "service_unavailable"}
            self._send_error(int(fault), codes[fault], "The server could not handle the request")
        elif fault in ("502", "504"):
            reason = self.responses[int(fault)][0]
            html = _PROXY_HTML.format(code=fault, reason=reason).encode("ascii")
            self._send(int(fault), html, content_type="text/html")
        elif fault == "code0":
            self._send(200, error_envelope("internal_error", "An internal error occurred", "Error"))
        elif fault == "truncated":
            body = page_body()
            self._send(200, body[: max(1, len(body) // 2)])
        elif fault == "reset":
            self._reset()
        elif fault == "hang":
            sandbox._stopping.wait(plan.hang_seconds)
            return False
        elif fault == "slow":
            sandbox._stopping.wait(plan.slow_ms / 1000.0)
            return False
        else:  # "shift": answered normally, the store changes afterwards
            return False
        return True

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN, so the
        # client sees "connection reset by peer" with no response at all. The fd closes
        # only when rfile (a makefile reference) is closed as well.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
        self.rfile.close()

    # -- test endpoints -------------------------------------------------------------------

    def _json(self, obj: Any) -> None:
        self._send(200, _compact(obj), count=False)

    def _truth(self, query: str) -> None:
        pairs = parse_qsl(query, keep_blank_values=True)
        name = next((v for k, v in pairs if k == "resource"), "customers")
        if name != "customers":
            self._resource_truth(name, [(k, v) for k, v in pairs if k != "resource"])
            return
        scalars, filters = _split_query(urlencode([(k, v) for k, v in pairs if k != "resource"]))
        missing = [name for name in ("date_start", "date_end") if name not in scalars]
        if missing:
            raise BadRequest("missing_parameter", f"required parameter(s) missing: {', '.join(missing)}")
        start = _parse_int("date_start", scalars["date_start"])
        end = _parse_int("date_end", scalars["date_end"])
        lines = self.server.sandbox.store.truth_bytes(start, end, filters)
        body = b"".join(line + b"\n" for line in lines)
        self._send(200, body, content_type="application/x-ndjson; charset=utf-8", count=False)

    def _resource_truth(self, name: str, pairs: list[tuple[str, str]]) -> None:
        store = self.server.sandbox.resources.get(name)
        if store is None:
            known = ["customers", *self.server.sandbox.resources]
            raise BadRequest("invalid_parameter", f"resource must be one of {known}, got {name!r}")
        scalars, filters = _resource_filters(store.kind, pairs)
        given = [n for n in ("date_start", "date_end") if n in scalars]
        if store.kind.date_ranged and len(given) != 2:
            raise BadRequest("missing_parameter", "date_start and date_end are required")
        start = _parse_int("date_start", scalars["date_start"]) if given else None
        end = _parse_int("date_end", scalars["date_end"]) if given else None
        body = b"".join(line + b"\n" for line in store.truth_bytes(start, end, filters))
        self._send(200, body, content_type="application/x-ndjson; charset=utf-8", count=False)

    def _reset_stats(self, _query: str) -> None:
        self.server.sandbox.reset_stats()
        self._json({"ok": True})

    def _reset_faults(self, _query: str) -> None:
        self.server.sandbox.reset_faults()
        self._json({"ok": True})

    def _fraction_seed(self, query: str) -> tuple[float, int]:
        params = dict(parse_qsl(query))
        try:
            return float(params["fraction"]), int(params.get("seed", "0"))
        except (KeyError, ValueError) as exc:
            raise BadRequest(
                "invalid_parameter", "fraction (0..1) is required; seed must be an integer"
            ) from exc

    def _mutate(self, query: str) -> None:
        fraction, seed = self._fraction_seed(query)
        ids = self.server.sandbox.store.mutate(fraction, seed=seed)
        self._json({"count": len(ids), "ids": ids})

    def _add_unknown_fields(self, query: str) -> None:
        fraction, seed = self._fraction_seed(query)
        ids = self.server.sandbox.store.add_unknown_fields(fraction, seed=seed)
        self._json({"count": len(ids), "ids": ids})

    def _add_customers(self, query: str) -> None:
        params = dict(parse_qsl(query))
        try:
            n, start, end = int(params["n"]), int(params["date_start"]), int(params["date_end"])
            seed = int(params.get("seed", "0"))
        except (KeyError, ValueError) as exc:
            raise BadRequest("invalid_parameter", "n, date_start, date_end (integers) are required") from exc
        ids = self.server.sandbox.store.add_customers(n, start, end, seed=seed)
        self._json({"count": len(ids), "ids": ids})


class SandboxServer:
    """The sandbox API server; runs in a background thread.

    ``end_inclusive``, ``order`` ("desc": newest first, "asc": oldest first) and
    ``page_base`` (the first page's number, 1 or 0) select among the readings of
    what RevCent leaves undocumented. ``rate_limit`` > 0 enables a token bucket of
    that many requests per second. ``seed`` drives the latency jitter.

    ``resources`` are the other list resources it serves (``/v2/<name>``), each with its own
    :class:`~revcent_sandbox.resources.ResourceStore`; by default every kind of
    :data:`~revcent_sandbox.resources.RESOURCE_KINDS`, generated from the customer store's seed and
    range (sales, transactions and taxes refer to its customers). ``{}`` serves customers alone.
    Every resource meets the same latency, rate limiter, key check and fault plan as customers.
    ``GET /v2/openapi.json`` describes them all.
    """

    def __init__(
        self,
        store: CustomerStore,
        *,
        api_key: str = "sandbox-key",
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0,
        jitter_ms: float = 0,
        rate_limit: float = 0,
        faults: FaultPlan | None = None,
        end_inclusive: bool = True,
        order: str = "desc",
        page_base: int = 1,
        seed: int = 0,
        resources: Mapping[str, ResourceStore] | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        if order not in ("asc", "desc"):
            raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")
        if page_base not in (0, 1):
            raise ValueError(f"page_base must be 0 or 1, got {page_base}")
        if latency_ms < 0 or jitter_ms < 0 or rate_limit < 0:
            raise ValueError("latency_ms, jitter_ms and rate_limit must be >= 0")
        self.store = store
        self.api_key = api_key
        self.host = host
        self._requested_port = port
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.rate_limit = rate_limit
        self.faults = faults
        self.end_inclusive = end_inclusive
        self.order = order
        self.page_base = page_base
        self.seed = seed
        for name, resource in (resources or {}).items():
            if resource.kind.name != name:
                raise ValueError(f"resources: {name!r} maps to the store of {resource.kind.name!r}")
        # The default resources are generated when first used (~50 ms): most servers serve customers only.
        self._resources: dict[str, ResourceStore] | None = None if resources is None else dict(resources)
        self._resources_lock = threading.Lock()
        self._documents: dict[str, bytes] = {}
        self._documents_lock = threading.Lock()
        self._bucket = _TokenBucket(rate_limit) if rate_limit > 0 else None
        self._latency_rng = random.Random(seed)
        self._latency_lock = threading.Lock()
        self._counters = _Counters()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("server already started")
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="revcent-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every open connection (so pooled clients see it)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes latency, slow and hang sleeps
        httpd.shutdown()
        httpd.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start() if self._httpd is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    # -- statistics -----------------------------------------------------------------------

    @property
    def stats(self) -> SandboxStats:
        """A consistent snapshot of the counters."""
        return self._counters.snapshot()

    def reset_stats(self) -> None:
        self._counters.reset()

    def reset_faults(self) -> None:
        """Forget the fault plan's attempt counts (start a scenario afresh)."""
        if self.faults is not None:
            self.faults.reset()

    # -- helpers for the handler ----------------------------------------------------------

    def _track(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)

    def _sleep_latency(self) -> None:
        if self.latency_ms <= 0 and self.jitter_ms <= 0:
            return
        with self._latency_lock:
            jitter = self._latency_rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        delay = max(0.0, self.latency_ms + jitter) / 1000.0
        if delay:
            self._stopping.wait(delay)

    def _page_body(self, request: CustomerRequest) -> bytes:
        """The success envelope, assembled around cached customer bytes."""
        return self._envelope(self.store, request, totals=True)

    def _envelope(self, store: Any, request: Any, *, totals: bool) -> bytes:
        """A success envelope around the cached item bytes of one page of ``store``; without
        ``total_count``/``total_pages`` when the resource's envelope has none. ``store`` and ``request``
        are a CustomerStore and CustomerRequest or a ResourceStore and ResourceRequest (the pairs share
        the ``page`` call's shape; the unions do not line up for mypy)."""
        offset = (request.page - self.page_base) * request.limit
        total, results = store.page(
            request.date_start,
            request.date_end,
            end_inclusive=self.end_inclusive,
            filters=request.filters,
            order=self.order,
            offset=offset,
            limit=request.limit,
        )
        head = (
            f'{{"api_call_id":"{_api_call_id()}","api_call_unix":{int(time.time())},"code":1,'
            f'"current_count":{len(results)},"current_page":{request.page},"results":['
        )
        tail = f'],"total_count":{total},"total_pages":{-(-total // request.limit)}}}' if totals else "]}"
        return b"".join((head.encode("ascii"), b",".join(results), tail.encode("ascii")))

    @property
    def resources(self) -> dict[str, ResourceStore]:
        """The other list resources served, by name (``sales``, ``tax``, ...)."""
        with self._resources_lock:
            if self._resources is None:
                self._resources = resources_for(self.store)
            return self._resources

    def openapi_document(self, server_url: str) -> bytes:
        """The encoded ``/v2/openapi.json`` naming ``server_url`` as its server (built once per URL).

        :param server_url: ``http://host:port`` as the client reached the sandbox.
        """
        with self._documents_lock:
            cached = self._documents.get(server_url)
        if cached is None:
            document = build_document(server_url)
            kinds = {store.kind.path for store in self.resources.values()}
            # Only what this server serves is described.
            document["paths"] = {p: v for p, v in document["paths"].items() if p == CUSTOMERS_PATH or p in kinds}
            cached = _compact(document)
            with self._documents_lock:
                self._documents[server_url] = cached
        return cached

    def _resource_page_body(self, store: ResourceStore, request: ResourceRequest) -> bytes:
        """The success envelope of another resource; without totals when its envelope has none."""
        return self._envelope(store, request, totals=store.kind.totals)

    def _shift_resource(self, store: ResourceStore, request: ResourceRequest) -> None:
        """The "shift" fault for another resource: items inserted into the request's range (a list
        without a range gets them anywhere in the store's)."""
        plan = self.faults
        assert plan is not None
        start = store.start if request.date_start is None else request.date_start
        end = store.end if request.date_end is None else request.date_end + (1 if self.end_inclusive else 0)
        if end <= start:
            return
        store.add_items(plan.shift_size, start, end, seed=plan.seed * 1_000_003 + plan.shifts_done)

    def _shift(self, request: CustomerRequest) -> None:
        """Insert customers into the request's range (the "shift" fault)."""
        plan = self.faults
        assert plan is not None
        end = request.date_end + 1 if self.end_inclusive else request.date_end
        if end <= request.date_start:
            return
        seed = plan.seed * 1_000_003 + plan.shifts_done
        self.store.add_customers(plan.shift_size, request.date_start, end, seed=seed)
