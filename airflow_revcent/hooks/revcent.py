"""RevCentHook: the RevCent v2 API over HTTP for Airflow: the connection and the one request path.

The hook owns every byte sent to RevCent and nothing else: it knows windows of unix seconds and
returns parsed pages and customers; it knows nothing of BigQuery or of Airflow run dates.

One choke point: every request, pages, :meth:`RevCentHook.run` and the OpenAPI document alike, is sent
by ``_send``: paced by the hook's :class:`~airflow_revcent.api.pacing.Pacer`, retried under its
:class:`~airflow_revcent.api.retry.RetryPolicy`, counted, stoppable by :meth:`RevCentHook.cancel`, and
classified (:func:`~airflow_revcent.api.responses.parse_customers_response` for pages,
:func:`~airflow_revcent.api.responses.check_answer` for the rest). :meth:`RevCentHook.iter_pages` reads
windows concurrently on top of it (:class:`~airflow_revcent.api.reader.ConcurrentReader`).

The hook is an :class:`~airflow.providers.http.hooks.http.HttpHook` (its connection conventions, session
and keep-alive adapter, ``run``), with each of HttpHook's quirks overridden (see :class:`RevCentHook`).

The pure parts live in :mod:`airflow_revcent.api` (no Airflow import there).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from functools import cached_property, partial
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import requests
from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.providers.http.hooks.http import HttpHook
from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter

from airflow_revcent import __version__
from airflow_revcent.api.documents import (
    OPENAPI_ENDPOINT,
    CachedDocument,
    cached_document,
    cached_document_file,
    is_customers,
    parse_document,
    resource_from_document,
    same_origin,
    spec_location,
)
from airflow_revcent.api.filters import CustomerFilters, Filters
from airflow_revcent.api.options import RequestOptions
from airflow_revcent.api.pacing import Pacer
from airflow_revcent.api.paging import DEFAULT_MAX_PASSES, CustomersPage
from airflow_revcent.api.reader import ConcurrentReader, WindowBatch
from airflow_revcent.api.responses import (
    CUSTOMERS_ENDPOINT,
    DEFAULT_HOST,
    MAX_PAGE_SIZE,
    check_answer,
    parse_list_response,
)
from airflow_revcent.api.retry import RetryPolicy
from airflow_revcent.api.settings import HookSettings
from airflow_revcent.api.windows import Window
from airflow_revcent.exceptions import (
    RevCentAPIError,
    RevCentAuthError,
    RevCentCancelled,
    RevCentConfigError,
    RevCentRequestError,
    RevCentTransientError,
)
from airflow_revcent.resources import Resource
from airflow_revcent.rows.records import INVALID_POLICIES, InvalidPolicy

#: Marks an old keyword argument that was not given (None is a value some callers pass).
_UNSET: Any = object()

_T = TypeVar("_T")

#: Headers only the hook sets: a caller of run() or get_conn() cannot replace the key or add credentials.
_OWN_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie"})

#: HttpHook's TCP keep-alive defaults (seconds idle, probes, seconds between probes), kept.
_KEEP_ALIVE = {"idle": 120, "count": 20, "interval": 30}


class RevCentHook(HttpHook):
    """Talks to the RevCent v2 API: an :class:`~airflow.providers.http.hooks.http.HttpHook` whose every
    request takes the one request path.

    The connection (type ``revcent``): host = API root (empty for ``https://api.revcent.com``),
    password = API key. Optional extras: ``max_concurrency``, ``max_requests_per_second``
    (``0`` = no limit), ``connect_timeout``, ``read_timeout``, ``retry_max_attempts``,
    ``retry_max_seconds``, ``retry_initial_backoff``, ``request_timeout``, ``stall_timeout``, ``verify``
    (TLS verification, default true), ``openapi_spec`` (where RevCent's OpenAPI document is read from).
    ``options`` win over the extras. The constructor reads nothing; the connection is read on first use.

    How HttpHook's quirks are handled:

    - HttpHook sends every extra it does not know as a request header: :meth:`get_conn` never reads the
      extras into the session; the only headers are ``x-api-key``, ``Accept`` and ``User-Agent`` (and
      those a caller of :meth:`run` passes, which may not replace the key or add credentials).
    - HttpHook sends basic auth only when ``login`` is set (a password alone is ignored): the password is
      the key, sent as ``x-api-key``; a login is never sent (a warning says it is ignored); the session's
      ``auth`` is always ``None``.
    - HttpHook's ``get_conn()`` builds a new session each call but reuses one keep-alive adapter: so does
      this hook, on purpose. Each thread keeps one session (a session is not documented as thread-safe);
      every session mounts the hook's one :class:`TCPKeepAliveAdapter`, whose pool is sized to
      ``max_concurrency`` and which never retries by itself (the retry policy does).
    - HttpHook's ``run_with_advanced_retry`` wraps ``run`` in tenacity, retrying around the budget: here it
      sends once through :meth:`run`, which is retried under the hook's retry budget; ``_retry_args`` are
      ignored with a warning.
    - HttpHook turns a host without a scheme into ``http://`` (the URI form ``https://:KEY@host`` stores
      the scheme as the connection type, so the key would go out in clear text): the hook's base URL comes
      from :func:`~airflow_revcent.api.responses.base_url_from_host`, which means ``https`` unless the
      host says ``http://`` itself.
    - ``run`` and ``run_and_check`` send through the one request path, GET only, to the API's host only.

    :param revcent_conn_id: the Airflow connection id.
    :param options: how requests are sent (a ``RequestOptions``: concurrency,
        pace, timeouts, retry budget); each field left ``None`` falls back to the connection's extra, then
        to its default.
    :param max_passes: full re-reads allowed for a window whose results shift while it is paged.
    :param openapi_spec: a file path or URL of RevCent's OpenAPI document; wins over the connection extra
        ``openapi_spec`` (None: the extra, else ``/v2/openapi.json`` from the API's host).

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
        openapi_spec: str | None = None,
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
        # HttpHook's constructor reads nothing either; its keep-alive adapter is replaced by _adapter.
        super().__init__(method="GET", http_conn_id=revcent_conn_id, tcp_keep_alive=False)
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
        if openapi_spec is not None:
            spec_location(openapi_spec)  # a static argument: an empty value or another scheme fails now
        self.openapi_spec = openapi_spec
        self._document: CachedDocument | None = None
        self._document_lock = threading.Lock()
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
            extra=conn.extra_dejson, options=self.options, login=getattr(conn, "login", None),
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

    # -- HttpHook's surface, on the one request path -----------------------------------------------
    @cached_property
    def _adapter(self) -> TCPKeepAliveAdapter:
        """The one connection pool every session of this hook mounts (HttpHook's keep-alive adapter, sized
        to ``max_concurrency``; it never retries by itself: the retry policy does)."""
        settings = self.settings
        return TCPKeepAliveAdapter(**_KEEP_ALIVE, pool_connections=1,
                                   pool_maxsize=max(2, settings.max_concurrency), max_retries=0)

    def _set_base_url(self, connection: Any = None) -> None:
        # HttpHook's would make a host without a scheme http://; ours is https unless the host says http://.
        self.base_url = self.settings.base_url
        self._base_url_initialized = True

    def url_from_endpoint(self, endpoint: str | None) -> str:
        """The URL of ``endpoint`` (a path such as ``/v2/customers``) under the API root.

        :param endpoint: a path under the API root, or a full URL on the API's own host.
        :raises RevCentConfigError: a full URL on another host (the key is only ever sent to the API's).
        """
        base = self.settings.base_url
        text = (endpoint or "").strip()
        if "://" in text:
            if not same_origin(text, base):
                raise RevCentConfigError(
                    f"RevCentHook sends requests to the API's host {base} only (they carry the key); "
                    f"{urlsplit(text).netloc!r} is another. Give a path under the API root, such as /v2/customers."
                )
            return text
        return f"{base}/{text.lstrip('/')}" if text else base

    def get_conn(self, headers: dict[Any, Any] | None = None,
                 extra_options: dict[str, Any] | None = None) -> requests.Session:
        """A new requests session that authenticates to RevCent: the transport of the one request path.

        Unlike HttpHook's, it never turns connection extras into headers and never sends basic auth. A
        request sent on it directly is not paced, retried, counted or cancellable: use :meth:`run` or the
        hook's other methods.

        :param headers: more headers for the session (never the key or other credentials).
        :param extra_options: not supported: the connection's extras and ``options`` set timeouts and TLS.
        """
        _refuse_extra_options(extra_options, "get_conn")
        return self._new_session(keyed=True, headers=headers)

    def _new_session(self, *, keyed: bool, headers: Mapping[str, Any] | None = None) -> requests.Session:
        settings = self.settings
        session = requests.Session()
        session.auth = None  # HttpHook would send login:password as basic auth
        session.headers.update(_caller_headers(headers))
        session.headers.update({"Accept": "application/json",
                                "User-Agent": f"airflow-provider-revcent/{__version__}"})
        if keyed:
            session.headers["x-api-key"] = settings.api_key
        session.verify = settings.verify
        session.mount("https://", self._adapter)
        session.mount("http://", self._adapter)
        return session

    def _session(self, keyed: bool = True) -> requests.Session:
        # One session per thread (requests.Session is not documented as thread-safe), all on one pool; one
        # without the key for documents on other hosts.
        name = "session" if keyed else "plain_session"
        session: requests.Session | None = getattr(self._local, name, None)
        if session is None:
            session = self._new_session(keyed=keyed)
            setattr(self._local, name, session)
        return session

    def run(
        self,
        endpoint: str | None = None,
        data: dict[str, Any] | str | None = None,
        headers: dict[str, Any] | None = None,
        extra_options: dict[str, Any] | None = None,
        **request_kwargs: Any,
    ) -> requests.Response:
        """Send one GET to the API through the one request path (paced, retried, classified, counted,
        cancellable) and return the response, its body read.

        :param endpoint: a path under the API root, such as ``/v2/sales``.
        :param data: the query parameters.
        :param headers: more headers (never the key or other credentials).
        :param extra_options: not supported: the connection's extras and ``options`` set timeouts and TLS.
        :param request_kwargs: not supported (the hook sends GET requests with query parameters only).
        :raises RevCentAPIError: the answer is an error, classified as pages are (retried when transient).
        """
        _refuse_extra_options(extra_options, "run")
        if request_kwargs:
            raise RevCentConfigError(
                f"RevCentHook.run() sends GET requests with query parameters (data) only; it does not take "
                f"{', '.join(sorted(request_kwargs))}."
            )
        if self.method != "GET":
            raise RevCentConfigError(f"RevCentHook sends GET requests only; method is {self.method!r}.")
        url = self.url_from_endpoint(endpoint)
        what = f"GET {urlsplit(url).path or '/'}"
        return self._send(url, data, what=what, parse=partial(_checked_response, what=what),
                          headers=_caller_headers(headers))

    def run_and_check(self, session: requests.Session, prepped_request: requests.PreparedRequest,
                      extra_options: dict[Any, Any]) -> requests.Response:
        """Send a prepared GET through the one request path (its session and headers are not used: the
        hook's session carries the key and nothing from the extras).

        :param session: ignored.
        :param prepped_request: the request; GET to the API's host only.
        :param extra_options: not supported.
        """
        _refuse_extra_options(extra_options, "run_and_check")
        if (prepped_request.method or "").upper() != "GET":
            raise RevCentConfigError(f"RevCentHook sends GET requests only, not {prepped_request.method}.")
        url = self.url_from_endpoint(str(prepped_request.url))
        what = f"GET {urlsplit(url).path or '/'}"
        return self._send(url, None, what=what, parse=partial(_checked_response, what=what))

    def run_with_advanced_retry(self, _retry_args: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
        """:meth:`run`, retried under the hook's retry budget (not tenacity's): ``_retry_args`` are ignored
        with a warning, so retries never multiply around the budget.

        :param _retry_args: ignored (set ``retry_max_attempts`` etc. in the connection or ``options``).
        """
        if _retry_args:
            self.log.warning(
                "RevCentHook.run_with_advanced_retry ignores _retry_args: every request is retried under the "
                "hook's retry budget (retry_max_attempts=%d, retry_max_seconds=%g); set those instead.",
                self.settings.retry_max_attempts, self.settings.retry_max_seconds,
            )
        return self.run(*args, **kwargs)

    # -- the one request path -------------------------------------------------------------------
    def get_customers_page(
        self,
        date_start: int,
        date_end: int,
        page: int,
        *,
        limit: int = MAX_PAGE_SIZE,
        filters: CustomerFilters | Filters | None = None,
        label: str | None = None,
        budget: tuple[int, float] | None = None,
    ) -> CustomersPage:
        """Fetch one page of ``GET /v2/customers``, paced and retried (:meth:`get_page` for customers).

        :param date_start: ``date_start`` (unix seconds) as sent.
        :param date_end: ``date_end`` (unix seconds) as sent.
        :param page: page number.
        :param limit: customers per page, 1..25.
        :param filters: optional filters.
        :param label: how messages name this request (defaults to the dates and page).
        :param budget: (attempts, seconds) instead of the connection's retry budget.
        """
        return self.get_page(CUSTOMERS_ENDPOINT, date_start, date_end, page, limit=limit, filters=filters,
                             label=label, budget=budget)

    def get_page(
        self,
        path: str,
        date_start: int,
        date_end: int,
        page: int,
        *,
        limit: int = MAX_PAGE_SIZE,
        filters: CustomerFilters | Filters | None = None,
        label: str | None = None,
        budget: tuple[int, float] | None = None,
        require_totals: bool = True,
        key_field: str = "id",
    ) -> CustomersPage:
        """Fetch one page of any date-ranged list operation (``GET path``), paced and retried.

        :param path: the operation's path, ``/v2/sales`` (a :class:`~airflow_revcent.resources.Resource`'s).
        :param date_start: ``date_start`` (unix seconds) as sent.
        :param date_end: ``date_end`` (unix seconds) as sent.
        :param page: page number.
        :param limit: items per page, 1..25.
        :param filters: optional filters, validated for this operation.
        :param label: how messages name this request (defaults to the dates and page).
        :param budget: (attempts, seconds) instead of the connection's retry budget.
        :param require_totals: the envelope must carry ``total_count``/``total_pages`` (customers'); else a
            page without them has ``None`` totals and the window is read to a short page.
        :param key_field: the field that identifies an item.
        """
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise RevCentConfigError(f"page_size={limit} is outside 1..{MAX_PAGE_SIZE}, the API's limit.")
        if not path.startswith("/") or "//" in path or "?" in path:
            raise RevCentConfigError(f"path={path!r} must be an API path such as /v2/sales.")
        params: list[tuple[str, str | int]] = [
            ("date_start", date_start), ("date_end", date_end), ("page", page), ("limit", limit),
        ]
        params.extend((filters or CustomerFilters()).to_params())
        what = label or f"request for date_start={date_start}, date_end={date_end}, page {page}"
        settings = self.settings
        policy = self.retry_policy
        if budget is not None:
            policy = replace(policy, max_attempts=budget[0], max_seconds=budget[1])
        url = settings.base_url + path
        query = urlencode(params)

        def parse(content: bytes, response: requests.Response) -> CustomersPage:
            received_at = time.time()
            page = parse_list_response(response.status_code, content, response.headers, what=what, query=query,
                                       path=path, require_totals=require_totals, key_field=key_field)
            return replace(page, received_at=received_at)

        return self._send(url, params, what=what, parse=parse, policy=policy)

    def _send(
        self,
        url: str,
        params: Any,
        *,
        what: str,
        parse: Callable[[bytes, requests.Response], _T],
        policy: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        keyed: bool = True,
    ) -> _T:
        """The one request path: one GET, paced, counted, cancellable, classified by ``parse`` and retried
        under ``policy`` (the connection's budget by default).

        :param url: the URL (the API's host when ``keyed``).
        :param params: the query parameters.
        :param what: names the request in messages.
        :param parse: reads an answer; raises the error class that decides what happens next.
        :param policy: the retry budget.
        :param headers: more headers for this request.
        :param keyed: send the key (only to the API's own host).
        """
        settings = self.settings
        if keyed and not same_origin(url, settings.base_url):
            # Defence in depth: every caller checks already; the key never leaves for another host.
            raise RevCentConfigError(f"Refusing to send the key to {urlsplit(url).netloc!r}, which is not the "
                                     f"API's host ({settings.base_url}).")

        def attempt() -> _T:
            if self._cancelled.is_set():
                raise RevCentCancelled(f"The {what} was not sent: the read was stopped.")
            sent_at = self.pacer.acquire()
            if self._cancelled.is_set():
                raise RevCentCancelled(f"The {what} was not sent: the read was stopped.")
            with self._requests_lock:
                self.requests_sent += 1
            try:
                content, response = self._fetch(url, params, settings, what, headers=headers, keyed=keyed)
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
            try:
                result = parse(content, response)
            except RevCentTransientError as exc:
                if exc.status == 429:
                    with self._requests_lock:
                        self.throttled += 1
                    self.pacer.on_throttle(sent_at, exc.retry_after)
                raise
            self.pacer.on_success(sent_at)
            return result

        return (policy or self.retry_policy).call(attempt, what=what, cancelled=self._cancelled,
                                                  sleep=self._cancellable_sleep, on_retry=self._log_retry)

    def _fetch(self, url: str, params: Any, settings: HookSettings, what: str, *,
               headers: Mapping[str, str] | None = None, keyed: bool = True) -> tuple[bytes, requests.Response]:
        """Send one GET and read its body, within ``request_timeout`` however slowly the bytes come."""
        deadline = time.monotonic() + settings.request_timeout
        session = self._session() if keyed else self._session(keyed=False)
        extra: dict[str, Any] = {"headers": dict(headers)} if headers else {}
        response = session.get(
            url, params=params, timeout=(settings.connect_timeout, settings.read_timeout), stream=True, **extra
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

    # -- RevCent's OpenAPI document -----------------------------------------------------------------
    def get_openapi_document(self) -> dict[str, Any]:
        """RevCent's OpenAPI document, parsed (read-only: the worker's other hooks share it); read once per
        hook (so once per task), parsed once per worker process for the same bytes.

        From ``openapi_spec`` (the constructor's, else the connection extra's): a local file, or a URL, which
        receives the key only when it is on the API's own host. Without it, ``/v2/openapi.json`` from the
        API's host. URLs are fetched through the one request path (paced, retried, counted, cancellable).

        :raises RevCentConfigError: ``openapi_spec`` names a file that cannot be read or is not a JSON object.
        :raises RevCentAPIError: the document could not be fetched (the error says why).
        """
        return self._openapi_document().body

    def _openapi_document(self) -> CachedDocument:
        with self._document_lock:
            if self._document is None:
                self._document = self._read_openapi_document()
            return self._document

    @property
    def openapi_source(self) -> str:
        """Where :meth:`get_openapi_document` reads the document from (a file path or a URL)."""
        spec = self.openapi_spec or self.settings.openapi_spec
        if spec is None:
            return self.settings.base_url + OPENAPI_ENDPOINT
        return spec_location(spec)[1]

    def _read_openapi_document(self) -> CachedDocument:
        spec = self.openapi_spec or self.settings.openapi_spec
        kind, where = spec_location(spec) if spec is not None else ("url", self.openapi_source)
        if kind == "file":
            document = cached_document_file(where)
            self.log.info("Read RevCent's OpenAPI document from the file %s (sha256 %s)", where, document.digest)
            return document
        keyed = same_origin(where, self.settings.base_url)
        # Only the path and host go into messages: a URL's query could hold a token.
        shown = f"{urlsplit(where).scheme}://{urlsplit(where).netloc}{urlsplit(where).path}"
        what = f"OpenAPI document request ({shown})"

        def parse(content: bytes, response: requests.Response) -> CachedDocument:
            def document(data: bytes) -> dict[str, Any]:
                return parse_document(response.status_code, data, response.headers, what=what, url=shown)

            if not 200 <= response.status_code < 300:
                document(content)  # raises: an error status is classified as always, never looked up
            return cached_document(content, document)

        fetched = self._send(where, None, what=what, parse=parse, keyed=keyed)
        self.log.info("Fetched RevCent's OpenAPI document from %s (%s the API key; sha256 %s)", shown,
                      "with" if keyed else "without", fetched.digest)
        return fetched

    def get_resource(self, name: str, *, key_field: str | None = None, created_field: str | None = None) -> Resource:
        """The list resource ``name`` from RevCent's OpenAPI document (:meth:`get_openapi_document`).

        When no ``openapi_spec`` is set, customers comes from the packaged GetCustomers operation (with a
        warning that says why) if ``/v2/openapi.json`` cannot be had (unreachable, refused, not JSON) or holds
        no usable customers list; any other resource is an error that says why. A rejected API key is always
        :class:`~airflow_revcent.exceptions.RevCentAuthError`, and an ``openapi_spec`` that cannot be read or
        lacks the resource is always an error: a pinned document is never replaced.

        :param name: a list path's last segment (``"sales"``) or an operationId (``"GetSales"``).
        :param key_field: the item's identifying field, when not ``id``.
        :param created_field: the item's creation time, when not ``created_date_unix``.
        """
        pinned = bool(self.openapi_spec or self.settings.openapi_spec)
        try:
            document = self._openapi_document()
        except RevCentAuthError:
            raise  # the list requests would be refused too: say so now, before any of them
        except (RevCentAPIError, RevCentConfigError) as exc:
            if pinned:
                raise
            self.log.warning("RevCent's OpenAPI document could not be had (%s); resource %r is read from the "
                             "packaged operation if it is customers", exc, name)
            return resource_from_document(name, None, unavailable=str(exc), key_field=key_field,
                                          created_field=created_field)
        try:
            return document.resource(name, source=self.openapi_source, key_field=key_field,
                                     created_field=created_field)
        except RevCentConfigError as exc:
            if pinned or not is_customers(name):
                raise
            self.log.warning("RevCent's OpenAPI document has no usable customers list (%s); customers are read "
                             "with the packaged GetCustomers operation", exc)
            return resource_from_document(name, None, key_field=key_field, created_field=created_field)

    def _log_retry(self, exc: BaseException | None, attempt: int, attempts: int, wait_s: float) -> None:
        with self._requests_lock:
            self.retries += 1
        self.log.warning("%s (attempt %d of %d); retrying in %.1f s", exc, attempt, attempts, wait_s)

    # -- windows --------------------------------------------------------------------------------
    def iter_pages(
        self,
        windows: Sequence[Window],
        *,
        filters: CustomerFilters | Filters | None = None,
        page_size: int = MAX_PAGE_SIZE,
        on_invalid_record: InvalidPolicy = "fail",
        resource: Resource | None = None,
        skip_invalid: bool | None = None,
    ) -> Iterator[WindowBatch]:
        """Read windows concurrently; yield the items each page adds, as pages arrive.

        Page 1 of a window is read first; once it tells ``total_pages``, the window's other pages
        are requested at once, all windows sharing ``max_concurrency`` (earlier windows first); an
        envelope without totals is read page after page to a short page. Within a window an item is
        yielded once, and only if the window contains its creation second. Memory stays bounded by
        the pages in flight.

        :param windows: the windows to read.
        :param filters: optional filters (validated for ``resource``).
        :param page_size: items per page, 1..25.
        :param on_invalid_record: ``"fail"`` (default): an item without a usable key or creation time fails
            the read; ``"keep"``: such items are skipped and counted (the operator's ``on_invalid_record``).
        :param resource: the list resource to read (default: customers, from ``/v2/customers``).
        :param skip_invalid: deprecated: ``True`` is ``on_invalid_record="keep"``.
        """
        if skip_invalid is not None:
            warnings.warn("RevCentHook.iter_pages(skip_invalid=...) is deprecated: pass on_invalid_record='keep' "
                          "(or 'fail') instead.", AirflowProviderDeprecationWarning, stacklevel=2)
            on_invalid_record = "keep" if skip_invalid else "fail"
        if on_invalid_record not in INVALID_POLICIES:
            raise RevCentConfigError(f"on_invalid_record={on_invalid_record!r} must be one of "
                                     f"{', '.join(map(repr, INVALID_POLICIES))}.")
        path = resource.path if resource is not None else CUSTOMERS_ENDPOINT
        key_field = resource.key_field if resource is not None else "id"
        created_field = resource.created_field if resource is not None else "created_date_unix"
        # Customers' envelope always carried its totals (a page without them is a changed contract);
        # other resources' envelopes may not, whatever their document says.
        require_totals = path == CUSTOMERS_ENDPOINT

        def fetch(window: Window, page: int) -> CustomersPage:
            return self.get_page(path, window.date_start, window.date_end, page, limit=page_size, filters=filters,
                                 label=f"window {window}, page {page}", require_totals=require_totals,
                                 key_field=key_field)

        reader = ConcurrentReader(
            fetch, max_concurrency=self.settings.max_concurrency, stall_seconds=self.stall_seconds,
            max_passes=self.max_passes, first_page=self._first_page, cancelled=self._cancelled,
            page_size=page_size, key_field=key_field, created_field=created_field,
            item=_item_name(resource),
        )
        self.pacer  # noqa: B018 - created here, once, before the threads that share it
        self._adapter  # noqa: B018 - likewise the one connection pool every thread's session mounts
        try:
            for batch in reader.read(windows, on_invalid_record=on_invalid_record):
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


def _item_name(resource: Resource | None) -> str:
    """What messages call one item of ``resource``: ``customer``, else ``<name> item`` (``sales item``)."""
    if resource is None or resource.path == CUSTOMERS_ENDPOINT:
        return "customer"
    return f"{resource.name} item"


def _refuse_extra_options(extra_options: Mapping[str, Any] | None, method: str) -> None:
    if extra_options:
        raise RevCentConfigError(
            f"RevCentHook.{method}() does not take extra_options ({', '.join(sorted(extra_options))}): timeouts, "
            "TLS verification and retries come from the connection's extras and options=RequestOptions(...)."
        )


def _caller_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """A caller's extra headers, refusing any that would replace the key or add credentials."""
    given = {str(k): str(v) for k, v in (headers or {}).items()}
    refused = sorted(k for k in given if k.lower() in _OWN_HEADERS)
    if refused:
        raise RevCentConfigError(
            f"RevCentHook does not send the headers {', '.join(refused)} from a caller: the key goes as x-api-key "
            "from the connection's password, and nothing else carries credentials."
        )
    return given


def _checked_response(content: bytes, response: requests.Response, *, what: str) -> requests.Response:
    """A response of :meth:`RevCentHook.run`, classified, its body already read (``.content``, ``.json()``)."""
    check_answer(response.status_code, content, response.headers, what=what, url=what.removeprefix("GET "))
    response._content = content  # the body was streamed; give it to the response as requests would
    return response
