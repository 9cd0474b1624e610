"""An OpenAPI 3.1 document as RevCent publishes it, with every ``$ref`` resolved.

Two shapes are read. The full document (``openapi``, ``servers``, ``paths``, ``components``) that RevCent
serves at ``/v2/openapi.json``; and the per-operation document RevCent publishes for each operation
(``method``, ``path`` as a full URL, ``operationId``, ``parameters``, ``responses``), which is what the
package ships for GetCustomers. The second is read as a full document with one path and one server, so
everything after this module sees one shape.

``$ref`` is resolved anywhere a JSON pointer into the document can point (parameters, response schemas,
nested objects, refs inside refs); a ref that points nowhere, outside the document, or back into itself
is a :class:`~airflow_revcent.exceptions.RevCentConfigError` that names it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow_revcent.exceptions import RevCentConfigError

#: The methods a path item may carry (OpenAPI 3.1, "Path Item Object").
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@dataclass(frozen=True)
class Operation:
    """One operation of the document; its parameters and 200 response schema are resolved when first read.

    Resolving lazily keeps one broken or self-referencing schema elsewhere in the document from stopping
    the operations that do not use it.

    :param method: the lower-case HTTP method.
    :param path: the request path from the host on (a server URL's own path is prepended).
    :param server: ``scheme://host`` of the first server, or ``None`` when the document names none.
    :param operation_id: the operation's ``operationId`` (``""`` when it has none).
    :param description: the operation's description.
    :param document: the document the operation belongs to (its refs point into it).
    :param raw: the operation object as the document holds it.
    :param shared_parameters: the path item's parameters, unresolved.
    """

    method: str
    path: str
    server: str | None
    operation_id: str
    description: str
    document: OpenAPIDocument = field(repr=False, compare=False)
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    shared_parameters: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    @cached_property
    def parameters(self) -> tuple[Mapping[str, Any], ...]:
        """The path item's and the operation's parameters, refs resolved (the operation's win a name)."""
        own = self.raw.get("parameters") or ()
        return _merge_parameters(self.document.resolve(list(self.shared_parameters)), self.document.resolve(own))

    @cached_property
    def response_schema(self) -> Mapping[str, Any]:
        """The JSON schema of the 200 response, refs resolved; ``{}`` when there is none."""
        return _success_schema(self.document.resolve(self.raw.get("responses", {})))


def _pointer_parts(ref: str) -> list[str]:
    # RFC 6901: "~1" is "/", "~0" is "~"; a ref is a URI fragment, so percent-escapes are decoded first.
    return [unquote(part).replace("~1", "/").replace("~0", "~") for part in ref[2:].split("/")] if ref != "#" else []


class OpenAPIDocument:
    """A parsed OpenAPI 3.1 document (full or per-operation), read-only.

    :param document: the parsed JSON.
    :param source: how messages name the document (a file name, "the packaged GetCustomers operation").
    """

    def __init__(self, document: Mapping[str, Any], *, source: str = "the OpenAPI document") -> None:
        if not isinstance(document, Mapping):
            raise RevCentConfigError(f"{source} is not an OpenAPI document: its top level is a "
                                     f"{type(document).__name__}, not a JSON object.")
        self.source = source
        self._doc: Mapping[str, Any] = _as_full_document(document, source)
        # A ref resolved once resolves the same everywhere (had it a cycle, that first time would have
        # raised), so each is resolved once: a document that shares components widely stays linear.
        self._resolved: dict[str, Any] = {}

    @classmethod
    def from_file(cls, path: str | Path) -> OpenAPIDocument:
        """Read a document from a local JSON file.

        :param path: the file.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise RevCentConfigError(f"Cannot read the OpenAPI document {str(path)!r}: {exc}. "
                                     "Give the path of a JSON file.") from exc
        return cls.from_text(text, source=str(path))

    @classmethod
    def from_text(cls, text: str, *, source: str) -> OpenAPIDocument:
        """Parse a document from JSON text.

        :param text: the JSON.
        :param source: how messages name the document.
        """
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise RevCentConfigError(f"{source} is not valid JSON ({exc}); give RevCent's OpenAPI document "
                                     "(/v2/openapi.json) or one of its per-operation documents.") from exc
        return cls(parsed, source=source)

    @property
    def servers(self) -> tuple[str, ...]:
        """The server URLs, in the document's order."""
        return tuple(str(s["url"]) for s in self._doc.get("servers", ()) if isinstance(s, Mapping) and "url" in s)

    def lookup(self, ref: str) -> Any:
        """The node a local ``$ref`` (``#/components/...``) points at, unresolved.

        :param ref: the reference.
        """
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise RevCentConfigError(
                f"{self.source} has $ref {ref!r}, which points outside the document; only local refs "
                "('#/components/...') are read. Give a document with its components bundled in."
            )
        node: Any = self._doc
        for part in _pointer_parts(ref):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise RevCentConfigError(
                    f"{self.source} has $ref {ref!r}, which points at nothing (no {part!r} there). "
                    "The document is incomplete: fetch it again or fix the reference."
                )
        return node

    def resolve(self, node: Any, _chain: tuple[str, ...] = ()) -> Any:
        """``node`` with every ``$ref`` in it replaced by what it points at, recursively (do not mutate it:
        a component used in several places is one object).

        Keywords beside a ``$ref`` (OpenAPI 3.1 allows a ``description`` there) override the target's.

        :param node: any part of the document.
        """
        if isinstance(node, list):
            return [self.resolve(item, _chain) for item in node]
        if not isinstance(node, Mapping):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in _chain:
                cycle = " -> ".join((*_chain[_chain.index(ref):], ref))
                raise RevCentConfigError(
                    f"{self.source} has a $ref cycle: {cycle}. A self-referencing schema cannot become a table's "
                    "columns; override the resource's item schema or fix the document."
                )
            if ref not in self._resolved:
                self._resolved[ref] = self.resolve(self.lookup(ref), (*_chain, ref))
            target = self._resolved[ref]
            siblings = {k: self.resolve(v, _chain) for k, v in node.items() if k != "$ref"}
            return {**target, **siblings} if isinstance(target, Mapping) else target
        return {key: self.resolve(value, _chain) for key, value in node.items()}

    def operations(self) -> Iterator[Operation]:
        """Every operation of every path, in the document's order (refs resolved when they are read)."""
        server = self.servers[0] if self.servers else None
        base, prefix = _split_server(server)
        paths = self._doc.get("paths") or {}
        if not isinstance(paths, Mapping):
            raise RevCentConfigError(f"{self.source} has 'paths' of type {type(paths).__name__}; it must be an object.")
        for path, raw_item in paths.items():
            # A path item may itself be a $ref (to components/pathItems); its operations resolve later.
            item = self.lookup(raw_item["$ref"]) if isinstance(raw_item, Mapping) and "$ref" in raw_item else raw_item
            if not isinstance(item, Mapping):
                continue
            shared = item.get("parameters") or ()
            for method in HTTP_METHODS:
                op = item.get(method)
                if not isinstance(op, Mapping):
                    continue
                yield Operation(
                    method=method,
                    path=prefix + str(path),
                    server=base,
                    operation_id=str(op.get("operationId", "")),
                    description=str(op.get("description") or op.get("summary") or ""),
                    document=self,
                    raw=op,
                    shared_parameters=tuple(shared),
                )


def _split_server(server: str | None) -> tuple[str | None, str]:
    # A server URL may carry a path ("https://api.revcent.com/v2"): requests go to that path + the path item.
    if not server:
        return None, ""
    parts = urlsplit(server)
    if not parts.scheme:
        return None, parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")


def _merge_parameters(shared: Any, own: Any) -> tuple[Mapping[str, Any], ...]:
    merged: dict[tuple[str, str], Mapping[str, Any]] = {}
    for param in (*(shared or ()), *(own or ())):
        if isinstance(param, Mapping) and "name" in param:
            merged[(str(param["name"]), str(param.get("in", "")))] = param
    return tuple(merged.values())


def _success_schema(responses: Any) -> Mapping[str, Any]:
    if not isinstance(responses, Mapping):
        return {}
    response = responses.get("200") or responses.get(200) or responses.get("2XX") or {}
    content = response.get("content", {}) if isinstance(response, Mapping) else {}
    media = content.get("application/json", {}) if isinstance(content, Mapping) else {}
    schema = media.get("schema", {}) if isinstance(media, Mapping) else {}
    return schema if isinstance(schema, Mapping) else {}


def _as_full_document(document: Mapping[str, Any], source: str) -> Mapping[str, Any]:
    if "paths" in document:
        return document
    if "operationId" in document and "path" in document:
        # A per-operation document: "path" is the full URL, "method" the verb.
        url = urlsplit(str(document["path"]))
        method = str(document.get("method", "get")).lower()
        operation = {k: v for k, v in document.items() if k not in ("method", "path")}
        full: dict[str, Any] = {"paths": {url.path: {method: operation}}}
        if url.scheme:
            full["servers"] = [{"url": f"{url.scheme}://{url.netloc}"}]
        if "components" in document:
            full["components"] = document["components"]
        return full
    raise RevCentConfigError(
        f"{source} has neither 'paths' (a full OpenAPI document) nor 'operationId' and 'path' (one of RevCent's "
        "per-operation documents); give RevCent's /v2/openapi.json or a per-operation document."
    )
