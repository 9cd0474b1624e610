"""Which table shapes the pipeline adopts, warns about or refuses (README "Tables the pipeline adopts")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField

from airflow_revcent.bigquery.adoption import (
    HOUR_DAYS_PER_STATEMENT,
    HOUR_DAYS_PER_TRANSACTION,
    Shape,
    decide,
    shape_of,
)
from airflow_revcent.bigquery.statements import MAX_DAYS_PER_STATEMENT, partition_steps
from airflow_revcent.exceptions import RevCentConfigError

WRITTEN = ["id", "email", "created_date_unix", "status", "_created_at", "_extracted_at"]
ADOPT, WARN, REFUSE = "adopt", "adopt with a warning about cost", "refuse"


def _kind(shape: Shape) -> str:
    verdict = decide("p.d.team", shape, WRITTEN)
    return REFUSE if verdict.refusal else WARN if verdict.warning else ADOPT


@pytest.mark.parametrize(("shape", "kind"), [
    (Shape(), WARN),
    (Shape("DAY", "_created_at"), ADOPT),
    (Shape("DAY", "_created_at", require_partition_filter=True), ADOPT),
    (Shape("HOUR", "_created_at", require_partition_filter=True), ADOPT),
    (Shape("MONTH", "_created_at"), WARN),
    (Shape("YEAR", "_created_at", require_partition_filter=True), WARN),
    (Shape("DAY", "loaded_at"), WARN),
    (Shape("DAY", "loaded_at", require_partition_filter=True), REFUSE),
    (Shape("MONTH", "loaded_at", require_partition_filter=True), REFUSE),
    (Shape("DAY", None), WARN),
    (Shape("DAY", None, require_partition_filter=True), REFUSE),
    (Shape(range_field="created_date_unix"), WARN),
    (Shape(range_field="created_date_unix", require_partition_filter=True), REFUSE),
    (Shape("DAY", "_created_at", required_columns=("id", "_created_at")), ADOPT),
    (Shape("DAY", "_created_at", required_columns=("loaded_at",)), REFUSE),
], ids=lambda v: v if isinstance(v, str) else None)
def test_every_table_shape_has_a_verdict(shape, kind):
    assert _kind(shape) == kind


def test_a_refusal_names_the_table_what_is_wrong_and_what_to_do():
    refusal = decide("p.d.team", Shape("DAY", "loaded_at", require_partition_filter=True), WRITTEN).refusal
    assert refusal is not None
    for part in ("p.d.team", "DAY on loaded_at", "require_partition_filter = true", "SET OPTIONS",
                 "nothing was changed"):
        assert part in refusal
    required = decide("p.d.team", Shape(required_columns=("loaded_at",)), WRITTEN).refusal
    assert required is not None and "loaded_at" in required and "DROP NOT NULL" in required


def test_an_hour_partitioned_table_gets_steps_under_four_thousand_partitions():
    verdict = decide("p.d.t", Shape("HOUR", "_created_at"), WRITTEN)
    assert verdict.max_days_per_statement == HOUR_DAYS_PER_STATEMENT and HOUR_DAYS_PER_STATEMENT * 24 <= 4000
    assert verdict.max_days_per_transaction == HOUR_DAYS_PER_TRANSACTION and HOUR_DAYS_PER_TRANSACTION * 24 <= 100_000
    steps = partition_steps(datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC),
                            max_days=verdict.max_days_per_statement,
                            max_days_per_transaction=verdict.max_days_per_transaction)
    assert len(steps) > 1 and max((s.end - s.start).days for s in steps) <= HOUR_DAYS_PER_STATEMENT
    with pytest.raises(RevCentConfigError, match=str(HOUR_DAYS_PER_TRANSACTION)):
        partition_steps(datetime(2000, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC),
                        max_days_per_transaction=HOUR_DAYS_PER_TRANSACTION)
    assert decide("p.d.t", Shape("DAY", "_created_at"), WRITTEN).max_days_per_statement is None  # the default
    assert MAX_DAYS_PER_STATEMENT > HOUR_DAYS_PER_STATEMENT


def _table(**options: object) -> bigquery.Table:
    table = bigquery.Table("p.d.t", schema=[SchemaField("id", "STRING", mode="REQUIRED"),
                                            SchemaField("loaded_at", "TIMESTAMP")])
    for name, value in options.items():
        setattr(table, name, value)
    return table


@pytest.mark.parametrize(("options", "shape"), [
    ({}, Shape(required_columns=("id",))),
    ({"time_partitioning": bigquery.TimePartitioning(field="loaded_at"), "require_partition_filter": True},
     Shape("DAY", "loaded_at", require_partition_filter=True, required_columns=("id",))),
    ({"time_partitioning": bigquery.TimePartitioning(type_="HOUR")}, Shape("HOUR", None, required_columns=("id",))),
    ({"time_partitioning": bigquery.TimePartitioning.from_api_repr(  # the flag where older tables keep it
        {"type": "DAY", "field": "loaded_at", "requirePartitionFilter": True})},
     Shape("DAY", "loaded_at", require_partition_filter=True, required_columns=("id",))),
    ({"range_partitioning": bigquery.RangePartitioning(field="n", range_=bigquery.PartitionRange(0, 100, 10))},
     Shape(range_field="n", required_columns=("id",))),
    ({"clustering_fields": ["status"]}, Shape(required_columns=("id",))),
])
def test_the_shape_is_read_from_the_tables_metadata(options, shape):
    assert shape_of(_table(**options)) == shape
