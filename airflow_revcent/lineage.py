"""What a run tells Airflow and OpenLineage it read and wrote: the destination as an Asset, the asset
events of a run, and the OpenLineage datasets (RevCent's endpoint in, the BigQuery table out).

Airflow and the OpenLineage provider (an optional extra) are imported inside the functions, so this
module imports without them; the operator's ``outlets``, ``_report_asset`` and
``get_openlineage_facets_on_complete`` are thin calls into it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_revcent.bigquery.tables import TableRef
from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.rows.columns import Column

if TYPE_CHECKING:
    from airflow.sdk import Asset

#: The summary keys an asset event carries as its ``extra``.
ASSET_EXTRA_KEYS = ("interval_start", "interval_end", "records_loaded", "rows_inserted", "rows_updated")


def asset_uri(table: TableRef) -> str:
    """The asset URI Airflow uses for a BigQuery table: ``bigquery://project/dataset/table``."""
    return f"bigquery://{table.project}/{table.dataset}/{table.table}"


def static_asset(destination_table: Any) -> Asset | None:
    """The destination as an Asset when it is known at parse time (fully qualified, no template)."""
    if not isinstance(destination_table, str) or "{" in destination_table:
        return None
    try:
        project, dataset, table = TableRef.split(destination_table)
    except RevCentConfigError:
        return None
    if not project:
        return None
    from airflow.sdk import Asset

    return Asset(asset_uri(TableRef(project, dataset, table)))


def report_asset(events: Any, outlets: Iterable[Any], table: TableRef, summary: Mapping[str, Any]) -> None:
    """Attach the destination's asset to every AssetAlias outlet, with what the run wrote; on an Asset
    outlet for the same table, add it to that asset's event.

    :param events: the task context's ``outlet_events`` (nothing is reported when it is ``None``).
    :param outlets: the task's outlets.
    :param table: the destination as resolved.
    :param summary: the run's summary (its :data:`ASSET_EXTRA_KEYS` become the event's ``extra``).
    """
    if events is None:
        return
    from airflow.sdk import Asset, AssetAlias

    asset = Asset(asset_uri(table))
    extra = {k: summary[k] for k in ASSET_EXTRA_KEYS}
    for outlet in outlets:
        if isinstance(outlet, AssetAlias):
            events[outlet].add(asset, extra=extra)
        elif isinstance(outlet, Asset) and outlet.uri == asset.uri:
            events[outlet].extra.update(extra)


def no_lineage() -> Any:
    """An empty ``OperatorLineage`` (the task wrote nothing)."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage()


def openlineage_facets(*, base_url: str, resource: str, table: TableRef, columns: Sequence[Column],
                       rows: int) -> Any:
    """The ``OperatorLineage`` of a run: RevCent's endpoint in, the BigQuery table (schema, rows) out.

    :param base_url: the RevCent connection's base URL (the input's namespace).
    :param resource: the endpoint read (the input's name).
    :param table: the destination as resolved.
    :param columns: the columns the run wrote, for the schema facet.
    :param rows: the rows loaded, for the output statistics.
    """
    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
        SchemaDatasetFacet,
        SchemaDatasetFacetFields,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    def fields(nested: Sequence[Column]) -> list[Any]:
        return [SchemaDatasetFacetFields(name=c.name, type=c.type if c.mode != "REPEATED" else f"ARRAY<{c.type}>",
                                         description=c.description or None, fields=fields(c.fields))
                for c in nested]

    output = OutputDataset(
        namespace="bigquery", name=f"{table.project}.{table.dataset}.{table.table}",
        facets={"schema": SchemaDatasetFacet(fields=fields(columns))},
        outputFacets={"outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=rows)},
    )
    source = Dataset(namespace=base_url, name=resource)
    return OperatorLineage(inputs=[source], outputs=[output])
