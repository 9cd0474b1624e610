"""Which existing destination tables the pipeline adopts, and on what terms: pure decisions on plain values.

Every statement that writes the destination is bounded by constant ``_created_at`` ranges
(:mod:`airflow_revcent.bigquery.statements`). Whether that is exact and affordable depends on the table's
partitioning, which a team's table chose for its own reasons. :func:`decide` reads the table's shape
(:class:`Shape`, from its metadata only) and answers adopt, adopt with a warning about cost, or refuse
(README "Tables the pipeline adopts" has the same table):

====================================================  =========================================================
shape                                                 verdict
====================================================  =========================================================
DAY on ``_created_at`` (the pipeline's own)           adopt
HOUR on ``_created_at``                               adopt; steps of at most 160 days (4,000 partitions a job)
MONTH / YEAR on ``_created_at``                       adopt, warning: a run reads whole months / years
unpartitioned                                         adopt, warning: every statement reads the whole table
time (DAY/HOUR/MONTH/YEAR) on another column          adopt, warning: every statement reads the whole table
ingestion time (``_PARTITIONTIME``)                   adopt, warning: every statement reads the whole table
integer range                                         adopt, warning: every statement reads the whole table
any of the last four with ``require_partition_filter``  refuse: BigQuery rejects every statement
REQUIRED column the pipeline does not write           refuse: every insert would fail
clustering (any columns)                              no effect: it never changes what a statement matches
====================================================  =========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from airflow_revcent.rows.columns import PARTITION_COLUMN

#: BigQuery lets one job modify at most 4,000 partitions: an HOUR-partitioned table has 24 a day.
HOUR_DAYS_PER_STATEMENT = 160
#: And a transaction at most 100,000 (95,000 leaves room).
HOUR_DAYS_PER_TRANSACTION = 95_000 // 24


@dataclass(frozen=True)
class Shape:
    """What of a table's metadata decides adoption.

    :param time_type: ``DAY``/``HOUR``/``MONTH``/``YEAR`` for time-unit or ingestion-time partitioning.
    :param time_field: the time-partitioning column; ``None`` with a ``time_type`` is ingestion time.
    :param range_field: the integer-range partitioning column.
    :param require_partition_filter: BigQuery rejects queries without a filter on the partitioning column.
    :param required_columns: top-level REQUIRED columns.
    """

    time_type: str | None = None
    time_field: str | None = None
    range_field: str | None = None
    require_partition_filter: bool = False
    required_columns: tuple[str, ...] = ()

    def partitioning(self) -> str:
        """The partitioning in words, for messages."""
        if self.time_type and self.time_field:
            return f"partitioned by {self.time_type} on {self.time_field}"
        if self.time_type:
            return f"partitioned by {self.time_type} on ingestion time (_PARTITIONTIME)"
        if self.range_field:
            return f"integer-range partitioned on {self.range_field}"
        return "unpartitioned"


@dataclass(frozen=True)
class Verdict:
    """What the pipeline does with a table.

    :param refusal: why the table cannot be written and what to do (``None``: it can).
    :param warning: a cost the user should know about (``None``: none).
    :param max_days_per_statement: the widest ``_created_at`` step one statement may cover, or ``None`` for
        the default.
    :param max_days_per_transaction: the widest range one transaction may cover, or ``None`` for the default.
    """

    refusal: str | None = None
    warning: str | None = None
    max_days_per_statement: int | None = None
    max_days_per_transaction: int | None = None


def decide(table: str, shape: Shape, written: Sequence[str]) -> Verdict:
    """Adopt, adopt with a warning, or refuse a table (see the module docstring).

    :param table: the table's name, for the messages.
    :param shape: its metadata.
    :param written: the top-level columns the pipeline writes.
    """
    unwritten = [c for c in shape.required_columns if c.lower() not in {w.lower() for w in written}]
    if unwritten:
        names = ", ".join(unwritten)
        return Verdict(refusal=(
            f"Table {table} has REQUIRED columns the pipeline does not write ({names}): every customer it inserts "
            f"would be refused. Make them NULLABLE (ALTER TABLE ... ALTER COLUMN {unwritten[0]} DROP NOT NULL) or "
            "choose another destination_table; nothing was changed."))
    on_created = shape.time_field is not None and shape.time_field.lower() == PARTITION_COLUMN
    if on_created:
        if shape.time_type == "HOUR":
            return Verdict(max_days_per_statement=HOUR_DAYS_PER_STATEMENT,
                           max_days_per_transaction=HOUR_DAYS_PER_TRANSACTION)
        if shape.time_type in ("MONTH", "YEAR"):
            unit = shape.time_type.lower()
            return Verdict(warning=(
                f"Table {table} is partitioned by {shape.time_type} on {PARTITION_COLUMN}: each run reads every "
                f"{unit} of customers its range touches, not only its days. For daily runs, a table partitioned "
                f"by DAY on {PARTITION_COLUMN} reads less."))
        return Verdict()
    if shape.require_partition_filter:
        column = shape.time_field or shape.range_field or "_PARTITIONTIME"
        return Verdict(refusal=(
            f"Table {table} is {shape.partitioning()} with require_partition_filter = true: BigQuery rejects every "
            f"statement the pipeline runs, which are bounded on {PARTITION_COLUMN}, not on {column}. Either "
            f"ALTER TABLE ... SET OPTIONS (require_partition_filter = false) (each run then reads the whole table), "
            f"or load into a new table (the pipeline creates it partitioned by DAY on {PARTITION_COLUMN}) and copy "
            "the team's columns over; nothing was changed."))
    return Verdict(warning=(
        f"Table {table} is {shape.partitioning()}, not partitioned on {PARTITION_COLUMN}: every statement of every "
        "run reads the whole table (its columns that the statement names), so each run costs as much as the table "
        f"is large. A table partitioned by DAY on {PARTITION_COLUMN} reads only the run's days."))


def shape_of(table: object) -> Shape:
    """The :class:`Shape` of a ``google.cloud.bigquery.Table`` (duck-typed: any object with its attributes).

    :param table: the table as ``get_table`` returned it.
    """
    time = getattr(table, "time_partitioning", None)
    ranged = getattr(table, "range_partitioning", None)
    # Older tables carry the flag inside timePartitioning (read without the client's deprecated property).
    legacy = time.to_api_repr().get("requirePartitionFilter") if time is not None else None
    require = bool(getattr(table, "require_partition_filter", None) or legacy)
    required = tuple(f.name for f in (getattr(table, "schema", None) or []) if f.mode == "REQUIRED")
    return Shape(
        time_type=str(time.type_) if time is not None and time.type_ else ("DAY" if time is not None else None),
        time_field=time.field if time is not None else None,
        range_field=getattr(ranged, "field", None) if ranged is not None else None,
        require_partition_filter=require,
        required_columns=required,
    )
