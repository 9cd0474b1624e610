"""RevCentHook: the RevCent v2 API over HTTP for Airflow: the connection and the one request path.

The hook owns every byte sent to RevCent and nothing else: it knows windows of unix seconds and
returns parsed pages and customers; it knows nothing of BigQuery or of Airflow run dates.

One choke point: :meth:`RevCentHook.get_customers_page` sends every request, paced by the hook's
:class:`~airflow_revcent.pacing.Pacer`, retried under its :class:`~airflow_revcent.api.retry.RetryPolicy`,
counted, stoppable by :meth:`RevCentHook.cancel`, and classified by
:func:`~airflow_revcent.api.responses.parse_customers_response`. :meth:`RevCentHook.iter_pages` reads
windows concurrently on top of it (:class:`~airflow_revcent.api.reader.ConcurrentReader`). The hook is a
plain :class:`airflow.sdk.BaseHook`: there is no generic ``run`` that could send a request around it.

The pure parts live in :mod:`airflow_revcent.api` (no Airflow import there); the names users import
from this module are re-exported here.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

import requests
from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.sdk import BaseHook
from requests.adapters import HTTPAdapter

from airflow_revcent import __version__
from airflow_revcent.api.options import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_REQUESTS_PER_SECOND,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_RETRY_INITIAL_BACKOFF,
    DEFAULT_RETRY_MAX_ATTEMPTS,
    DEFAULT_RETRY_MAX_SECONDS,
    RequestOptions,
)
from airflow_revcent.api.reader import ConcurrentReader, WindowBatch
from airflow_revcent.api.responses import (
    CUSTOMERS_ENDPOINT,
    DEFAULT_HOST,
    MAX_PAGE_SIZE,
    base_url_from_host,
    envelope_kind,
    parse_customers_response,
    parse_retry_after,
)
from airflow_revcent.api.retry import MAX_BACKOFF_SECONDS, RetryPolicy
from airflow_revcent.api.settings import KNOWN_EXTRAS, HookSettings, account_share
from airflow_revcent.exceptions import (
    RevCentAPIError,
    RevCentAuthError,
    RevCentCancelled,
    RevCentConfigError,
    RevCentRequestError,
    RevCentTransientError,
)
from airflow_revcent.filters import CustomerFilters
from airflow_revcent.pacing import Pacer
from airflow_revcent.paging import DEFAULT_MAX_PASSES, CustomersPage, WindowStats
from airflow_revcent.windows import Window

__all__ = [
    "CUSTOMERS_ENDPOINT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_HOST",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_REQUESTS_PER_SECOND",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_RETRY_INITIAL_BACKOFF",
    "DEFAULT_RETRY_MAX_ATTEMPTS",
    "DEFAULT_RETRY_MAX_SECONDS",
    "KNOWN_EXTRAS",
    "MAX_BACKOFF_SECONDS",
    "MAX_PAGE_SIZE",
    "CustomersPage",
    "HookSettings",
    "RequestOptions",
    "RevCentHook",
    "WindowBatch",
    "WindowStats",
    "account_share",
    "base_url_from_host",
    "envelope_kind",
    "parse_customers_response",
    "parse_retry_after",
]

#: Marks an old keyword argument that was not given (None is a value some callers pass).
_UNSET: Any = object()


class RevCentHook(BaseHook):
    """Talks to the RevCent v2 API.

    The connection (type ``revcent``): host = API root (empty for ``https://api.revcent.com``),
    password = API key. Optional extras: ``max_concurrency``, ``max_requests_per_second``
    (``0`` = no limit), ``connect_timeout``, ``read_timeout``, ``retry_max_attempts``,
    ``retry_max_seconds``, ``retry_initial_backoff``, ``request_timeout``, ``stall_timeout``, ``verify``
    (TLS verification, default true). ``options`` win over the extras. The constructor reads nothing;
    the connection is read on first use.

    :param revcent_conn_id: the Airflow connection id.
    :param options: how requests are sent (a ``RequestOptions``: concurrency,
        pace, timeouts, retry budget); each field left ``None`` falls back to the connection's extra, then
        to its default.
    :param max_passes: full re-reads allowed for a window whose results shift while it is paged.

    The keyword arguments ``max_concurrency``, ``max_requests_per_second``, ``connect_timeout``,
    ``read_timeout``, ``request_timeout``, ``stall_timeout``, ``retry_max_attempts``, ``retry_max_seconds``
    and ``retry_initial_backoff`` still work but are deprecated: pass ``options=RequestOptions(...)``.
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
        options: RequestOptions | None = None,
        max_passes: int = DEFAULT_MAX_PASSES,
        max_concurrency: int | None = _UNSET,
        max_requests_per_second: float | None = _UNSET,
        connect_timeout: float | None = _UNSET,
        read_timeout: float | None = _UNSET,
        retry_max_attempts: int | None = _UNSET,
        retry_max_seconds: float | None = _UNSET,
        retry_initial_backoff: float | None = _UNSET,
        request_timeout: float | None = _UNSET,
        stall_timeout: float | None = _UNSET,
    ) -> None:
        super().__init__()
        old_arguments: dict[str, Any] = {
            "max_concurrency": max_concurrency, "max_requests_per_second": max_requests_per_second,
            "connect_timeout": connect_timeout, "read_timeout": read_timeout, "request_timeout": request_timeout,
            "stall_timeout": stall_timeout, "retry_max_attempts": retry_max_attempts,
            "retry_max_seconds": retry_max_seconds, "retry_initial_backoff": retry_initial_backoff,
        }
        legacy = {name: value for name, value in old_arguments.items() if value is not _UNSET}
        if legacy:
            warnings.warn(
                f"RevCentHook({', '.join(f'{name}=...' for name in legacy)}) is deprecated: pass "
                f"options=RequestOptions({', '.join(f'{name}=...' for name in legacy)}) instead.",
                AirflowProviderDeprecationWarning, stacklevel=2,
            )
            options = (options or RequestOptions()).merged(
                RequestOptions(**{k: v for k, v in legacy.items() if v is not None})
            )
        self.revcent_conn_id = revcent_conn_id
        self.options = options or RequestOptions()
        self.max_passes = max_passes
        self._local = threading.local()
        # Set when a read is abandoned (the consumer failed) or cancelled: threads stop retrying and pausing.
        self._cancelled = threading.Event()
        self._first_page = 1
        self._requests_lock = threading.Lock()
        #: HTTP requests sent by this hook (retries included).
        self.requests_sent = 0
        #: Requests sent again after a retryable failure (each wait before another attempt counts one).
        self.retries = 0
        #: Answers that were HTTP 429 (throttled).
        self.throttled = 0

    # -- connection -----------------------------------------------------------------------------
    @cached_property
    def settings(self) -> HookSettings:
        """The connection, read once, validated, merged with this hook's options."""
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
        settings, notes = HookSettings.from_connection(
            self.revcent_conn_id, host=conn.host, port=conn.port, password=conn.password,
            extra=conn.extra_dejson, options=self.options,
        )
        for level, message, args in notes:
            self.log.log(level, message, *args)
        return settings

    def check_connection(self) -> HookSettings:
        """Read and check the connection now (it is otherwise read on first use); its settings."""
        return self.settings

    @cached_property
    def pacer(self) -> Pacer:
        """The pace shared by every request this hook sends."""
        return Pacer(self.settings.max_requests_per_second or None, sleep=self._cancellable_sleep)

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry budget of one request, from the settings."""
        settings = self.settings
        return RetryPolicy(settings.retry_max_attempts, settings.retry_max_seconds, settings.retry_initial_backoff)

    def cancel(self) -> None:
        """Stop every retry and pause of a read in progress (on_kill); requests on the wire end within their
        read timeout."""
        self._cancelled.set()

    def _cancellable_sleep(self, seconds: float) -> None:
        self._cancelled.wait(seconds)

    def get_conn(self) -> requests.Session:
        """A new requests session that authenticates to RevCent: the transport of :meth:`get_customers_page`.

        A request sent on it directly is not paced, retried, counted or cancellable: use the hook's methods.
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
        return session

    def _session(self) -> requests.Session:
        # One session per thread: requests.Session is not documented as thread-safe.
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self.get_conn()
        return session

    # -- the one request path -------------------------------------------------------------------
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
        policy = self.retry_policy
        if budget is not None:
            policy = replace(policy, max_attempts=budget[0], max_seconds=budget[1])
        url = settings.base_url + CUSTOMERS_ENDPOINT

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
                    with self._requests_lock:
                        self.throttled += 1
                    self.pacer.on_throttle(sent_at, exc.retry_after)
                raise
            self.pacer.on_success(sent_at)
            return replace(result, received_at=received_at)

        return policy.call(attempt, what=what, cancelled=self._cancelled, sleep=self._cancellable_sleep,
                           on_retry=self._log_retry)

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

    def _log_retry(self, exc: BaseException | None, attempt: int, attempts: int, wait_s: float) -> None:
        with self._requests_lock:
            self.retries += 1
        self.log.warning("%s (attempt %d of %d); retrying in %.1f s", exc, attempt, attempts, wait_s)

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

        def fetch(window: Window, page: int) -> CustomersPage:
            return self.get_customers_page(window.date_start, window.date_end, page, limit=page_size,
                                           filters=filters, label=f"window {window}, page {page}")

        reader = ConcurrentReader(
            fetch, max_concurrency=self.settings.max_concurrency, stall_seconds=self.stall_seconds,
            max_passes=self.max_passes, first_page=self._first_page, cancelled=self._cancelled,
        )
        self.pacer  # noqa: B018 - created here, once, before the threads that share it
        try:
            for batch in reader.read(windows, skip_invalid=skip_invalid):
                self._first_page = reader.first_page
                yield batch
        finally:
            self._first_page = reader.first_page

    @property
    def stall_seconds(self) -> float:
        """Seconds without any page after which a read fails (see ``stall_timeout``)."""
        return self.settings.stall_seconds

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
