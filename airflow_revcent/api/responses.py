"""The RevCent v2 API's answers, without Airflow: where the API is, and what one HTTP answer means.

:func:`parse_customers_response` is the one place an answer is read: a page of customers when the body
is the success envelope (``code: 1``), otherwise an error of the class that decides what happens next
(:class:`~airflow_revcent.exceptions.RevCentTransientError` is retried, the others fail at once).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from airflow_revcent.api.paging import CustomersPage
from airflow_revcent.exceptions import (
    RevCentAPIError,
    RevCentAuthError,
    RevCentConfigError,
    RevCentRequestError,
    RevCentTransientError,
)
from airflow_revcent.rows import jsontext

DEFAULT_HOST = "https://api.revcent.com"
#: The one definition of the endpoint's path (the operator's lineage names it too).
CUSTOMERS_ENDPOINT = "/v2/customers"
#: The API's largest ``limit``.
MAX_PAGE_SIZE = 25


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
    # repair_surrogates returns what it is given (typed Any): a str here.
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
    """:func:`parse_list_response` for ``GET /v2/customers``, whose envelope must carry its totals.

    :param status: HTTP status code.
    :param content: raw body.
    :param headers: response headers (for ``Retry-After``).
    :param what: names the request in messages (window and page).
    :param query: the request's query string, shown when the API refuses it (it never holds the key).
    """
    return parse_list_response(status, content, headers, what=what, query=query)


def parse_list_response(
    status: int,
    content: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    what: str = "request",
    query: str = "",
    path: str = CUSTOMERS_ENDPOINT,
    require_totals: bool = True,
    key_field: str = "id",
) -> CustomersPage:
    """Decide what one HTTP answer of a list operation is: a page of items, or an error of the right class.

    A body is a page only when it is JSON with ``code == 1`` and the envelope fields. Anything
    else raises: :class:`RevCentTransientError` (429, 5xx, a cut or unreadable body, an error
    envelope with HTTP 200), :class:`RevCentAuthError` (401/403, or an error envelope saying the key
    was rejected) or :class:`RevCentRequestError` (another 4xx, or an envelope refusing a parameter).

    The body is parsed exactly (:func:`airflow_revcent.rows.jsontext.loads`); lone surrogates in the
    customers are replaced by U+FFFD and reported in :attr:`CustomersPage.repairs`.

    :param status: HTTP status code.
    :param content: raw body.
    :param headers: response headers (for ``Retry-After``).
    :param what: names the request in messages (window and page).
    :param query: the request's query string, shown when the API refuses it (it never holds the key).
    :param path: the operation's path (named when the host has none).
    :param require_totals: the envelope must carry ``total_count`` and ``total_pages`` (customers'); otherwise
        they are read when present and the page's totals are ``None`` when absent.
    :param key_field: the field that identifies an item (names the items whose values were repaired).
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
            f"RevCent has no {path} at this host ({detail}). The connection's host must be the "
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
    # Without required totals, absent ones are None; present ones must still be integers.
    optional = (False, not require_totals, not require_totals)
    if (any(type(v) is not int and not (skip and v is None) for v, skip in zip(values, optional, strict=True))
            or not isinstance(results, list)):
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
            customer_id = customer.get(key_field) if isinstance(customer, dict) else None
            repairs += [(str(customer_id), field_path) for field_path in found]
    total_count, total_pages = values[1], values[2]
    if total_count is None or total_pages is None:
        total_count = total_pages = None  # half a total cannot drive paging: read to a short page
    return CustomersPage(int(body["current_page"]), total_count, total_pages, results, repairs=tuple(repairs))



def check_answer(
    status: int,
    content: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    what: str = "request",
    url: str = "",
) -> Any:
    """Classify any answer of the one request path the way pages are classified; the parsed JSON body
    (``None`` when it is not JSON) of an answer that is not an error.

    For the answers that are not pages (:meth:`RevCentHook.run`, the OpenAPI document): 429, 408 and 5xx
    are :class:`RevCentTransientError` (retried; a 429's ``Retry-After`` kept), 401/403
    :class:`RevCentAuthError`, another status outside 2xx :class:`RevCentRequestError`, and a RevCent error
    envelope (``code: 0``) with HTTP 2xx is classified as :func:`envelope_kind` says.

    :param status: HTTP status code.
    :param content: raw body.
    :param headers: response headers (for ``Retry-After``).
    :param what: names the request in messages.
    :param url: the URL without its query (never holds the key), shown when it was refused.
    """
    try:
        body: Any = jsontext.loads(content) if content else None
    except (ValueError, RecursionError):
        body = None
    error_code, api_message = _envelope(body)
    detail = _describe(status, error_code, api_message)
    kwargs: dict[str, Any] = {"status": status, "error_code": error_code, "api_message": api_message}
    if status == 429:
        raise RevCentTransientError(f"The server throttled the {what} ({detail}).",
                                    retry_after=parse_retry_after((headers or {}).get("Retry-After")), **kwargs)
    if status in (401, 403):
        raise RevCentAuthError(
            f"The server rejected the API key for the {what} ({detail}). Put a valid RevCent API key in the "
            "connection's password field, and check it is for the right mode (Live or Test).", **kwargs)
    if status == 408 or status >= 500:
        raise RevCentTransientError(f"The server failed the {what} ({detail}).", **kwargs)
    if not 200 <= status < 300:
        raise RevCentRequestError(
            f"The server refused the {what} ({detail}) for {url or 'the URL'}. Check the endpoint and its "
            "parameters.", **kwargs)
    if isinstance(body, dict) and body.get("code") == 0:
        kind = envelope_kind(error_code, api_message)
        error = {"auth": RevCentAuthError, "request": RevCentRequestError}.get(kind, RevCentTransientError)
        raise error(f"RevCent answered the {what} with an error envelope despite HTTP {status} ({detail}).",
                    **kwargs)
    return body
