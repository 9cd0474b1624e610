"""The transaction that applies a staging table to the destination: pure strings.

Every write to a destination is one multi-statement transaction (:func:`apply_script`), so a run
either changes the destination (and its history) completely or not at all. The rules it follows
are BigQuery's documented ones, not the local server's:

* **One writer at a time.** The transaction's first statement updates the destination's lock row
  (a one-row table beside it). BigQuery does not run two transactions that mutate rows of the same
  table concurrently: the later one is cancelled ("Transaction is aborted due to concurrent
  update") and retried by the pipeline. So committed writes never overlap, each sees every row
  committed before it began, and an id already present is updated, never inserted again. A lock
  update that changes no row (the row was deleted) serializes nothing: the transaction then raises
  :data:`LOCK_ROW_MISSING` and changes nothing.
* **Partitions.** Each statement is restricted to one step of at most
  :data:`MAX_DAYS_PER_STATEMENT` days of ``_created_at`` (constant bounds, so BigQuery prunes to
  those partitions, a table with ``require_partition_filter`` accepts it, and no statement
  modifies more than 4,000 partitions, BigQuery's per-job limit). A long range (a first load of
  many years) is several steps inside the same transaction.
  ``require_partition_filter`` on another column cannot be met: such a table is refused
  (:mod:`~airflow_revcent.bigquery.adoption`), and rows written without ``_created_at`` are given it
  first (:func:`adoption_fill_statement`).
* **STRUCTs by position.** Values are copied column to column (``SET rec = S.rec``), which BigQuery
  does by position inside a STRUCT: the staging table is built with the target table's own schema
  (same nested fields, same order), so each nested value lands in the field of the same name.
* New ids are inserted; known ids are updated in place (columns the pipeline does not write keep
  their values) when the content hash differs and the staging row was read later than the
  stored one, or when the stored row has no ``_extracted_at`` (a row written by someone else).
* A known id read later with the same content only moves ``_extracted_at`` to that read (not
  counted as updated; ``_last_changed_at`` and the history stay): ``_extracted_at`` is the latest
  read of the stored content, so an older read of other content that commits later never wins.
* The counts are taken inside the transaction (``@@row_count`` after each statement) and are the
  script's result: one row, ``inserted`` and ``updated``.
* ``_first_seen_at`` is kept from the first load; ``_last_changed_at`` moves on change.
* Rows absent from the staging table are left alone: the API can be asked for a subset
  (filters), and a customer is never deleted because one answer lacked it.
* With change history on, the same transaction closes the current version of each changed
  customer in the history table and appends its new one, before the destination changes. The
  history is partitioned on ``_valid_from``; the statement that closes versions is bounded to
  ``_valid_from >=`` the step's first day less :data:`HISTORY_CLOCK_MARGIN` (see
  :func:`history_bound`).

The design assumes what the API documents: ``created_date_unix`` is when the customer was
created, so an id keeps its ``_created_at`` and therefore its partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from airflow_revcent.bigquery.tables import TableRef
from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.rows.columns import PARTITION_COLUMN
from airflow_revcent.rows.timefmt import sql_timestamp_text

#: Days of ``_created_at`` one statement may touch. BigQuery lets one job modify at most 4,000
#: partitions; a DAY-partitioned table has one per day, and 3,650 leaves room below the limit.
MAX_DAYS_PER_STATEMENT = 3650
#: A transaction may modify at most 100,000 partitions in total (BigQuery's documented limit).
MAX_DAYS_PER_TRANSACTION = 95_000
#: How far the worker's clock may be behind RevCent's for :func:`history_bound` to hold.
HISTORY_CLOCK_MARGIN = timedelta(days=1)
#: What the transaction raises when the lock update changed no row (the message BigQuery reports).
LOCK_ROW_MISSING = ("The lock table has no row, so this write would not be serialized with others; nothing "
                    "was changed. Retry the task: its set-up gives the lock table its row again.")


@dataclass(frozen=True)
class Step:
    """A half-open range of ``_created_at`` that one statement touches."""

    start: datetime
    end: datetime

    def condition(self, alias: str) -> str:
        """``alias._created_at`` within the step, with constant bounds BigQuery prunes on."""
        # The last representable instant has no successor: that step ends inclusively.
        below = "<=" if self.end == datetime.max.replace(tzinfo=UTC) else "<"
        return (f"{alias}.`{PARTITION_COLUMN}` >= TIMESTAMP '{sql_timestamp_text(self.start)}' AND "
                f"{alias}.`{PARTITION_COLUMN}` {below} TIMESTAMP '{sql_timestamp_text(self.end)}'")


def partition_steps(first: datetime, last: datetime, *, max_days: int = MAX_DAYS_PER_STATEMENT,
                    max_days_per_transaction: int = MAX_DAYS_PER_TRANSACTION) -> list[Step]:
    """Whole UTC days from ``first``'s to ``last``'s, in steps of at most ``max_days`` days.

    :param first: the earliest ``_created_at`` of the staging rows.
    :param last: the latest.
    :param max_days: the most days (so DAY partitions) one statement may touch.
    :param max_days_per_transaction: the most days the whole transaction may touch (fewer than the default
        for a table with more than one partition a day).
    """
    if max_days < 1:
        raise ValueError(f"max_days={max_days!r} must be >= 1")
    first_day, last_day = first.astimezone(UTC).date(), last.astimezone(UTC).date()
    if last_day < first_day:
        raise ValueError(f"last={last.isoformat()} is before first={first.isoformat()}")
    days = (last_day - first_day).days + 1
    if days > max_days_per_transaction:
        raise RevCentConfigError(
            f"The customers to load span {first_day} to {last_day}, more days than one BigQuery transaction may "
            f"modify partitions for ({max_days_per_transaction}). Load the range in parts (date_start/date_end)."
        )
    # The last day's end: 9999-12-31 has no next day in Python, so the bound is its last microsecond.
    def end_of(d: date) -> datetime:
        return (datetime.combine(d, datetime.min.time(), UTC) + timedelta(days=1) if d < date.max
                else datetime.max.replace(tzinfo=UTC))

    steps = []
    for offset in range(0, days, max_days):
        start_day = first_day + timedelta(days=offset)
        stop_day = first_day + timedelta(days=min(offset + max_days, days) - 1)
        steps.append(Step(datetime.combine(start_day, datetime.min.time(), UTC), end_of(stop_day)))
    return steps


def _q(name: str) -> str:
    return f"`{name}`"


#: The column that identifies an item, unless the resource names another (``key_field``).
DEFAULT_KEY = "id"


def _deduplicated(staging: TableRef, step: Step, key: str = DEFAULT_KEY) -> str:
    # One row per key even if a staging table holds one twice (results shift while paging): the
    # latest read wins. An UPDATE whose source matches a target row twice fails outright, and a
    # history would get two versions.
    return (f"(SELECT * FROM {staging.sql()} AS R WHERE {step.condition('R')}\n"
            f"    QUALIFY ROW_NUMBER() OVER (PARTITION BY {_q(key)} ORDER BY `_extracted_at` DESC, `_content_hash`) "
            "= 1)")


def _current(destination: TableRef, step: Step) -> str:
    return f"(SELECT * FROM {destination.sql()} AS D WHERE {step.condition('D')})"


#: A staging row S replaces the stored row T: T was written without extraction metadata, or S's
#: content differs and S was read later (whichever run commits last, the latest read wins).
_REPLACES = ("({t}.`_extracted_at` IS NULL OR (COALESCE({t}.`_content_hash`, '') != S.`_content_hash` "
             "AND S.`_extracted_at` > {t}.`_extracted_at`))")


#: A staging row S read the stored row T's content again, later: only T's read time moves.
_REREAD = "({t}.`_content_hash` = S.`_content_hash` AND S.`_extracted_at` > {t}.`_extracted_at`)"
#: The script's variables counting what its statements did to the destination.
INSERTED, UPDATED = "revcent_inserted", "revcent_updated"


def _changed(destination: TableRef, staging: TableRef, step: Step, key: str = DEFAULT_KEY) -> str:
    """Staging rows (S) of a step that are new or replace their stored row (T), joined to it."""
    k = _q(key)
    return (f"FROM {_deduplicated(staging, step, key)} AS S\n"
            f"  LEFT JOIN {_current(destination, step)} AS T ON T.{k} = S.{k}\n"
            f"  WHERE T.{k} IS NULL OR {_REPLACES.format(t='T')}")


def history_bound(step: Step, alias: str) -> str:
    """``alias._valid_from`` bounded below by a constant, so closing versions prunes the history's partitions.

    The history is partitioned on ``_valid_from`` (when a version was read). A customer is read only
    after it was created, so each of its versions has ``_valid_from >= _created_at``, and the step's
    customers have ``_created_at >=`` its first day. ``_created_at`` is RevCent's clock and
    ``_valid_from`` the worker's: :data:`HISTORY_CLOCK_MARGIN` allows the worker's to be behind by up
    to that much. No upper bound: a version was read before the run that closes it, so it never lies
    ahead, and a bound there would prune nothing.

    :param step: the step whose customers' versions are closed.
    :param alias: the history table's alias.
    """
    earliest = datetime.min.replace(tzinfo=UTC)
    floor = step.start - HISTORY_CLOCK_MARGIN if step.start - earliest > HISTORY_CLOCK_MARGIN else earliest
    return f"{alias}.`_valid_from` >= TIMESTAMP '{sql_timestamp_text(floor)}'"


def _value(column: str, *, inserting: bool) -> str:
    if column == "_first_seen_at":
        return "S.`_extracted_at`" if inserting else "COALESCE(T.`_first_seen_at`, S.`_extracted_at`)"
    if column == "_last_changed_at":
        return "S.`_extracted_at`"
    return f"S.{_q(column)}"


def lock_statement(lock: TableRef, run_id: str | None) -> str:
    """The statement that opens every write: mutates the lock row, so writers never overlap."""
    run = "NULL" if run_id is None else _string_literal(run_id)
    return (f"UPDATE {lock.sql()} SET `revision` = `revision` + 1, `run_id` = {run}, "
            "`updated_at` = CURRENT_TIMESTAMP() WHERE TRUE;")


def lock_check_statement() -> str:
    """Right after :func:`lock_statement`: a lock update that changed no row serialized nothing, so the
    transaction stops there (rolled back) rather than write beside a concurrent writer."""
    return f"IF @@row_count = 0 THEN RAISE USING MESSAGE = {_string_literal(LOCK_ROW_MISSING)}; END IF;"


def lock_init_statement(lock: TableRef) -> str:
    """Give an empty lock table its row (concurrent first runs may both add one: any row serializes).

    Safe to run any number of times (it inserts only into an empty table), so each run submits it
    under a job id of its own.
    """
    return (f"INSERT INTO {lock.sql()} (`revision`) SELECT 0 FROM UNNEST([1]) "
            f"WHERE NOT EXISTS (SELECT 1 FROM {lock.sql()})")


def _string_literal(value: str) -> str:
    # Run ids are Airflow's (letters, digits, ':+-._T'); anything else is escaped, never trusted.
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def apply_script(
    destination: TableRef,
    staging: TableRef,
    columns: Sequence[str],
    steps: Sequence[Step],
    *,
    run_id: str | None = None,
    history: TableRef | None = None,
    history_staging: TableRef | None = None,
    key: str = DEFAULT_KEY,
) -> str:
    """One transaction applying a staging table to the destination (see the module docstring).

    The script's result is one row: ``inserted`` and ``updated``, the rows its statements inserted into
    and updated in the destination (``@@row_count``), exact, taken inside the transaction.

    :param destination: the customers table.
    :param staging: the run's staging table, with the destination's schema for ``columns``.
    :param columns: the top-level columns the pipeline writes (others keep their values).
    :param steps: steps of at most :data:`MAX_DAYS_PER_STATEMENT` days covering the staging rows.
    :param run_id: recorded on the lock row, for whoever wonders who wrote last.
    :param history: a type-2 history table (the destination's columns plus ``_valid_from``,
        ``_valid_to``, ``_is_current``), partitioned on ``_valid_from``, or ``None``.
    :param history_staging: the same rows as ``staging`` in a table with the history's schema
        (``staging`` itself when the two tables' columns are alike).
    :param key: the column that identifies an item (the resource's ``key_field``): rows are matched on it.
    """
    k = _q(key)
    names = ", ".join(_q(c) for c in columns)
    updates = ", ".join(f"{_q(c)} = {_value(c, inserting=False)}" for c in columns
                        if c not in (key, "_first_seen_at", PARTITION_COLUMN))
    statements = [f"DECLARE {INSERTED} INT64 DEFAULT 0;", f"DECLARE {UPDATED} INT64 DEFAULT 0;",
                  "BEGIN TRANSACTION;", lock_statement(destination.lock(), run_id), lock_check_statement()]
    for step in steps:
        if history is not None:
            source = history_staging or staging
            # Both history statements read the destination before this step changes it.
            statements += [
                f"UPDATE {history.sql()} AS H SET `_valid_to` = C.`_extracted_at`, `_is_current` = FALSE\n"
                f"  FROM (SELECT S.{k}, S.`_extracted_at` {_changed(destination, staging, step, key)}) AS C\n"
                f"  WHERE H.`_is_current` AND H.{k} = C.{k} AND {history_bound(step, 'H')};",
                f"INSERT INTO {history.sql()} ({names}, `_valid_from`, `_valid_to`, `_is_current`)\n"
                f"  SELECT {', '.join(_value(c, inserting=False) for c in columns)}, S.`_extracted_at`, NULL, TRUE\n"
                f"  {_changed(destination, source, step, key)};",
            ]
        statements += [
            f"UPDATE {destination.sql()} AS T SET {updates}\n"
            f"  FROM {_deduplicated(staging, step, key)} AS S\n"
            f"  WHERE T.{k} = S.{k} AND {step.condition('T')} AND {_REPLACES.format(t='T')};",
            f"SET {UPDATED} = {UPDATED} + @@row_count;",
            f"INSERT INTO {destination.sql()} ({names})\n"
            f"  SELECT {', '.join(_value(c, inserting=True) for c in columns)}\n"
            f"  FROM {_deduplicated(staging, step, key)} AS S\n"
            f"  WHERE NOT EXISTS (SELECT 1 FROM {_current(destination, step)} AS T WHERE T.{k} = S.{k});",
            f"SET {INSERTED} = {INSERTED} + @@row_count;",
            # Same content read later: only the read time moves (after the two above, so a row they
            # wrote already carries this read's time and is not touched again).
            f"UPDATE {destination.sql()} AS T SET `_extracted_at` = S.`_extracted_at`\n"
            f"  FROM {_deduplicated(staging, step, key)} AS S\n"
            f"  WHERE T.{k} = S.{k} AND {step.condition('T')} AND {_REREAD.format(t='T')};",
        ]
    statements += ["COMMIT TRANSACTION;", f"SELECT {INSERTED} AS inserted, {UPDATED} AS updated;"]
    return "\n".join(statements)


#: The API's creation time, from which ``_created_at`` is derived (as the load files derive it), unless the
#: resource names another (``created_field``).
CREATED_UNIX_COLUMN = "created_date_unix"


def unplaced_rows_query(destination: TableRef, *, has_created_at: bool, has_created_unix: bool,
                        created: str = CREATED_UNIX_COLUMN) -> str:
    """How many rows no bounded statement can see (``_created_at`` NULL or absent), and how many of them
    nothing can place (``created_date_unix`` NULL or absent) (read-only).

    :param destination: the customers table, before the pipeline changes it.
    :param has_created_at: the table has a ``_created_at`` column.
    :param has_created_unix: the table has the ``created`` column.
    :param created: the column of the item's creation time in unix seconds (the resource's ``created_field``).
    """
    return (f"SELECT COUNT(*) AS unplaced, COUNTIF({_orphan(has_created_unix, created)}) AS orphans\n"
            f"FROM {destination.sql()}{_unplaced(has_created_at)}")


def orphan_ids_query(destination: TableRef, *, has_created_at: bool, has_created_unix: bool, limit: int = 5,
                     key: str = DEFAULT_KEY, created: str = CREATED_UNIX_COLUMN) -> str:
    """A few keys of the rows nothing can place, for the error message (read-only), as the column ``id``.

    :param destination: the customers table.
    :param has_created_at: the table has a ``_created_at`` column.
    :param has_created_unix: the table has the ``created`` column.
    :param limit: how many.
    :param key: the column that identifies an item (the resource's ``key_field``).
    :param created: the column of the item's creation time in unix seconds.
    """
    where = _unplaced(has_created_at)
    orphan = _orphan(has_created_unix, created)
    where = f"{where} AND {orphan}" if where else f" WHERE {orphan}"
    return (f"SELECT CAST({_q(key)} AS STRING) AS id FROM {destination.sql()}{where} ORDER BY id "
            f"LIMIT {int(limit)}")


def _unplaced(has_created_at: bool) -> str:
    return f" WHERE {_q(PARTITION_COLUMN)} IS NULL" if has_created_at else ""


def _orphan(has_created_unix: bool, created: str = CREATED_UNIX_COLUMN) -> str:
    return f"{_q(created)} IS NULL" if has_created_unix else "TRUE"


def adoption_fill_statement(destination: TableRef, created: str = CREATED_UNIX_COLUMN, *, numeric: bool = False) -> str:
    """Give the rows another writer left without ``_created_at`` the value the pipeline would have written,
    so the bounded statements see them. Idempotent: a second run (or a concurrent one) finds nothing to fill.

    :param destination: the customers table (with a nullable ``_created_at``).
    :param created: the column of the item's creation time in unix seconds (the resource's ``created_field``).
    :param numeric: that column is NUMERIC (a ``number`` in the schema): cast, as TIMESTAMP_SECONDS takes INT64.
    """
    seconds = f"CAST({_q(created)} AS INT64)" if numeric else _q(created)
    return (f"UPDATE {destination.sql()} SET {_q(PARTITION_COLUMN)} = TIMESTAMP_SECONDS({seconds})\n"
            f"WHERE {_q(PARTITION_COLUMN)} IS NULL AND {_q(created)} IS NOT NULL")
