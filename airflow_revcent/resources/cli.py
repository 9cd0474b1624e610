"""``python -m airflow_revcent resources``: which list resources a document offers, and how one would land.

Without a resource name it lists every ``GET`` list operation of the document (those without a date
range marked as not landable); with one it shows its path, maximum window, key and creation field,
paging, filters, and the columns with their BigQuery types. The default document is the packaged
GetCustomers operation; ``--spec FILE`` reads another (RevCent's full ``/v2/openapi.json``, saved).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.resources.descriptor import Resource, find_resource, packaged_document, read_resources
from airflow_revcent.resources.openapi import OpenAPIDocument
from airflow_revcent.rows.columns import METADATA_COLUMNS, Column


def _days(resource: Resource) -> str:
    days = resource.max_window.total_seconds() / 86400
    return f"{days:g} day" + ("" if days == 1 else "s")


def _flat(columns: Sequence[Column], prefix: str = "") -> Iterator[tuple[str, Column]]:
    for column in columns:
        yield prefix + column.name, column
        yield from _flat(column.fields, f"{prefix}{column.name}.")


def _paging(resource: Resource) -> str:
    if resource.has_total_pages:
        return "stops at total_pages" + (", and reconciles total_count" if resource.has_total_count else "")
    return "no total_pages in the envelope: pages until a short page" + (
        ", and reconciles total_count" if resource.has_total_count else ", no count to reconcile")


def resource_summary(resource: Resource) -> dict[str, Any]:
    """How a resource would land, as plain JSON-friendly values (what ``--json`` prints).

    :param resource: the resource.
    """
    return {
        "name": resource.name,
        "operation_id": resource.operation_id,
        "path": resource.path,
        "server": resource.server,
        "max_window_days": resource.max_window.total_seconds() / 86400,
        "key_field": resource.key_field,
        "created_field": resource.created_field,
        "has_total_count": resource.has_total_count,
        "has_total_pages": resource.has_total_pages,
        "max_page_size": resource.max_page_size,
        "filters": [{"name": f.name, "accepts": f.summary()} for f in resource.filters],
        "columns": [{"name": name, "type": c.type, "mode": c.mode, "description": c.description}
                    for name, c in _flat(resource.columns)],
        "pipeline_columns": [{"name": c.name, "type": c.type, "mode": c.mode} for c in METADATA_COLUMNS],
    }


def _print_list(document: OpenAPIDocument, out: TextIO) -> None:
    resources, unreadable = read_resources(document)
    server = next((r.server for r in resources if r.server), None)
    print(f"List resources in {document.source}" + (f" ({server})" if server else "") + ":", file=out)
    rows = [("name", "operationId", "path", "window", "totals", "filters")]
    for r in resources:
        totals = "/".join(n for n, has in (("count", r.has_total_count), ("pages", r.has_total_pages)) if has) or "-"
        window = _days(r) if r.date_ranged else "no date range: not landable"
        rows.append((r.name, r.operation_id, r.path, window, totals, ", ".join(f.name for f in r.filters) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1], file=out)
    for op, why in unreadable:
        print(f"Not readable: {op.operation_id or op.path} ({op.path}): {why}", file=out)
    print("Show one with: python -m airflow_revcent resources NAME [--spec FILE]", file=out)


def _print_resource(resource: Resource, out: TextIO) -> None:
    where = (resource.server or "") + resource.path
    print(f"{resource.name} ({resource.operation_id}): GET {where}", file=out)
    print(f"  window   at most {_days(resource)} per request", file=out)
    print(f"  key      {resource.key_field}; creation time {resource.created_field} (unix seconds)", file=out)
    size = f"; at most {resource.max_page_size} items a page" if resource.max_page_size else ""
    print(f"  paging   {_paging(resource)}{size}", file=out)
    print("  filters" + ("" if resource.filters else "  none"), file=out)
    width = max((len(f.name) for f in resource.filters), default=0)
    for f in resource.filters:
        print(f"    {f.name.ljust(width)}  {f.summary()}", file=out)
    flat = list(_flat(resource.columns))
    width = max(len(name) for name, _ in (*flat, *((c.name, c) for c in METADATA_COLUMNS)))
    print("  columns (BigQuery type, mode)", file=out)
    for name, c in flat:
        print(f"    {name.ljust(width)}  {c.type.ljust(9)}  {c.mode.ljust(8)}  {c.description}".rstrip(), file=out)
    print("  added by the pipeline", file=out)
    for c in METADATA_COLUMNS:
        print(f"    {c.name.ljust(width)}  {c.type.ljust(9)}  {c.mode}", file=out)


def _show_list(document: OpenAPIDocument, out: TextIO, *, as_json: bool) -> None:
    if not as_json:
        _print_list(document, out)
        return
    resources, unreadable = read_resources(document)
    listed = {
        "resources": [{"name": r.name, "operation_id": r.operation_id, "path": r.path, "date_ranged": r.date_ranged,
                       "max_window_days": r.max_window.total_seconds() / 86400,
                       "filters": [f.name for f in r.filters]} for r in resources],
        "unreadable": [{"operation_id": op.operation_id, "path": op.path, "error": why} for op, why in unreadable],
    }
    print(json.dumps(listed, indent=2), file=out)


def _load(spec: str | None) -> OpenAPIDocument:
    if spec is None:
        return packaged_document()
    if spec.startswith(("http://", "https://")):
        raise RevCentConfigError(
            f"--spec {spec!r} is a URL; this command reads local files only. Save the document first "
            "(RevCent serves it at /v2/openapi.json) and pass its path."
        )
    return OpenAPIDocument.from_file(spec)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command; returns the exit status (2 for a bad document or resource name).

    :param argv: the arguments after ``python -m airflow_revcent``.
    :param out: where to print (standard output by default).
    """
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="python -m airflow_revcent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("resources", help="list a document's list resources, or show how one would land")
    show.add_argument("resource", nargs="?", help="a path name (sales, tax) or operationId (GetSales)")
    show.add_argument("--spec", metavar="FILE", help="an OpenAPI document (default: the packaged GetCustomers)")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    try:
        document = _load(args.spec)
        if args.resource is None:
            _show_list(document, out, as_json=args.json)
        else:
            resource = find_resource(document, args.resource)
            if args.json:
                print(json.dumps(resource_summary(resource), indent=2), file=out)
            else:
                _print_resource(resource, out)
    except RevCentConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
