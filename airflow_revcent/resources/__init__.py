"""RevCent's list resources, described as data from RevCent's OpenAPI document (pure: no Airflow, no google).

:mod:`~airflow_revcent.resources.openapi` reads the document (``$ref`` resolved anywhere);
:mod:`~airflow_revcent.resources.descriptor` turns each ``GET`` list operation into a :class:`Resource`
(path, maximum window, filters, item schema and columns, key and creation field, totals);
:mod:`~airflow_revcent.resources.cli` is ``python -m airflow_revcent resources``.
"""

from __future__ import annotations

from airflow_revcent.resources.descriptor import (
    DEFAULT_MAX_WINDOW,
    FilterParam,
    Resource,
    customers_resource,
    find_resource,
    list_resources,
    packaged_document,
    parse_max_window,
    read_resources,
)
from airflow_revcent.resources.openapi import OpenAPIDocument, Operation

__all__ = [
    "DEFAULT_MAX_WINDOW",
    "FilterParam",
    "OpenAPIDocument",
    "Operation",
    "Resource",
    "customers_resource",
    "find_resource",
    "list_resources",
    "packaged_document",
    "parse_max_window",
    "read_resources",
]
