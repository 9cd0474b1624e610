"""RevCent's OpenAPI operation for ``GET /v2/customers``, shipped with the package as data.

``GetCustomers.openapi.json`` is the vendor's spec, verbatim. This module is the one place that
knows where it lives: the column tree (:mod:`airflow_revcent.rows.columns`) and the sandbox's contract
tests read it through :func:`load_spec`, never by a path of their own.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

#: The spec's file name inside this package (``pyproject.toml`` ships ``spec/*.json`` as package data).
SPEC_FILE = "GetCustomers.openapi.json"


@cache
def load_spec() -> dict[str, Any]:
    """The packaged OpenAPI operation for ``GET /v2/customers`` (parsed once; do not mutate it)."""
    text = resources.files(__name__).joinpath(SPEC_FILE).read_text(encoding="utf-8")
    spec: dict[str, Any] = json.loads(text)
    return spec
