"""How the end-to-end statements check builds its catalog from what the recording proxy saw: a table's
schema is the one the server answered, not the one a request asked for."""

from __future__ import annotations

from typing import Any

import pytest
from google.cloud.bigquery import SchemaField as F

from tests.integration.bqproxy import Exchange
from tests.integration.statements_check import assert_statements_valid
from tests.zetasql import Checker

BASE = "/bigquery/v2/projects/my-proj"
OLD = [F("id", "STRING"), F("rec", "RECORD", fields=[F("a", "NUMERIC"), F("c", "NUMERIC")])]
NEW = [F("id", "STRING"), F("rec", "RECORD", fields=[F("a", "NUMERIC"), F("c", "NUMERIC"), F("b", "NUMERIC")])]
UPDATE = ("UPDATE `my-proj.ds.dest` AS T SET `rec` = S.`rec` FROM `my-proj.ds.dest_staging` AS S "
          "WHERE T.`id` = S.`id`")


def _resource(table: str, schema: list[F]) -> dict[str, Any]:
    return {"tableReference": {"projectId": "my-proj", "datasetId": "ds", "tableId": table},
            "schema": {"fields": [f.to_api_repr() for f in schema]}}


def _create(table: str, schema: list[F]) -> Exchange:
    return Exchange("POST", f"{BASE}/datasets/ds/tables", {}, _resource(table, schema), {}, 200,
                    reply=_resource(table, schema))


def _run(asked: list[F], kept: list[F] | None, status: int | None = 200) -> list[Exchange]:
    """An older destination, a patch asking for ``asked`` answered with ``kept``, a staging table shaped
    like the destination as read back, and the statement applying it."""
    return [
        _create("dest", OLD),
        Exchange("PATCH", f"{BASE}/datasets/ds/tables/dest", {}, _resource("dest", asked), {}, status,
                 reply=None if kept is None else _resource("dest", kept)),
        _create("dest_staging", kept if kept is not None else asked),
        Exchange("POST", f"{BASE}/jobs", {}, {"configuration": {"query": {"query": UPDATE}}}, {}, 200),
    ]


class _Proxy:
    def __init__(self, requests: list[Exchange]) -> None:
        self.requests = requests


def _check(requests: list[Exchange]) -> int:
    proxy: Any = _Proxy(requests)
    return assert_statements_valid(proxy, _NoClient())


class _NoClient:
    def get_table(self, name: str) -> Any:
        raise AssertionError(f"read {name} from the server: the proxy saw every table")


def test_a_patch_the_server_kept_only_in_part_is_not_a_finding(zeta: Checker) -> None:
    # The local server cannot add a field inside a RECORD: it answers the patch with the old shape, the
    # pipeline stages in that shape, and BigQuery would see both sides alike.
    assert _check(_run(asked=NEW, kept=OLD)) == 1


def test_a_staging_table_short_of_a_nested_field_the_server_kept_is_still_a_finding(zeta: Checker) -> None:
    requests = _run(asked=NEW, kept=NEW)
    requests[2] = _create("dest_staging", OLD)  # staged in the shape from before the patch
    with pytest.raises(AssertionError, match="cannot be assigned to rec"):
        _check(requests)


def test_a_patch_whose_answer_was_lost_counts_as_asked(zeta: Checker) -> None:
    requests = _run(asked=NEW, kept=None, status=None)
    requests[2] = _create("dest_staging", OLD)
    with pytest.raises(AssertionError, match="cannot be assigned to rec"):
        _check(requests)


def test_a_failed_patch_leaves_the_schema_as_it_was(zeta: Checker) -> None:
    requests = _run(asked=NEW, kept=None, status=412)
    requests[2] = _create("dest_staging", OLD)
    assert _check(requests) == 1
