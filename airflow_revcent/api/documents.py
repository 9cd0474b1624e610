"""RevCent's OpenAPI document, without Airflow: where it comes from, what a fetched one must be, and which
resource to land when none can be had.

The hook fetches the document (:meth:`~airflow_revcent.hooks.revcent.RevCentHook.get_openapi_document`);
these helpers decide everything that needs no network: whether ``openapi_spec`` names a URL or a file,
whether a URL is on the API's own host (only then does it receive the key), whether an answer is a
document, and :func:`resource_from_document`, which falls back to the packaged GetCustomers operation for
customers when no document could be had.

A worker keeps the last few documents it parsed, by the sha256 of their bytes (:func:`cached_document`):
the hook still fetches the document once per task (RevCent may change it), but mapped tasks and the many
operators a worker runs parse a document they have seen before, and build its resources' columns, once.

How the live document's customers relate to the packaged GetCustomers operation: the live document wins
whenever it has a date-ranged customers list (RevCent's current contract: path, range, filters, columns,
as for every other resource); the packaged operation is the fallback when no document can be had, when
the document cannot be read, or when it lacks a usable customers list. The packaged operation is also
the contract :class:`~airflow_revcent.api.filters.CustomerFilters` (the customers preset's named filters)
checks against, so those filters' messages never change with the document.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow_revcent.api.responses import check_answer
from airflow_revcent.exceptions import RevCentAPIError, RevCentConfigError, RevCentTransientError
from airflow_revcent.resources import OpenAPIDocument, Resource, find_resource, packaged_document

#: Where RevCent serves its full OpenAPI 3.1 document, under the API root.
OPENAPI_ENDPOINT = "/v2/openapi.json"

#: The names :func:`resource_from_document` answers from the packaged operation when there is no document.
_CUSTOMERS_NAMES = ("customers", "getcustomers")
#: How many parsed documents a worker process keeps (a few versions of RevCent's document at most).
DOCUMENT_CACHE_SIZE = 4


def is_customers(name: str) -> bool:
    """Whether ``name`` means the customers resource (its path's last segment or its operationId).

    :param name: a resource name as an operator or the hook is given it.
    """
    return str(name).strip().lower() in _CUSTOMERS_NAMES


def document_digest(content: bytes) -> str:
    """The sha256 (hex) of a document's bytes: what the worker's cache knows it by.

    :param content: the document's bytes, as fetched or read.
    """
    return hashlib.sha256(content).hexdigest()


class CachedDocument:
    """A parsed document and the resources already found in it, shared by every hook of a worker process
    that reads the same bytes (thread-safe; read-only once built).

    :param digest: the sha256 of the document's bytes.
    :param body: the parsed JSON.
    """

    def __init__(self, digest: str, body: dict[str, Any]) -> None:
        self.digest = digest
        self.body = body
        self._lock = threading.Lock()
        self._documents: dict[str, OpenAPIDocument] = {}
        self._resources: dict[tuple[str, str, str | None, str | None], Resource] = {}

    def resource(self, name: str, *, source: str, key_field: str | None = None,
                 created_field: str | None = None) -> Resource:
        """The resource ``name`` (:func:`~airflow_revcent.resources.find_resource`), found once per process.

        :param name: a list path's last segment or an operationId.
        :param source: how messages name the document.
        :param key_field: the item's identifying field, when not ``id``.
        :param created_field: the item's creation time, when not ``created_date_unix``.
        """
        key = (source, str(name).strip().lower(), key_field, created_field)
        with self._lock:
            found = self._resources.get(key)
            if found is not None:
                return found
            document = self._documents.get(source)
            if document is None:
                document = self._documents[source] = OpenAPIDocument(self.body, source=source)
            found = find_resource(document, name, key_field=key_field, created_field=created_field)
            found.columns  # noqa: B018 - built once here, not by every task that lands it
            self._resources[key] = found
            return found


_cache: OrderedDict[str, CachedDocument] = OrderedDict()
_cache_lock = threading.Lock()


def cached_document(content: bytes, parse: Callable[[bytes], dict[str, Any]]) -> CachedDocument:
    """The document whose bytes are ``content``: parsed by ``parse`` the first time this process sees them,
    else the parse kept then (the last :data:`DOCUMENT_CACHE_SIZE` documents are kept).

    :param content: the document's bytes.
    :param parse: turns the bytes into the document, or raises why they are not one (nothing is kept then).
    """
    digest = document_digest(content)
    with _cache_lock:
        hit = _cache.get(digest)
        if hit is not None:
            _cache.move_to_end(digest)
            return hit
    entry = CachedDocument(digest, parse(content))  # parsed outside the lock: another digest need not wait
    with _cache_lock:
        entry = _cache.setdefault(digest, entry)
        _cache.move_to_end(digest)
        while len(_cache) > DOCUMENT_CACHE_SIZE:
            _cache.popitem(last=False)
    return entry


def clear_document_cache() -> None:
    """Forget every parsed document (for tests)."""
    with _cache_lock:
        _cache.clear()


def spec_location(spec: str) -> tuple[str, str]:
    """What an ``openapi_spec`` value names: ``("url", url)`` for http(s), else ``("file", path)``.

    ``file://`` URLs are read as files. Any other scheme is an error.

    :param spec: the connection extra or operator argument ``openapi_spec``.
    """
    text = spec.strip()
    if not text:
        raise RevCentConfigError("openapi_spec is empty: give the path of a JSON file or an http(s) URL, or leave "
                                 "it unset to fetch /v2/openapi.json from the API.")
    scheme = urlsplit(text).scheme.lower()
    if scheme in ("http", "https"):
        return "url", text
    if scheme == "file":
        return "file", unquote(urlsplit(text).path)
    if "://" in text:
        raise RevCentConfigError(f"openapi_spec={spec!r} has the scheme {scheme!r}; give an http(s) URL, a "
                                 "file:// URL or a local path.")
    return "file", text


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, with the scheme's default port filled in.

    :param url: an absolute http(s) URL.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise RevCentConfigError(f"{url!r} has an invalid port.") from None
    default = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port if port is not None else default


def same_origin(url: str, base_url: str) -> bool:
    """Whether ``url`` is on the API's own scheme, host and port: only such a URL receives the API key.

    :param url: the URL about to be requested.
    :param base_url: the API root (the hook's ``base_url``).
    """
    return origin(url) == origin(base_url)


def parse_document(status: int, content: bytes, headers: Mapping[str, str] | None = None, *,
                   what: str, url: str) -> dict[str, Any]:
    """The OpenAPI document an answer holds, or the error that says why it is not one.

    Status codes are classified as every answer is (:func:`~airflow_revcent.api.responses.check_answer`);
    a 2xx body that is not JSON (cut short) is transient; JSON that is not an object is an API error.

    :param status: HTTP status code.
    :param content: raw body.
    :param headers: response headers.
    :param what: names the request in messages.
    :param url: the URL without its query, for messages.
    """
    body = check_answer(status, content, headers, what=what, url=url)
    if body is None:
        raise RevCentTransientError(
            f"The answer to the {what} is not JSON (cut short or garbled, {len(content)} bytes).", status=status)
    if not isinstance(body, dict):
        raise RevCentAPIError(
            f"The answer to the {what} is JSON but a {type(body).__name__}, not an OpenAPI document (an object). "
            "Point openapi_spec at RevCent's /v2/openapi.json or a saved copy.", status=status)
    return body


def read_document_file(path: str) -> dict[str, Any]:
    """An OpenAPI document from a local JSON file.

    :param path: the file (``openapi_spec``).
    """
    return cached_document_file(path).body


def cached_document_file(path: str) -> CachedDocument:
    """An OpenAPI document from a local JSON file, parsed once per process for the same bytes.

    :param path: the file (``openapi_spec``).
    """
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise RevCentConfigError(
            f"Cannot read the OpenAPI document openapi_spec={path!r}: {type(exc).__name__}: {exc.strerror or exc}. "
            "Give the path of a JSON file that exists on every worker, or an http(s) URL."
        ) from None
    return cached_document(content, lambda data: _parse_file(path, data))


def _parse_file(path: str, content: bytes) -> dict[str, Any]:
    try:
        body = json.loads(content.decode("utf-8"))
    except ValueError as exc:
        raise RevCentConfigError(
            f"The OpenAPI document openapi_spec={path!r} is not valid JSON ({exc}). Save RevCent's "
            "/v2/openapi.json again."
        ) from None
    if not isinstance(body, dict):
        raise RevCentConfigError(f"The OpenAPI document openapi_spec={path!r} is a JSON {type(body).__name__}, "
                                 "not an object. Save RevCent's /v2/openapi.json again.")
    return body


def resource_from_document(
    name: str,
    document: Mapping[str, Any] | None,
    *,
    source: str = "the OpenAPI document",
    unavailable: str | None = None,
    key_field: str | None = None,
    created_field: str | None = None,
) -> Resource:
    """The resource ``name`` from ``document``; without a document, customers from the packaged operation.

    :param name: a list path's last segment (``"sales"``) or an operationId (``"GetSales"``).
    :param document: the parsed document, or ``None`` when none could be had.
    :param source: how messages name the document.
    :param unavailable: why there is no document (for the message when ``name`` is not customers).
    :param key_field: the item's identifying field, when not ``id``.
    :param created_field: the item's creation time, when not ``created_date_unix``.
    :raises RevCentConfigError: the document lacks the resource, or there is no document and the resource is
        not customers.
    """
    if document is not None:
        return find_resource(OpenAPIDocument(document, source=source), name, key_field=key_field,
                             created_field=created_field)
    if is_customers(name):
        return find_resource(packaged_document(), name, key_field=key_field, created_field=created_field)
    raise RevCentConfigError(
        f"Resource {name!r} needs RevCent's OpenAPI document, and none could be had"
        f"{f' ({unavailable})' if unavailable else ''}. Set openapi_spec (connection extra) to a saved copy of "
        "/v2/openapi.json or a URL the worker can reach; only customers works from the packaged operation."
    )
