"""Assets and OpenLineage datasets from a run's destination and summary, without a run."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import Asset, AssetAlias

from airflow_revcent.bigquery.tables import TableRef
from airflow_revcent.lineage import ASSET_EXTRA_KEYS, asset_uri, openlineage_facets, report_asset, static_asset
from airflow_revcent.rows.columns import Column

TABLE = TableRef("my-proj", "revcent", "customers")
SUMMARY = {"interval_start": "2026-04-01T00:00:00Z", "interval_end": "2026-04-08T00:00:00Z", "records_loaded": 3,
           "rows_inserted": 2, "rows_updated": 1, "windows": 1}


def test_a_table_is_the_asset_uri_airflow_uses_for_bigquery():
    assert asset_uri(TABLE) == "bigquery://my-proj/revcent/customers"


@pytest.mark.parametrize(("destination", "expected"), [
    ("my-proj.revcent.customers", Asset("bigquery://my-proj/revcent/customers")),
    ("revcent.customers", None),  # the project comes from the connection at run time
    ("{{ var.value.t }}", None),
    ("not a table", None),
    (None, None),
])
def test_only_a_fully_qualified_untemplated_destination_is_an_asset_at_parse_time(destination, expected):
    assert static_asset(destination) == expected


class _Events:
    """``outlet_events`` as the task sees it: one event per outlet, created on first use. Keyed by the
    outlet object itself: on Airflow 3.1 an ``AssetAlias`` is not hashable."""

    def __init__(self) -> None:
        self._events: list[tuple[Any, Any]] = []

    def __getitem__(self, key: Any) -> Any:
        for outlet, event in self._events:
            if outlet is key:
                return event
        event = SimpleNamespace(added=[], extra={})
        event.add = lambda asset, extra: event.added.append((asset, extra))
        self._events.append((key, event))
        return event


def test_the_asset_is_added_to_aliases_and_its_own_outlet_with_what_the_run_wrote():
    alias, own, other = AssetAlias("revcent"), Asset(asset_uri(TABLE)), Asset("bigquery://p/d/other")
    events = _Events()
    report_asset(events, [alias, own, other], TABLE, SUMMARY)
    extra = {k: SUMMARY[k] for k in ASSET_EXTRA_KEYS}
    assert events[alias].added == [(own, extra)]
    assert events[own].extra == extra
    assert events[other].extra == {}


def test_nothing_is_reported_without_outlet_events():
    report_asset(None, [AssetAlias("revcent")], TABLE, SUMMARY)  # no context to report into: no error


@pytest.mark.openlineage
def test_openlineage_reads_the_endpoint_and_writes_the_table_with_schema_and_rows():
    columns = [Column("id", "STRING", "REQUIRED"),
               Column("customer_card", "RECORD", "REPEATED", "Cards.", (Column("last_4", "STRING"),))]
    lineage = openlineage_facets(base_url="https://api.revcent.com", resource="/v2/customers", table=TABLE,
                                 columns=columns, rows=3)
    [source] = lineage.inputs
    assert (source.namespace, source.name) == ("https://api.revcent.com", "/v2/customers")
    [output] = lineage.outputs
    assert (output.namespace, output.name) == ("bigquery", "my-proj.revcent.customers")
    fields = output.facets["schema"].fields
    assert [(f.name, f.type, f.description) for f in fields] == [("id", "STRING", None),
                                                                  ("customer_card", "ARRAY<RECORD>", "Cards.")]
    assert [f.name for f in fields[1].fields] == ["last_4"]
    assert output.outputFacets["outputStatistics"].rowCount == 3
