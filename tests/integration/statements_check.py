"""Check every statement a run sent to BigQuery with ZetaSQL, against the schemas the tables had then.

The recording proxy (:mod:`tests.integration.bqproxy`) saw every request in order: tables created or
patched with their schemas, and every query job. Each query is analyzed against a catalog of the
tables it names, with each table's schema as of that moment (staging tables included, though the run
has dropped them since); a table the proxy never saw is read from the server. A table's schema is the
one the server answered (to a create, a patch or a read), not the one the request asked for: a server
may keep less than a patch asks (the local server cannot add a field inside a RECORD), and the
pipeline shapes its staging tables like the table it reads back. ZetaSQL is the
GoogleSQL analyzer BigQuery is built on, and the checker also flags STRUCTs assigned by position to a
column whose nested fields are named in another order, which BigQuery accepts and the local server
does not show.
"""

from __future__ import annotations

import re
from typing import Any

from google.cloud.bigquery import SchemaField

from tests.zetasql import analyze

from .bqproxy import TABLE, BigQueryProxy

_TABLE_NAME = re.compile(r"`([a-z][a-z0-9\-]*\.[A-Za-z0-9_]+\.[\w\-]+)`")
_TABLES_INSERT = re.compile(r"/projects/([^/]+)/datasets/([^/]+)/tables$")


def _table_id(exchange: Any) -> str | None:
    match = re.search(TABLE, exchange.path)
    if match and exchange.method in ("GET", "PATCH", "PUT"):
        parts = exchange.path.rstrip("/").split("/")
        return f"{parts[-5]}.{parts[-3]}.{parts[-1]}"
    insert = _TABLES_INSERT.search(exchange.path)
    if insert and exchange.method == "POST" and isinstance(exchange.body, dict):
        ref = exchange.body.get("tableReference", {})
        return f"{ref.get('projectId')}.{ref.get('datasetId')}.{ref.get('tableId')}"
    return None


def _schema_kept(exchange: Any) -> list[SchemaField] | None:
    """The table's schema after this exchange: the server's answer, else (no answer seen: a lost reply)
    the request's; None when it did not set or show one."""
    if exchange.status is not None and exchange.status >= 300:
        return None
    for document in (exchange.reply, exchange.body if exchange.status is None else None):
        if isinstance(document, dict) and isinstance(document.get("schema"), dict):
            return [SchemaField.from_api_repr(f) for f in document["schema"].get("fields", [])]
    return None


def statements_with_schemas(proxy: BigQueryProxy, client: Any) -> list[tuple[str, dict[str, list[SchemaField]]]]:
    """Every query the run sent, with the schemas of the tables it names at the time it was sent."""
    schemas: dict[str, list[SchemaField]] = {}
    out = []
    for exchange in list(proxy.requests):
        table = _table_id(exchange)
        if table:
            schema = _schema_kept(exchange)
            if schema is not None:
                schemas[table] = schema
            continue
        if exchange.method == "POST" and isinstance(exchange.body, dict):
            sql = exchange.body.get("configuration", {}).get("query", {}).get("query")
            if not sql:
                continue
            tables = {}
            for name in set(_TABLE_NAME.findall(sql)):
                if name not in schemas:
                    schemas[name] = list(client.get_table(name).schema)
                tables[name] = schemas[name]
            out.append((sql, tables))
    return out


def assert_statements_valid(proxy: BigQueryProxy, client: Any) -> int:
    """Analyze every recorded statement; fail on any analyzer error or positional STRUCT mismatch.

    :returns: how many statements were checked (so a test can assert it checked something).
    """
    recorded = statements_with_schemas(proxy, client)
    problems = []
    for sql, tables in recorded:
        problems += [f"{finding}\n--- in ---\n{sql[:1500]}" for finding in analyze(sql, tables)]
    assert not problems, f"{len(problems)} finding(s); first:\n" + "\n\n".join(problems[:3])
    return len(recorded)
