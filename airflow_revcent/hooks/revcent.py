"""RevCentHook: the RevCent v2 API over HTTP: connection, authentication, paging, retries, errors.

The hook owns every byte sent to RevCent and nothing else: it knows windows of unix seconds and
returns parsed pages and customers; it knows nothing of BigQuery or of Airflow run dates.

One choke point: :meth:`RevCentHook.get_customers_page` sends one request (paced, retried) and
:func:`parse_customers_response` decides what its answer is. :meth:`RevCentHook.iter_pages` reads
windows concurrently on top of it, driving :class:`~airflow_revcent.paging.WindowReader`.
"""

from __future__ import annotations

import heapq
import math
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook
from requests.adapters import HTTPAdapter

from airflow_revcent import __version__, jsontext
from airflow_revcent.exceptions import (
    RevCentAPIError,
    RevCentAuthError,
    RevCentCancelled,
    RevCentConfigError,
    RevCentRequestError,
    RevCentRetryBudgetExceeded,
    RevCentStalledError,
    RevCentTransientError,
)
from airflow_revcent.filters import CustomerFilters
from airflow_revcent.pacing import Pacer
from airflow_revcent.paging import DEFAULT_MAX_PASSES, CustomersPage, WindowReader, WindowStats
from airflow_revcent.windows import Window

DEFAULT_HOST = "https://api.revcent.com"
CUSTOMERS_ENDPOINT = "/v2/customers"
MAX_PAGE_SIZE = 25

#: Conservative defaults: RevCent publishes no rate limit. Four requests in flight and ten
#: requests per second are far below what one browser session sends, and still page ~4x
#: faster than a sequential client at typical latencies. Tune them per connection (extras) or
#: per task (operator arguments).
DEFAULT_MAX_CONCURRENCY = 4
DEFAULT_MAX_REQUESTS_PER_SECOND = 10.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
#: Seconds one attempt may take from sending the request to the last byte of the body: a server
#: that trickles bytes (each read within read_timeout) cannot hold a request longer.
DEFAULT_REQUEST_TIMEOUT = 120.0
DEFAULT_RETRY_MAX_ATTEMPTS = 8
DEFAULT_RETRY_MAX_SECONDS = 600.0
#: The first retry waits up to this long (full jitter); each further one up to twice as long.
DEFAULT_RETRY_INITIAL_BACKOFF = 1.0
#: Longest single wait between attempts, and the cap on a Retry-After we agree to honour.
MAX_BACKOFF_SECONDS = 60.0

#: Connection extras this hook understands. Nothing from the extras is ever sent as a header
#: (HttpHook would send unknown extras as headers; this hook never does).
KNOWN_EXTRAS = (
    "max_concurrency",
    "max_requests_per_second",
    "account_requests_per_second",
    "account_pool_slots",
    "connect_timeout",
    "read_timeout",
    "request_timeout",
    "stall_timeout",
    "timeout",
    "retry_max_attempts",
    "retry_max_seconds",
    "retry_initial_backoff",
    "verify",
)


def base_url_from_host(host: str | None, port: int | None = None) -> str:
    """The API root for a connection's host.

    Empty means ``https://api.revcent.com``; a host without a scheme means https; plain http only
    when the host says ``http://`` explicitly (a local sandbox).

    :param host: the connection's host field.
    :param port: the connection's port field, if any.
    """
    text = (host or "").strip()
    if not text.rstrip("/"):
        return DEFAULT_HOST
    if "://" not in text:
        text = f"https://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RevCentConfigError(
            f"Connection host {host!r} is not an http(s) URL; use the API root such as "
            f"{DEFAULT_HOST} (or leave it empty)."
        )
    path = parts.path.rstrip("/")
    if path.endswith("/v2"):
        # Users paste the versioned URL; the hook adds /v2/customers itself.
        path = path[: -len("/v2")]
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}{path}"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _envelope(body: Any) -> tuple[str | None, str | None]:
    if isinstance(body, dict):
        code, message = body.get("error_code"), body.get("message")
        return (_clean(code) if code is not None else None, _clean(message) if message is not None else None)
    return None, None


def _clean(value: Any) -> str:
    # An envelope's text goes into messages and logs: never with a lone surrogate in it.
    return jsontext.repair_surrogates(str(value), "", lambda _path: None)  # type: ignore[no-any-return]


#: Error envelopes (``code: 0``) whose error_code or message says the key was rejected: failed at once
#: like a 401, whatever the HTTP status. RevCent does not document its error codes; these are the
#: words an auth failure is spelled with.
_AUTH_ENVELOPE = re.compile(
    r"api[\s_-]*key|unauthori[sz]ed|unauthenticated|forbidden|not[\s_-]*authori[sz]ed|access[\s_-]*denied|"
    r"invalid[\s_-]*(key|credential|token)|auth",
    re.IGNORECASE,
)
#: Error envelopes that refuse the request itself (a parameter): never retried, like a 400.
_REQUEST_ENVELOPE = re.compile(r"invalid|missing|parameter|bad[\s_-]*request|not[\s_-]*allowed|exceed",
                               re.IGNORECASE)


def envelope_kind(error_code: str | None, api_message: str | None) -> str:
    """What an error envelope means: ``"auth"`` (the key was rejected), ``"request"`` (the request was
    refused) or ``"transient"`` (anything else: worth retrying).

    :param error_code: the envelope's ``error_code``.
    :param api_message: the envelope's ``message``.
    """
    code = error_code or ""
    if _AUTH_ENVELOPE.search(code) or (api_message and _AUTH_ENVELOPE.search(api_message)):
        return "auth"
    if _REQUEST_ENVELOPE.search(code):
        return "request"
    return "transient"


def _describe(status: int, error_code: str | None, api_message: str | None) -> str:
    parts = [f"HTTP {status}"]
    if error_code:
        parts.append(f"error_code={error_code!r}")
    if api_message:
        parts.append(f"message={api_message[:300]!r}")
    return ", ".join(parts)


def parse_customers_response(
    status: int,
    content: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    what: str = "request",
    query: str = "",
) -> CustomersPage:
    """Decide what one HTTP answer is: a page of customers, or an error of the right class.

    A body is a page only when it is JSON with ``code == 1`` and the envelope fields. Anything
    else raises: :class:`RevCentTransientError` (429, 5xx, a cut or unreadable body, an error
    envelope with HTTP 200), :class:`RevCentAuthError` (401/403, or an error envelope saying the key
    was rejected) or :class:`RevCentRequestError` (another 4xx, or an envelope refusing a parameter).

    The body is parsed exactly (:func:`airflow_revcent.jsontext.loads`); lone surrogates in the
    customers are replaced by U+FFFD and reported in :attr:`CustomersPage.repairs`.

    :param status: HTTP status code.
    :param content: raw body.
    :param headers: response headers (for ``Retry-After``).
    :param what: names the request in messages (window and page).
    :param query: the request's query string, shown when the API refuses it (it never holds the key).
    """
    try:
        body: Any = jsontext.loads(content)
    except (ValueError, RecursionError):
        body = None
    error_code, api_message = _envelope(body)
    detail = _describe(status, error_code, api_message)
    if status == 429:
        retry_after = parse_retry_after((headers or {}).get("Retry-After"))
        raise RevCentTransientError(
            f"RevCent throttled the {what} ({detail}).", status=status, error_code=error_code,
            api_message=api_message, retry_after=retry_after,
        )
    if status in (401, 403):
        raise RevCentAuthError(
            f"RevCent rejected the API key for the {what} ({detail}). Put a valid RevCent API key in the "
            "connection's password field, and check it is for the right mode (Live or Test).",
            status=status, error_code=error_code, api_message=api_message,
        )
    if status == 408 or status >= 500:
        raise RevCentTransientError(
            f"RevCent failed the {what} ({detail}).", status=status, error_code=error_code, api_message=api_message
        )
    if status == 404:
        raise RevCentRequestError(
            f"RevCent has no {CUSTOMERS_ENDPOINT} at this host ({detail}). The connection's host must be the "
            f"API root, such as {DEFAULT_HOST}.", status=status, error_code=error_code, api_message=api_message,
        )
    if not 200 <= status < 300:
        raise RevCentRequestError(
            f"RevCent refused the {what} ({detail}); the query was {query or '(not shown)'}. Fix the argument "
            "the API's message names (filters, window_size, page_size).",
            status=status, error_code=error_code, api_message=api_message,
        )
    if body is None:
        raise RevCentTransientError(
            f"RevCent answered the {what} with HTTP {status} but a body that is not JSON (cut short or "
            f"garbled, {len(content)} bytes).", status=status,
        )
    if not isinstance(body, dict) or body.get("code") != 1:
        code = body.get("code") if isinstance(body, dict) else None
        kind = envelope_kind(error_code, api_message) if code == 0 else "transient"
        if kind == "auth":
            raise RevCentAuthError(
                f"RevCent rejected the API key for the {what} in an error envelope despite HTTP {status} "
                f"({detail}). Put a valid RevCent API key in the connection's password field, and check it "
                "is for the right mode (Live or Test).",
                status=status, error_code=error_code, api_message=api_message,
            )
        if kind == "request":
            raise RevCentRequestError(
                f"RevCent refused the {what} in an error envelope despite HTTP {status} ({detail}); the query "
                f"was {query or '(not shown)'}. Fix the argument the API's message names (filters, "
                "window_size, page_size).", status=status, error_code=error_code, api_message=api_message,
            )
        raise RevCentTransientError(
            f"RevCent answered the {what} with an error envelope despite HTTP {status} "
            f"(code={code!r}, {detail}).", status=status, error_code=error_code, api_message=api_message,
        )
    fields = ("current_page", "total_count", "total_pages")
    values = [body.get(name) for name in fields]
    results = body.get("results")
    if any(type(v) is not int for v in values) or not isinstance(results, list):
        shown = {name: body.get(name) for name in (*fields, "results") if name != "results"}
        raise RevCentAPIError(
            f"RevCent's answer to the {what} has code 1 but not the documented envelope ({shown}, results "
            f"is {type(results).__name__}). The API contract changed; report it.", status=status,
        )
    repairs: list[tuple[str, str]] = []
    if jsontext.may_have_surrogates(content):
        for customer in results:
            found: list[str] = []
            jsontext.repair_surrogates(customer, "", found.append)
            customer_id = customer.get("id") if isinstance(customer, dict) else None
            repairs += [(str(customer_id), path) for path in found]
    return CustomersPage(int(body["current_page"]), int(body["total_count"]), int(body["total_pages"]), results,
                         repairs=tuple(repairs))


def account_share(own: float, account: Any, slots: Any) -> float:
    """The pace of one task when the account's allowance is shared through an Airflow pool.

    Every task that calls the account runs in one pool of ``slots`` slots (one slot each), so at most
    ``slots`` run at once and each may send ``account / slots`` requests per second: together they
    stay within ``account``. The task's own ceiling applies when it is lower (``0`` means none).

    :param own: the task's own ``max_requests_per_second`` (0: no ceiling).
    :param account: the connection extra ``account_requests_per_second`` (None: not shared).
    :param slots: the connection extra ``account_pool_slots``, the pool's size (default 1).
    """
    if account in (None, ""):
        return own
    total = _number(account, "account_requests_per_second", minimum=0.001)
    share = total / _number(1 if slots in (None, "") else slots, "account_pool_slots", minimum=1, integer=True)
    return share if own == 0 else min(own, share)


@dataclass(frozen=True)
class HookSettings:
    """Everything the hook reads from its connection, merged with the arguments that override it."""

    base_url: str
    api_key: str
    max_concurrency: int
    max_requests_per_second: float
    connect_timeout: float
    read_timeout: float
    request_timeout: float
    stall_timeout: float | None
    retry_max_attempts: int
    retry_max_seconds: float
    retry_initial_backoff: float
    verify: bool

    def __repr__(self) -> str:
        # Never show the key, even in a debugger or a traceback's locals.
        return f"HookSettings(base_url={self.base_url!r}, api_key=***, max_concurrency={self.max_concurrency})"


def _number(value: Any, name: str, *, minimum: float, integer: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RevCentConfigError(f"{name}={value!r} is not a number.") from None
    if not math.isfinite(number) or number < minimum or (integer and number != int(number)):
        kind = "an integer" if integer else "a number"
        raise RevCentConfigError(f"{name}={value!r} must be {kind} >= {minimum:g}.")
    return number


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise RevCentConfigError(f"{name}={value!r} must be true or false.")


@dataclass
class WindowBatch:
    """Customers that one page added to one window; ``finished`` is set on the window's last batch."""

    index: int
    window: Window
    customers: list[dict[str, Any]]
    finished: WindowStats | None = None
    #: The API's total_count for the window, as of this page.
    total_count: int | None = None
    #: When the page was received (unix seconds): the read time of these customers.
    received_at: float = 0.0
    #: (customer id, field path) of the values of these customers whose lone surrogates were replaced.
    repairs: list[tuple[str, str]] = field(default_factory=list)


class RevCentHook(HttpHook):
    """Talks to the RevCent v2 API.

    The connection (type ``revcent``): host = API root (empty for ``https://api.revcent.com``),
    password = API key. Optional extras: ``max_concurrency``, ``max_requests_per_second``
    (``0`` = no limit), ``connect_timeout``, ``read_timeout``, ``retry_max_attempts``,
    ``retry_max_seconds``, ``retry_initial_backoff``, ``request_timeout``, ``stall_timeout``, ``verify``
    (TLS verification, default true).
    Arguments given here win
    over the extras. The constructor reads nothing; the connection is read on first use.

    :param revcent_conn_id: the Airflow connection id.
    :param max_concurrency: most requests in flight at once (default 4).
    :param max_requests_per_second: pace ceiling for everything this hook sends (default 10,
        ``0`` for none).
    :param connect_timeout: seconds to establish a connection (default 10).
    :param read_timeout: seconds to wait for response data (default 60).
    :param request_timeout: seconds one attempt may take to its last byte, however the server trickles
        (default 120; checked between reads, so at most request_timeout + read_timeout).
    :param stall_timeout: seconds a run may go without any page arriving before it fails, naming the
        window and page it waits on (default: the longest one request can legitimately take,
        retry_max_seconds + request_timeout + read_timeout + connect_timeout + 60).
    :param retry_max_attempts: attempts per request before giving up (default 8).
    :param retry_max_seconds: seconds per request, retries included, before giving up (default 600).
    :param retry_initial_backoff: upper bound of the first wait between attempts, doubling per attempt up
        to 60 s, with full jitter (default 1). A 429's Retry-After replaces it.
    :param max_passes: full re-reads allowed for a window whose results shift while it is paged.
    """

    conn_name_attr = "revcent_conn_id"
    default_conn_name = "revcent_default"
    conn_type = "revcent"
    hook_name = "RevCent"
    default_host = DEFAULT_HOST

    def __init__(
        self,
        revcent_conn_id: str = default_conn_name,
        *,
        max_concurrency: int | None = None,
        max_requests_per_second: float | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        retry_max_attempts: int | None = None,
        retry_max_seconds: float | None = None,
        retry_initial_backoff: float | None = None,
        max_passes: int = DEFAULT_MAX_PASSES,
        request_timeout: float | None = None,
        stall_timeout: float | None = None,
    ) -> None:
        super().__init__(method="GET", http_conn_id=revcent_conn_id)
        self.revcent_conn_id = revcent_conn_id
        self._overrides: dict[str, Any] = {
            "max_concurrency": max_concurrency,
            "max_requests_per_second": max_requests_per_second,
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "retry_max_attempts": retry_max_attempts,
            "retry_max_seconds": retry_max_seconds,
            "retry_initial_backoff": retry_initial_backoff,
            "request_timeout": request_timeout,
            "stall_timeout": stall_timeout,
        }
        self.max_passes = max_passes
        self._local = threading.local()
        # Set when a read is abandoned (the consumer failed): threads stop retrying and pausing.
        self._cancelled = threading.Event()
        self._first_page = 1
        self._requests_lock = threading.Lock()
        #: HTTP requests sent by this hook (retries included).
        self.requests_sent = 0

    # -- connection -----------------------------------------------------------------------------
    @cached_property
    def settings(self) -> HookSettings:
        """The connection, read once, validated, merged with this hook's arguments."""
        try:
            conn = self.get_connection(self.revcent_conn_id)
        except Exception as exc:
            if type(exc).__name__ != "AirflowNotFoundException":
                raise
            raise RevCentConfigError(
                f"The RevCent connection {self.revcent_conn_id!r} does not exist. Create it (type 'revcent', "
                "password = your API key), e.g. AIRFLOW_CONN_REVCENT_DEFAULT='{\"conn_type\": \"revcent\", "
                "\"password\": \"...\"}', or pass revcent_conn_id."
            ) from None
        # The connection form stores its fields as plain keys; older forms used a prefix.
        extra = {k.removeprefix("extra__revcent__"): v for k, v in (conn.extra_dejson or {}).items()}
        unknown = sorted(set(extra) - set(KNOWN_EXTRAS))
        if unknown:
            self.log.warning(
                "Connection %r has extras this hook does not use (ignored, never sent): %s",
                self.revcent_conn_id, ", ".join(unknown),
            )
        api_key = (conn.password or "").strip()
        if any(not ch.isprintable() or ch.isspace() for ch in api_key):
            # requests would refuse it with an error quoting the header, key included.
            raise RevCentConfigError(
                f"Connection {self.revcent_conn_id!r}: the API key contains spaces, line breaks or other "
                "unprintable characters (was it pasted across lines?). Paste it again as one line."
            )
        if not api_key:
            raise RevCentConfigError(
                f"Connection {self.revcent_conn_id!r} has no API key: put your RevCent API key in its "
                "password field."
            )
        timeout = extra.get("timeout")
        merged = {k: v for k, v in extra.items() if k in KNOWN_EXTRAS}
        if timeout is not None:
            merged.setdefault("connect_timeout", timeout)
            merged.setdefault("read_timeout", timeout)
        merged.update({k: v for k, v in self._overrides.items() if v is not None})

        def pick(name: str, default: Any) -> Any:
            return merged.get(name, default)

        verify = _flag(pick("verify", True), "verify")
        own_rate = _number(pick("max_requests_per_second", DEFAULT_MAX_REQUESTS_PER_SECOND),
                           "max_requests_per_second", minimum=0)
        rate = account_share(own_rate, extra.get("account_requests_per_second"), extra.get("account_pool_slots"))
        if rate != own_rate:
            self.log.info("Pacing at %.3g requests/s: the account's %s requests/s shared by %s pool slots",
                          rate, extra.get("account_requests_per_second"), extra.get("account_pool_slots", 1))
        if not verify:
            self.log.warning(
                "TLS certificate verification is OFF for connection %r (extra verify=false): the API key "
                "can be intercepted. Use it only against a local sandbox.", self.revcent_conn_id,
            )
        return HookSettings(
            base_url=base_url_from_host(conn.host, conn.port),
            api_key=api_key,
            max_concurrency=int(_number(pick("max_concurrency", DEFAULT_MAX_CONCURRENCY), "max_concurrency",
                                        minimum=1, integer=True)),
            max_requests_per_second=rate,
            connect_timeout=_number(pick("connect_timeout", DEFAULT_CONNECT_TIMEOUT), "connect_timeout",
                                    minimum=0.001),
            read_timeout=_number(pick("read_timeout", DEFAULT_READ_TIMEOUT), "read_timeout", minimum=0.001),
            request_timeout=_number(pick("request_timeout", DEFAULT_REQUEST_TIMEOUT), "request_timeout",
                                    minimum=0.001),
            stall_timeout=(None if pick("stall_timeout", None) in (None, "")
                           else _number(pick("stall_timeout", None), "stall_timeout", minimum=0.001)),
            retry_max_attempts=int(_number(pick("retry_max_attempts", DEFAULT_RETRY_MAX_ATTEMPTS),
                                           "retry_max_attempts", minimum=1, integer=True)),
            retry_max_seconds=_number(pick("retry_max_seconds", DEFAULT_RETRY_MAX_SECONDS), "retry_max_seconds",
                                      minimum=0),
            retry_initial_backoff=_number(pick("retry_initial_backoff", DEFAULT_RETRY_INITIAL_BACKOFF),
                                          "retry_initial_backoff", minimum=0),
            verify=verify,
        )

    def check_connection(self) -> HookSettings:
        """Read and check the connection now (it is otherwise read on first use); its settings."""
        return self.settings

    @cached_property
    def pacer(self) -> Pacer:
        """The pace shared by every request this hook sends."""
        return Pacer(self.settings.max_requests_per_second or None, sleep=self._cancellable_sleep)

    def cancel(self) -> None:
        """Stop every retry and pause of a read in progress (on_kill); requests on the wire end within their
        read timeout."""
        self._cancelled.set()

    def _cancellable_sleep(self, seconds: float) -> None:
        self._cancelled.wait(seconds)

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """A requests session that authenticates to RevCent (also serves ``HttpHook.run``).

        :param headers: extra headers for this session.
        :param extra_options: ignored; kept for HttpHook's signature.
        """
        settings = self.settings
        session = requests.Session()
        session.headers.update(
            {
                "x-api-key": settings.api_key,
                "Accept": "application/json",
                "User-Agent": f"airflow-provider-revcent/{__version__}",
            }
        )
        session.verify = settings.verify
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(2, settings.max_concurrency), max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        if headers:
            session.headers.update(headers)
        self.base_url = settings.base_url
        self._base_url_initialized = True
        # HttpHook.run reads its timeout from merged_extra.
        self.merged_extra = {"timeout": (settings.connect_timeout, settings.read_timeout)}
        return session

    def _session(self) -> requests.Session:
        # One session per thread: requests.Session is not documented as thread-safe.
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self.get_conn()
        return session

    # -- one request ----------------------------------------------------------------------------
    def get_customers_page(
        self,
        date_start: int,
        date_end: int,
        page: int,
        *,
        limit: int = MAX_PAGE_SIZE,
        filters: CustomerFilters | None = None,
        label: str | None = None,
        budget: tuple[int, float] | None = None,
    ) -> CustomersPage:
        """Fetch one page of ``GET /v2/customers``, paced and retried.

        :param date_start: ``date_start`` (unix seconds) as sent.
        :param date_end: ``date_end`` (unix seconds) as sent.
        :param page: page number.
        :param limit: customers per page, 1..25.
        :param filters: optional filters.
        :param label: how messages name this request (defaults to the dates and page).
        :param budget: (attempts, seconds) instead of the connection's retry budget.
        """
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise RevCentConfigError(f"page_size={limit} is outside 1..{MAX_PAGE_SIZE}, the API's limit.")
        params: list[tuple[str, str | int]] = [
            ("date_start", date_start), ("date_end", date_end), ("page", page), ("limit", limit),
        ]
        params.extend((filters or CustomerFilters()).to_params())
        what = label or f"request for date_start={date_start}, date_end={date_end}, page {page}"
        settings = self.settings
        if budget is not None:
            settings = replace(settings, retry_max_attempts=budget[0], retry_max_seconds=budget[1])
        url = settings.base_url + CUSTOMERS_ENDPOINT
        started = time.monotonic()

        def attempt() -> CustomersPage:
            if self._cancelled.is_set():
                raise RevCentCancelled(f"The {what} was not sent: the read was stopped.")
            sent_at = self.pacer.acquire()
            if self._cancelled.is_set():
                raise RevCentCancelled(f"The {what} was not sent: the read was stopped.")
            with self._requests_lock:
                self.requests_sent += 1
            try:
                content, response = self._fetch(url, params, settings, what)
            except requests.Timeout as exc:
                raise RevCentTransientError(
                    f"RevCent did not answer the {what} within the timeouts (connect {settings.connect_timeout:g}"
                    f" s, read {settings.read_timeout:g} s): {type(exc).__name__}."
                ) from None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                raise RevCentTransientError(
                    f"The connection to {settings.base_url} failed during the {what}: {type(exc).__name__}."
                ) from None
            except requests.RequestException as exc:
                # Other request errors can quote the request's headers (the key): name the type only.
                raise RevCentRequestError(
                    f"The {what} could not be sent: {type(exc).__name__}. Check the connection's host and key."
                ) from None
            received_at = time.time()
            try:
                result = parse_customers_response(response.status_code, content, response.headers, what=what,
                                                  query=urlencode(params))
            except RevCentTransientError as exc:
                if exc.status == 429:
                    self.pacer.on_throttle(sent_at, exc.retry_after)
                raise
            self.pacer.on_success(sent_at)
            return replace(result, received_at=received_at)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(settings.retry_max_attempts)
            | tenacity.stop_before_delay(settings.retry_max_seconds)
            | tenacity.stop_when_event_set(self._cancelled),
            sleep=self._cancellable_sleep,
            wait=_RetryWait(settings.retry_initial_backoff),
            retry=tenacity.retry_if_exception_type(RevCentTransientError),
            before_sleep=lambda state: self._log_retry(state, settings.retry_max_attempts),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except RevCentTransientError as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise RevCentRetryBudgetExceeded(
                f"Gave up on the {what} after {attempts} attempts in {time.monotonic() - started:.1f} s "
                f"(budget: {settings.retry_max_attempts} attempts, {settings.retry_max_seconds:g} s). Last "
                f"error: {exc} Raise retry_max_attempts / retry_max_seconds (connection extras or operator "
                "arguments) if the API needs longer to recover.",
                status=exc.status, error_code=exc.error_code, api_message=exc.api_message,
            ) from exc

    def _fetch(self, url: str, params: Any, settings: HookSettings, what: str) -> tuple[bytes, requests.Response]:
        """Send one GET and read its body, within ``request_timeout`` however slowly the bytes come."""
        deadline = time.monotonic() + settings.request_timeout
        response = self._session().get(
            url, params=params, timeout=(settings.connect_timeout, settings.read_timeout), stream=True
        )
        chunks: list[bytes] = []
        try:
            raw = response.raw
            while True:
                if time.monotonic() > deadline:
                    raise RevCentTransientError(
                        f"RevCent did not finish sending the answer to the {what} within request_timeout="
                        f"{settings.request_timeout:g} s ({sum(map(len, chunks))} bytes so far): the server is "
                        "sending too slowly. Raise request_timeout (connection extra) if pages are this slow."
                    )
                chunk = raw.read1(1 << 16, decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
        except RevCentTransientError:
            response.close()
            raise
        except Exception as exc:
            response.close()
            # The same exceptions requests raises while reading .content.
            if type(exc).__module__.startswith("urllib3"):
                if "Timeout" in type(exc).__name__:
                    raise requests.Timeout(type(exc).__name__) from None
                raise requests.exceptions.ChunkedEncodingError(type(exc).__name__) from None
            raise
        response.close()
        return b"".join(chunks), response

    def _log_retry(self, state: tenacity.RetryCallState, attempts: int) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait_s = state.next_action.sleep if state.next_action else 0.0
        self.log.warning("%s (attempt %d of %d); retrying in %.1f s", exc, state.attempt_number, attempts, wait_s)

    # -- windows --------------------------------------------------------------------------------
    def iter_pages(
        self,
        windows: Sequence[Window],
        *,
        filters: CustomerFilters | None = None,
        page_size: int = MAX_PAGE_SIZE,
        skip_invalid: bool = False,
    ) -> Iterator[WindowBatch]:
        """Read windows concurrently; yield the customers each page adds, as pages arrive.

        Page 1 of a window is read first; once it tells ``total_pages``, the window's other pages
        are requested at once, all windows sharing ``max_concurrency`` (earlier windows first).
        Within a window a customer is yielded once, and only if the window contains its
        creation second. Memory stays bounded by the pages in flight.

        :param windows: the windows to read.
        :param filters: optional filters.
        :param page_size: customers per page, 1..25.
        :param skip_invalid: drop customers without a usable id instead of failing.
        """
        readers = [
            WindowReader(w, first_page=self._first_page, max_passes=self.max_passes, skip_invalid=skip_invalid)
            for w in windows
        ]
        plan = _ReadPlan(readers)
        limit = self.settings.max_concurrency
        self.pacer  # noqa: B018 - created here, once, before the threads that share it
        self._cancelled.clear()
        pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="revcent")
        inflight: dict[Future[CustomersPage], tuple[int, int]] = {}
        stall = self.stall_seconds
        last_page = time.monotonic()
        stalled = False
        try:
            while plan or inflight or plan.verify_finished_windows():
                while plan and len(inflight) < limit:
                    index, page = plan.pop()
                    window = readers[index].window
                    future = pool.submit(
                        self.get_customers_page, window.date_start, window.date_end, page,
                        limit=page_size, filters=filters, label=f"window {window}, page {page}",
                    )
                    inflight[future] = (index, page)
                finished, _ = wait(inflight, timeout=_stall_poll(stall, last_page), return_when=FIRST_COMPLETED)
                if not finished:
                    if time.monotonic() - last_page >= stall:
                        stalled = True
                        raise RevCentStalledError(self._stall_message(readers, inflight, stall))
                    continue
                last_page = time.monotonic()
                for future in finished:
                    index, page = inflight.pop(future)
                    batch = self._take_page(plan, index, page, future)
                    if batch.customers or batch.finished:
                        yield batch
        finally:
            # Stop retries and pauses at once; requests on the wire end within their read timeout (after a
            # stall they are not waited for: the error is raised now, the threads end on their own).
            self._cancelled.set()
            for future in inflight:
                future.cancel()
            pool.shutdown(wait=not stalled, cancel_futures=True)

    @property
    def stall_seconds(self) -> float:
        """Seconds without any page after which a read fails (see ``stall_timeout``)."""
        settings = self.settings
        if settings.stall_timeout is not None:
            return settings.stall_timeout
        return (settings.retry_max_seconds + settings.request_timeout + settings.read_timeout
                + settings.connect_timeout + 60.0)

    @staticmethod
    def _stall_message(readers: Sequence[WindowReader], inflight: Mapping[Future[CustomersPage], tuple[int, int]],
                       stall: float) -> str:
        waiting = sorted(inflight.values())
        shown = ", ".join(f"window {readers[i].window} page {p}" for i, p in waiting[:3])
        more = f" and {len(waiting) - 3} more" if len(waiting) > 3 else ""
        return (f"The read stalled: no page arrived for {stall:g} s while waiting on {shown}{more}. RevCent (or "
                "the network) is holding requests open; retry later, or raise stall_timeout (connection extra) "
                "if pages legitimately take this long.")

    def _take_page(self, plan: _ReadPlan, index: int, page: int, future: Future[CustomersPage]) -> WindowBatch:
        reader = plan.readers[index]
        was_done, was_verified = reader.done, reader.verified
        customers: list[dict[str, Any]] = []
        try:
            result = future.result()
        except RevCentRequestError:
            if page != 0 or reader.first_page != 1:
                raise
            next_pages = reader.on_probe_failed()  # page 0 refused: pages start at 1
        else:
            outcome = reader.on_page(page, result)
            next_pages, customers = outcome.next_pages, outcome.customers
            if reader.first_page == 0:
                self._first_page = 0
        plan.push(index, next_pages)
        batch = WindowBatch(index, reader.window, customers, total_count=reader.stats.total_count)
        if customers:
            batch.received_at = result.received_at
            if result.repairs:
                emitted = {c.get("id") for c in customers}
                batch.repairs = [r for r in result.repairs if r[0] in emitted]
        if plan.record(index, was_done=was_done, was_verified=was_verified):
            batch.finished = reader.stats
        return batch

    def iter_customers(
        self, window: Window, *, filters: CustomerFilters | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        """Yield the customers of one window one at a time, each once.

        :param window: the window to read.
        :param filters: optional filters.
        :param page_size: customers per page, 1..25.
        """
        for batch in self.iter_pages([window], filters=filters, page_size=page_size):
            yield from batch.customers

    def test_connection(self) -> tuple[bool, str]:
        """Make one cheap request (one customer of the last day) and say whether it worked."""
        try:
            now = int(time.time())
            # A short budget: the form should answer in seconds, not after ten minutes of retries.
            page = self.get_customers_page(now - 86400, now, 1, limit=1, label="connection test", budget=(2, 15.0))
        except RevCentAuthError as exc:
            return False, f"The API key was rejected: {exc}"
        except (RevCentAPIError, RevCentConfigError) as exc:
            return False, str(exc)
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Connected to {self.settings.base_url}: {page.total_count} customers created in the last day."


def _stall_poll(stall: float, last_page: float) -> float:
    """How long to wait for the next page before checking for a stall again."""
    return max(0.05, min(stall - (time.monotonic() - last_page), 5.0))


class _RetryWait:
    """Honour Retry-After when the server gave one; otherwise exponential backoff with full jitter."""

    def __init__(self, initial: float) -> None:
        self._backoff = tenacity.wait_random_exponential(multiplier=initial / 2, max=MAX_BACKOFF_SECONDS)

    def __call__(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(min(retry_after, MAX_BACKOFF_SECONDS))
        return float(self._backoff(state))


class _ReadPlan:
    """Which page of which window to request next (earlier windows first), and when to verify.

    :param readers: one reader per window, in window order.
    """

    def __init__(self, readers: Sequence[WindowReader]) -> None:
        self.readers = readers
        self._queue: list[tuple[int, int, int]] = []  # (window index, order, page)
        self._clock = 0
        self._started: dict[int, float] = {}
        self._done_at: dict[int, int] = {}  # window index -> when it last finished a read
        self._as_of: dict[int, int] = {}  # window index -> when it was last known complete
        for index, reader in enumerate(readers):
            self.push(index, reader.start())

    def __bool__(self) -> bool:
        return bool(self._queue)

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def push(self, index: int, pages: Sequence[int]) -> None:
        for page in pages:
            heapq.heappush(self._queue, (index, self._tick(), page))

    def pop(self) -> tuple[int, int]:
        index, _, page = heapq.heappop(self._queue)
        self._started.setdefault(index, time.monotonic())
        return index, page

    def record(self, index: int, *, was_done: bool, was_verified: bool) -> bool:
        """Note a reader's progress; True when the window has just finished a read."""
        reader = self.readers[index]
        if reader.verified and not was_verified:
            self._as_of[index] = self._tick()
        if reader.done and not was_done:
            self._done_at[index] = self._as_of[index] = self._tick()
            reader.stats.seconds = time.monotonic() - self._started[index]
            return True
        return False

    def verify_finished_windows(self) -> bool:
        """Every window is read: queue a check of those known complete only as of before the last
        one finished (see paging.py). False when there is nothing left to do."""
        last = max(self._done_at.values(), default=0)
        stale = [i for i in range(len(self.readers)) if self._as_of.get(i, last) < last]
        for index in stale:
            self.push(index, self.readers[index].verify())
        return bool(stale)
