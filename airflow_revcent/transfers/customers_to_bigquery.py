"""CustomersToBigQueryOperator: RevCent customers of a run's interval into a BigQuery table.

The customers preset of :class:`~airflow_revcent.transfers.revcent_to_bigquery.RevCentToBigQueryOperator`:
the resource is fixed to customers and its filters are named arguments. Everything else is the generic
pipeline's.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from airflow_revcent.api.filters import CustomerFilters, Filters
from airflow_revcent.resources import Resource
from airflow_revcent.transfers.revcent_to_bigquery import RevCentToBigQueryOperator


class CustomersToBigQueryOperator(RevCentToBigQueryOperator):
    """Copy the RevCent customers created in an interval into a BigQuery table, exactly once.

    The interval is the run's data interval unless ``date_start``/``date_end`` are given; it is
    half-open (``date_start <= created < date_end``), split into windows of at most 90 days and
    read page by page. Customers stream to NDJSON files, a load job puts them in a staging table
    and one MERGE applies them to the destination: re-runs and overlapping runs never duplicate
    a customer, changed customers are updated, and a failed run leaves the table as it was.

    Takes every argument of :class:`~airflow_revcent.transfers.revcent_to_bigquery.RevCentToBigQueryOperator`
    but ``resource`` and ``filters``; the customers filters are these named arguments instead, checked against
    the packaged GetCustomers operation. The columns come from RevCent's OpenAPI document like any resource's
    (``/v2/openapi.json`` from the connection's host, once per task, unless ``openapi_spec`` says otherwise);
    when no document can be had, or it has no usable customers list, from the packaged GetCustomers operation,
    with a warning.

    :param destination_table: ``[project.]dataset.table`` (templated).
    :param campaign_filter: campaign ids (templated).
    :param customer_group_filter: customer group ids (templated).
    :param product_filter: product ids (templated).
    :param status_filter: enabled, disabled, blocked, fraud, chargeback (templated).
    :param metadata_filter: ``[{"name": ..., "value": ...}]``; value ``METADATA_NAME_EXISTS`` matches on the
        name alone (templated).
    """

    template_fields: Sequence[str] = (
        "destination_table", "revcent_conn_id", "gcp_conn_id", "date_start", "date_end", "campaign_filter",
        "customer_group_filter", "product_filter", "status_filter", "metadata_filter", "location", "lookback",
        "history_table", "impersonation_chain", "project_id",
    )

    def __init__(
        self,
        *,
        destination_table: str,
        campaign_filter: Any = None,
        customer_group_filter: Any = None,
        product_filter: Any = None,
        status_filter: Any = None,
        metadata_filter: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(resource="customers", destination_table=destination_table, filters=None, **kwargs)
        self.campaign_filter = campaign_filter
        self.customer_group_filter = customer_group_filter
        self.product_filter = product_filter
        self.status_filter = status_filter
        self.metadata_filter = metadata_filter

    def _filters(self, resource: Resource) -> Filters | CustomerFilters:
        """The named filters, validated against GetCustomers' parameters (the same messages as always)."""
        return CustomerFilters.build(
            campaign_filter=self.campaign_filter, customer_group_filter=self.customer_group_filter,
            product_filter=self.product_filter, status_filter=self.status_filter,
            metadata_filter=self.metadata_filter,
        )


def _signature() -> inspect.Signature:
    """The preset's full signature: the generic operator's arguments but ``resource`` and ``filters``, with the
    named filters after ``date_end`` (where they always were), so ``inspect``, the docs and IDEs see them all."""
    base = inspect.signature(RevCentToBigQueryOperator.__init__).parameters
    own = inspect.signature(_customers_init).parameters
    named = [own[name] for name in _NAMED_FILTERS]
    params: list[inspect.Parameter] = []
    for name, param in base.items():
        if name in ("resource", "filters"):
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        params.append(param)
        if name == "date_end":
            params += named
    return inspect.Signature([*params, base["kwargs"]])


_NAMED_FILTERS = ("campaign_filter", "customer_group_filter", "product_filter", "status_filter", "metadata_filter")
_customers_init = inspect.unwrap(CustomersToBigQueryOperator.__init__)
CustomersToBigQueryOperator.__init__.__signature__ = _signature()  # type: ignore[attr-defined]
