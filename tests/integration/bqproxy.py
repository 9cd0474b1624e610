"""A recording, fault-injecting HTTP proxy between google-cloud-bigquery and the local BigQuery-API server.

    with BigQueryProxy(server.url) as proxy:
        client = proxy.client(project)
        proxy.add_fault(serialize_conflict("demo:ds.t", when=query_contains("MERGE")))
        ...
        proxy.queries()  # [(job_id, sql), ...] of every jobs.insert query job, in order

Every request is forwarded (loopback only) with its path, query string and body; the body is re-framed
with a Content-Length, and a resumable upload's ``Location`` is rewritten to come back through the proxy.
A fault matches method (regex) + path (regex, searched) + an optional predicate on the JSON body (for an
upload, the job resource in its first part), and fires on the first ``first`` matching requests or on
every ``every``-th. ``answer_lost`` forwards the request (the server acts on it) and closes the connection
without the answer, so the client's retry meets what the first request did (a 409 for a table or job).

What real BigQuery answers, and where that was found:
- 5xx: ``backendError`` with 500 or 503 (cloud.google.com/bigquery/docs/error-messages, the error table).
- Quotas: 403 with ``rateLimitExceeded`` (short-term) or ``quotaExceeded``, e.g. "Exceeded rate limits: too
  many table update operations for this table" (cloud.google.com/bigquery/docs/troubleshoot-quotas).
- 409 ``duplicate`` for a job id that exists, and jobs.get answering 404 right after it: the client's own
  retry for that case cites googleapis/python-bigquery#2134 (google/cloud/bigquery/retry.py).
- 412 "Precondition check failed." on tables.patch when the etag changed (googleapis/python-bigquery#772).
  The reason ``conditionNotMet`` is Google's usual one for 412, not seen in a BigQuery report: an assumption.
- "Could not serialize access to table P:D.T due to concurrent update": HTTP 400, reason ``invalidQuery``,
  status INVALID_ARGUMENT (confluentinc/kafka-connect-bigquery#279 shows the JSON; m-lab/etl-gardener#272
  shows "Error 400: ... due to concurrent update, invalidQuery").
- "Transaction is aborted due to concurrent update against table P:D.T": reported as "400 Query error:
  Transaction is aborted ... Transaction ID: ..." (dlt-hub/dlt#2892, estuary/connectors#111; the error text
  is in cloud.google.com/bigquery/docs/troubleshoot-queries). No report shows its reason; 400 means
  ``invalidQuery`` or another 400 reason in the client's mapping: ``invalidQuery`` here is an inference.
- "Resources exceeded during query execution: Too many DML statements outstanding against table P:D.T,
  limit is 20": reason ``resourcesExceeded`` (m-lab/etl-gardener#293: "Error 400: ..., resourcesExceeded";
  the text is in cloud.google.com/bigquery/docs/data-manipulation-language). Not ``jobRateLimitExceeded``,
  so google-cloud-bigquery's job_retry does not retry it.
A job-level fault answers jobs.insert itself with a DONE job carrying the errorResult (nothing reaches the
server, so the table is unchanged, as with a real conflict); jobs.get then returns that job, and
jobs.getQueryResults and jobs.query answer the error with the client's status for the reason (400 or 500).
Also assumed, not checked against real BigQuery: the ``status`` strings of the error bodies (gRPC names per
HTTP code), and that jobs.query answers a failing query with an HTTP error rather than a DONE job.
"""

from __future__ import annotations

import contextlib
import email
import email.message
import hashlib
import http.client
import json
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

JOBS_INSERT = r"/projects/[^/]+/jobs$"  # also the multipart and resumable uploads that insert a load job
JOB_GET = r"/projects/[^/]+/jobs/([^/]+)$"
JOBS_QUERY = r"/projects/[^/]+/queries$"
QUERY_RESULTS = r"/projects/[^/]+/queries/([^/]+)$"
TABLE = r"/datasets/[^/]+/tables/[^/]+$"
UPLOAD = r"^/upload/"
_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS",
           412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
_REASON_STATUS = {"invalidQuery": 400, "resourcesExceeded": 400, "rateLimitExceeded": 429}  # else 500
_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
        "content-length"}
TABLES = r"/datasets/[^/]+/tables$"  # tables.insert
Action = Literal["error", "drop", "lost", "reset", "conflict_unseen", "job_error"]


@dataclass
class Fault:
    method: str  # regex, fully matched
    path: str  # regex, searched in the path without the query string
    action: Action = "error"
    status: int = 503
    reason: str = "backendError"
    message: str = "Error encountered during execution. Retrying may solve the problem."
    first: int | None = 1  # fire on the first N matching requests (None: on all)
    every: int | None = None  # or on every Nth matching request
    when: Callable[[Any], bool] | None = None  # predicate on the JSON body
    unseen_gets: int = 1  # conflict_unseen: jobs.get answers 404 this many times
    matched: int = 0
    fired: int = 0

    def fires(self, method: str, path: str, body: Any) -> bool:
        if not re.fullmatch(self.method, method) or not re.search(self.path, path):
            return False
        if self.when is not None and not self.when(body):
            return False
        self.matched += 1
        fire = self.matched % self.every == 0 if self.every else self.first is None or self.matched <= self.first
        self.fired += fire
        return fire


def server_error(method: str = "[A-Z]+", path: str = ".", status: int = 503, **kw: Any) -> Fault:
    return Fault(method, path, status=status, **kw)


def rate_limited(method: str = "[A-Z]+", path: str = ".", status: int = 403, **kw: Any) -> Fault:
    kw.setdefault("message", "Exceeded rate limits: too many table update operations for this table")
    return Fault(method, path, status=status, reason="rateLimitExceeded", **kw)


def precondition_failed(method: str = "PATCH|PUT", path: str = TABLE, **kw: Any) -> Fault:
    return Fault(method, path, status=412, reason="conditionNotMet", message="Precondition check failed.", **kw)


def dropped(method: str = "[A-Z]+", path: str = ".", **kw: Any) -> Fault:
    """Read the request, then close the connection without an answer."""
    return Fault(method, path, action="drop", **kw)


def answer_lost(method: str = "POST", path: str = TABLES, **kw: Any) -> Fault:
    """Forward the request (the server acts on it), then close the connection without the answer."""
    return Fault(method, path, action="lost", **kw)


def reset_mid_upload(method: str = "POST|PUT", path: str = UPLOAD, **kw: Any) -> Fault:
    """Read half of the body, then reset the connection (no ``when``: it fires before the body is read)."""
    return Fault(method, path, action="reset", **kw)


def conflict_not_visible(unseen_gets: int = 1, **kw: Any) -> Fault:
    """jobs.insert reaches the server, the client gets 409, then jobs.get for it 404 ``unseen_gets`` times."""
    return Fault("POST", JOBS_INSERT, action="conflict_unseen", status=409, reason="duplicate",
                 unseen_gets=unseen_gets, **kw)


def job_failed(reason: str, message: str, **kw: Any) -> Fault:
    return Fault("POST", f"{JOBS_INSERT}|{JOBS_QUERY}", action="job_error", reason=reason, message=message, **kw)


def serialize_conflict(table: str, **kw: Any) -> Fault:
    return job_failed("invalidQuery", f"Could not serialize access to table {table} due to concurrent update", **kw)


def transaction_aborted(table: str, **kw: Any) -> Fault:
    return job_failed("invalidQuery", f"Query error: Transaction is aborted due to concurrent update against table "
                      f"{table}. Transaction ID: {uuid.uuid4()}", **kw)


def too_many_dml(table: str, **kw: Any) -> Fault:
    return job_failed("resourcesExceeded", "Resources exceeded during query execution: Too many DML statements "
                      f"outstanding against table {table}, limit is 20", **kw)


def sql_of(body: Any) -> str:
    """The SQL of a jobs.insert query job or a jobs.query request ("" for anything else)."""
    if not isinstance(body, dict):
        return ""
    sql = body.get("configuration", {}).get("query", {}).get("query") if "configuration" in body else body.get("query")
    return sql if isinstance(sql, str) else ""


def query_contains(text: str) -> Callable[[Any], bool]:
    return lambda body: text in sql_of(body)


def error_body(status: int, reason: str, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN"),
                      "errors": [{"domain": "global", "reason": reason, "message": message}]}}


def authorization_fingerprint(value: str | None) -> str | None:
    """A short digest of an Authorization header, safe to record and to print in an assertion message."""
    return None if value is None else hashlib.sha256(value.encode()).hexdigest()[:12]


@dataclass
class Exchange:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any  # the JSON body (an upload's job resource); None when not JSON
    headers: dict[str, str]  # the request's, without Authorization
    status: int | None = None  # None: dropped or reset
    fault: str | None = None
    #: ``authorization_fingerprint`` of the request's Authorization header (never the header): None without one.
    auth: str | None = None
    #: The JSON answer the client got (the server's, or a fault's); None when it got none or not JSON. A
    #: table's answer says what the server really kept, which may differ from what the request asked for.
    reply: Any = None


class BigQueryProxy:
    def __init__(self, upstream_url: str) -> None:
        self.upstream = upstream_url.rstrip("/")
        self.requests: list[Exchange] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._failed: dict[str, dict[str, Any]] = {}  # job id -> the synthetic failed job
        self._unseen: dict[str, int] = {}  # job id -> jobs.get calls still answered 404
        self._server = _Server(self)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="bqproxy", daemon=True)

    def __enter__(self) -> BigQueryProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving, end kept-alive connections and join every handler thread."""
        self._server.shutdown()
        with self._lock:
            connections = list(self._server.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join()

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def client(self, project: str) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(project=project, credentials=AnonymousCredentials(),
                               client_options={"api_endpoint": self.url})

    def _inserts(self) -> list[Exchange]:
        return [e for e in self.requests if e.method == "POST" and re.search(JOBS_INSERT, e.path)
                and isinstance(e.body, dict)]

    def queries(self) -> list[tuple[str, str]]:
        """(job id, SQL) of every jobs.insert query job, in order, retries and failed ones included."""
        return [(e.body.get("jobReference", {}).get("jobId", ""), sql) for e in self._inserts()
                if (sql := sql_of(e.body))]

    def load_jobs(self) -> list[dict[str, Any]]:
        """Every load job inserted (jobs.insert or an upload): id, upload type, destination, schema, disposition."""
        jobs = []
        for e in self._inserts():
            if load := e.body.get("configuration", {}).get("load"):
                jobs.append({"job_id": e.body.get("jobReference", {}).get("jobId"),
                             "upload": e.query.get("uploadType", [None])[0],
                             "destination": load.get("destinationTable"),
                             "schema": load.get("schema", {}).get("fields"),
                             "write_disposition": load.get("writeDisposition")})
        return jobs

    def table_updates(self) -> list[Exchange]:
        """tables.patch (PATCH) and tables.update (PUT) requests."""
        return [e for e in self.requests if e.method in ("PATCH", "PUT") and re.search(TABLE, e.path)]

    def _pick(self, method: str, path: str, body: Any, *, before_body: bool) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (fault.action == "reset") == before_body and fault.fires(method, path, body):
                    return fault
        return None

    def _fail_job(self, path: str, body: Any, fault: Fault) -> dict[str, Any]:
        body = body if isinstance(body, dict) else {}
        project = re.search(r"/projects/([^/]+)/", path)
        ref = {"projectId": project[1] if project else "", "jobId": f"bqproxy_{uuid.uuid4().hex}",
               **body.get("jobReference", {})}
        error = {"reason": fault.reason, "message": fault.message}
        now = str(int(time.time() * 1000))
        job = {"kind": "bigquery#job", "id": f"{ref['projectId']}:{ref.get('location', 'US')}.{ref['jobId']}",
               "jobReference": ref, "configuration": body.get("configuration", {}),
               "status": {"state": "DONE", "errorResult": error, "errors": [error]},
               "statistics": {"creationTime": now, "startTime": now, "endTime": now}}
        with self._lock:
            self._failed[ref["jobId"]] = job
        return job

    def _synthetic(self, method: str, path: str) -> tuple[int, dict[str, Any]] | None:
        """The answer for a job this proxy failed, or one not yet visible after a 409."""
        if method != "GET":
            return None
        with self._lock:
            if (m := re.search(JOB_GET, path)) and m[1] in self._failed:
                return 200, self._failed[m[1]]
            if m and self._unseen.get(m[1], 0) > 0:
                self._unseen[m[1]] -= 1
                return 404, error_body(404, "notFound", f"Not found: Job {m[1]}")
            if (m := re.search(QUERY_RESULTS, path)) and m[1] in self._failed:
                error = self._failed[m[1]]["status"]["errorResult"]
                status = _REASON_STATUS.get(error["reason"], 500)
                return status, error_body(status, error["reason"], error["message"])
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads

    def __init__(self, proxy: BigQueryProxy) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.proxy = proxy
        self.connections: set[socket.socket] = set()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.proxy._lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.server.proxy._lock:
            self.server.connections.discard(self.connection)

    def log_message(self, *args: object) -> None:
        pass

    def handle_one_request_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_request(self) -> None:
        proxy, url = self.server.proxy, urlsplit(self.path)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        exchange = Exchange(self.command, url.path, parse_qs(url.query), None, headers,
                            auth=authorization_fingerprint(self.headers.get("Authorization")))
        with proxy._lock:
            proxy.requests.append(exchange)
        if fault := proxy._pick(self.command, url.path, None, before_body=True):
            exchange.fault = fault.action
            self.rfile.read(int(self.headers.get("Content-Length") or 0) // 2)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()  # with SO_LINGER 0 and unread data: a reset
            return
        raw = self.handle_one_request_body()
        exchange.body = body = _json_of(raw, self.headers.get("Content-Type", ""))
        fault = proxy._pick(self.command, url.path, body, before_body=False)
        exchange.fault = fault.action if fault else None
        if fault is None:
            if synthetic := proxy._synthetic(self.command, url.path):
                self._answer(exchange, *synthetic)
            else:
                self._relay(exchange, *self._forward(raw))
        elif fault.action in ("drop", "lost"):
            if fault.action == "lost":
                self._forward(raw)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault.action == "error":
            self._answer(exchange, fault.status, error_body(fault.status, fault.reason, fault.message))
        elif fault.action == "job_error" and re.search(JOBS_QUERY, url.path):
            status = _REASON_STATUS.get(fault.reason, 500)
            self._answer(exchange, status, error_body(status, fault.reason, fault.message))
        elif fault.action == "job_error":
            self._answer(exchange, 200, proxy._fail_job(url.path, body, fault))
        else:  # conflict_unseen: the job is created, the client is told it already exists
            status, reply_headers, data = self._forward(raw)
            job_id = (body or {}).get("jobReference", {}).get("jobId")
            if status >= 300 or not job_id:
                self._relay(exchange, status, reply_headers, data)
                return
            with proxy._lock:
                proxy._unseen[job_id] = fault.unseen_gets
            self._answer(exchange, 409, error_body(409, "duplicate", f"Already Exists: Job {job_id}"))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_request

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        upstream = urlsplit(self.server.proxy.upstream)
        connection = http.client.HTTPConnection(upstream.netloc, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            send = body if body or self.command in ("POST", "PUT", "PATCH") else None
            connection.request(self.command, self.path, body=send, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        except OSError as exc:
            return 502, [("Content-Type", "application/json")], json.dumps(
                error_body(502, "badGateway", f"bqproxy: upstream failed: {exc}")).encode()
        finally:
            connection.close()

    def _answer(self, exchange: Exchange, status: int, document: dict[str, Any]) -> None:
        data = json.dumps(document).encode()
        self._relay(exchange, status, [("Content-Type", "application/json; charset=UTF-8")], data)

    def _relay(self, exchange: Exchange, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        exchange.status = status
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        exchange.reply = _json_of(data, content_type)
        self.send_response(status)
        for name, value in headers:
            if name.lower() in _HOP or name.lower() in ("date", "server"):
                continue
            self.send_header(name, value.replace(self.server.proxy.upstream, self.server.proxy.url)
                             if name.lower() == "location" else value)
        if status >= 200 and status not in (204, 304):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _json_of(raw: bytes, content_type: str) -> Any:
    """A JSON body, or the JSON first part of a multipart upload (the job resource); None otherwise."""
    if content_type.startswith("multipart/"):
        message = email.message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
        parts = message.get_payload()
        first = parts[0] if isinstance(parts, list) and parts else None
        payload = first.get_payload(decode=True) if isinstance(first, email.message.Message) else None
        raw = payload if isinstance(payload, bytes) else b""
    elif "json" not in content_type:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
