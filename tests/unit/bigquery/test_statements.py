from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from airflow_revcent.bigquery.statements import (
    HISTORY_CLOCK_MARGIN,
    LOCK_ROW_MISSING,
    MAX_DAYS_PER_STATEMENT,
    apply_script,
    lock_statement,
    partition_steps,
)
from airflow_revcent.bigquery.tables import TableRef
from airflow_revcent.exceptions import RevCentConfigError

COLUMNS = ["id", "email", "_content_hash", "_first_seen_at", "_last_changed_at", "_extracted_at", "_created_at"]
DEST, STAGE, HIST = TableRef("p", "ds", "t"), TableRef("p", "ds", "s"), TableRef("p", "ds", "h")


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";\n") if s.strip()]


def _writes(sql: str) -> list[str]:
    """The transaction's statements between the lock (and its check) and COMMIT, without the counting SETs."""
    statements = _statements(sql)
    body = statements[statements.index("BEGIN TRANSACTION") + 3:statements.index("COMMIT TRANSACTION")]
    return [s for s in body if not s.startswith("SET ")]


def _day(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_every_write_is_one_transaction_that_takes_the_lock_first():
    sql = apply_script(DEST, STAGE, COLUMNS, partition_steps(_day(2026, 1, 1), _day(2026, 1, 3)), run_id="r1")
    statements = _statements(sql)
    begin = statements.index("BEGIN TRANSACTION")
    assert all(s.startswith("DECLARE ") for s in statements[:begin])
    assert statements[-2] == "COMMIT TRANSACTION"
    assert statements[begin + 1].startswith("UPDATE `p.ds._revcent_lock_t` SET `revision` = `revision` + 1, "
                                            "`run_id` = 'r1'")
    kinds = [" ".join(s.split()[:2]) for s in _writes(sql)]
    assert kinds == ["UPDATE `p.ds.t`", "INSERT INTO", "UPDATE `p.ds.t`"]


def test_a_lock_update_that_changed_no_row_stops_the_transaction():
    # A deleted lock row serializes nothing: the transaction must not go on to write (BigQuery rolls it back).
    statements = _statements(apply_script(DEST, STAGE, COLUMNS, partition_steps(_day(2026, 1, 1), _day(2026, 1, 1))))
    check = statements[statements.index("BEGIN TRANSACTION") + 2]
    assert check.startswith("IF @@row_count = 0 THEN RAISE USING MESSAGE = 'The lock table has no row")
    assert LOCK_ROW_MISSING[:40] in check and check.endswith("END IF")


def test_the_counts_are_taken_inside_the_transaction_after_each_write():
    statements = _statements(apply_script(DEST, STAGE, COLUMNS, partition_steps(_day(2010, 1, 1), _day(2026, 1, 1))))
    assert statements[:2] == ["DECLARE revcent_inserted INT64 DEFAULT 0", "DECLARE revcent_updated INT64 DEFAULT 0"]
    changes = [i for i, s in enumerate(statements) if s.startswith(("UPDATE `p.ds.t` AS T SET `email`",
                                                                      "INSERT INTO `p.ds.t`"))]
    assert len(changes) == 4  # two steps
    for i in changes:
        counter = "revcent_updated" if statements[i].startswith("UPDATE") else "revcent_inserted"
        assert statements[i + 1] == f"SET {counter} = {counter} + @@row_count"
    assert statements[-2:] == ["COMMIT TRANSACTION", "SELECT revcent_inserted AS inserted, revcent_updated AS updated;"]


def test_a_later_read_of_the_same_content_moves_only_extracted_at_and_is_not_counted():
    statements = _statements(apply_script(DEST, STAGE, COLUMNS, partition_steps(_day(2026, 1, 1), _day(2026, 1, 1)),
                                          history=HIST))
    (reread,) = [s for s in statements if s.startswith("UPDATE `p.ds.t` AS T SET `_extracted_at` = ")]
    assert reread.split("\n")[0] == "UPDATE `p.ds.t` AS T SET `_extracted_at` = S.`_extracted_at`"
    assert "(T.`_content_hash` = S.`_content_hash` AND S.`_extracted_at` > T.`_extracted_at`)" in reread
    following = statements[statements.index(reread) + 1]
    assert not following.startswith("SET ")  # not counted as updated
    assert statements.index(reread) > max(i for i, s in enumerate(statements) if s.startswith("INSERT INTO"))


def test_updates_in_place_only_newer_changed_rows_and_keeps_first_seen():
    update, insert, _ = _writes(apply_script(DEST, STAGE, COLUMNS, partition_steps(_day(2026, 1, 1), _day(2026, 1, 1))))
    assert "T.`id` = S.`id`" in update
    assert ("(T.`_extracted_at` IS NULL OR (COALESCE(T.`_content_hash`, '') != S.`_content_hash` AND "
            "S.`_extracted_at` > T.`_extracted_at`))") in update
    assignments = update.split(" SET ")[1].split("\n")[0]
    assert "`_first_seen_at`" not in assignments and "`id` =" not in assignments
    assert "`_created_at` =" not in assignments  # the partitioning column never moves a row
    assert "`_last_changed_at` = S.`_extracted_at`" in assignments
    assert "QUALIFY ROW_NUMBER() OVER (PARTITION BY `id` ORDER BY `_extracted_at` DESC" in update
    assert insert.startswith("INSERT INTO `p.ds.t` (`id`, `email`, `_content_hash`, `_first_seen_at`")
    assert "WHERE NOT EXISTS (SELECT 1 FROM (SELECT * FROM `p.ds.t` AS D WHERE D.`_created_at` >=" in insert


def test_every_reference_to_the_destination_has_constant_partition_bounds():
    steps = partition_steps(_day(2026, 1, 1), _day(2026, 1, 1))
    bounds = "`_created_at` >= TIMESTAMP '2026-01-01 00:00:00.000000+00' AND {a}.`_created_at` < " \
             "TIMESTAMP '2026-01-02 00:00:00.000000+00'"
    sql = apply_script(DEST, STAGE, COLUMNS, steps, history=HIST)
    # Every read of the destination (an INSERT's target is written, not read).
    references = sql.count("`p.ds.t`") - sql.count("INSERT INTO `p.ds.t`")
    pruned = sum(sql.count(f"{a}.{bounds.format(a=a)}") for a in ("T", "D"))
    assert references and pruned >= references, sql


def test_every_read_of_the_history_is_bounded_on_its_partition_column():
    # Partitioned on _valid_from: each version was read after its customer was created (less the clock margin).
    steps = partition_steps(_day(2010, 1, 1), _day(2026, 1, 1))
    sql = apply_script(DEST, STAGE, COLUMNS, steps, history=HIST)
    reads = [s for s in _statements(sql) if "`p.ds.h`" in s and not s.startswith("INSERT INTO `p.ds.h`")]
    assert len(reads) == len(steps) == 2
    for read, step in zip(reads, steps, strict=True):
        floor = (step.start - HISTORY_CLOCK_MARGIN).strftime("%Y-%m-%d")
        assert f"H.`_valid_from` >= TIMESTAMP '{floor} 00:00:00.000000+00'" in read


def test_the_history_bound_of_the_first_day_bigquery_holds_stays_in_range():
    sql = apply_script(DEST, STAGE, COLUMNS, partition_steps(_day(1, 1, 1), _day(1, 1, 2)), history=HIST)
    assert "H.`_valid_from` >= TIMESTAMP '0001-01-01 00:00:00.000000+00'" in sql


def test_long_ranges_are_applied_in_steps_under_the_partition_limit():
    steps = partition_steps(_day(2010, 1, 1, 5), _day(2026, 12, 1))
    assert len(steps) == 2
    assert all((s.end - s.start).days <= MAX_DAYS_PER_STATEMENT < 4000 for s in steps)
    assert steps[0].start == _day(2010, 1, 1) and steps[-1].end == _day(2026, 12, 2)
    assert all(a.end == b.start for a, b in itertools.pairwise(steps))
    sql = apply_script(DEST, STAGE, COLUMNS, steps)
    assert sql.count("UPDATE `p.ds.t`") == 4 and sql.count("INSERT INTO `p.ds.t`") == 2  # change, re-read
    assert sql.count("BEGIN TRANSACTION") == 1


@pytest.mark.parametrize(
    ("first", "last", "count"),
    [((1, 1, 1), (1, 1, 1), 1), ((9999, 12, 31), (9999, 12, 31, 23), 1), ((2020, 1, 1), (2029, 12, 28), 1),
     ((2020, 1, 1), (2029, 12, 29), 2)],
)
def test_partition_steps_at_the_edges(first, last, count):
    steps = partition_steps(_day(*first), _day(*last))
    assert len(steps) == count
    assert steps[0].condition("T").startswith(f"T.`_created_at` >= TIMESTAMP '{first[0]:04d}-")


def test_the_last_day_bigquery_holds_ends_inclusively():
    (step,) = partition_steps(_day(9999, 12, 31), _day(9999, 12, 31))
    assert "<= TIMESTAMP '9999-12-31 23:59:59.999999+00'" in step.condition("T")


def test_more_days_than_one_transaction_may_modify_is_refused():
    with pytest.raises(RevCentConfigError, match="Load the range in parts"):
        partition_steps(_day(1, 1, 1), _day(9000, 1, 1))


def test_history_is_closed_and_appended_before_the_table_changes():
    hist_stage = TableRef("p", "ds", "hs")
    sql = apply_script(DEST, STAGE, COLUMNS, partition_steps(_day(2026, 1, 1), _day(2026, 1, 1)), history=HIST,
                       history_staging=hist_stage)
    kinds = [" ".join(s.split()[:2]) for s in _writes(sql)]
    assert kinds == ["UPDATE `p.ds.h`", "INSERT INTO", "UPDATE `p.ds.t`", "INSERT INTO", "UPDATE `p.ds.t`"]
    close, append = _writes(sql)[:2]
    assert "SET `_valid_to` = C.`_extracted_at`, `_is_current` = FALSE" in close
    assert append.startswith("INSERT INTO `p.ds.h`") and "FROM (SELECT * FROM `p.ds.hs`" in append


def test_run_ids_are_quoted_as_literals():
    assert "`run_id` = 'a\\'b'" in lock_statement(TableRef("p", "ds", "l"), "a'b")


def test_a_resource_keyed_on_another_field_is_matched_deduplicated_and_closed_on_that_column():
    columns = ["sale_id", "id", *COLUMNS[1:]]  # an `id` column that is not the key: never matched on
    steps = partition_steps(_day(2026, 1, 1), _day(2026, 1, 1))
    keyed = apply_script(DEST, STAGE, columns, steps, history=HIST, key="sale_id")
    close, append, update, insert, reread = _writes(keyed)
    assert "H.`sale_id` = C.`sale_id`" in close and "SELECT S.`sale_id`, S.`_extracted_at`" in close
    assert "LEFT JOIN" in append and "T.`sale_id` = S.`sale_id`" in append and "T.`sale_id` IS NULL" in append
    for statement in (update, reread):
        assert "WHERE T.`sale_id` = S.`sale_id` AND" in statement
    assert "WHERE T.`sale_id` = S.`sale_id`);" in insert + ";"
    for statement in (close, append, update, insert, reread):
        assert "PARTITION BY `sale_id` ORDER BY" in statement
        assert "T.`id` = S.`id`" not in statement and "PARTITION BY `id`" not in statement
    assignments = update.split(" SET ")[1].split("\n")[0]
    assert "`sale_id` =" not in assignments  # the key never changes
    assert "`id` = S.`id`" in assignments  # a plain column like any other
    # The default key is customers' id: the statements are the same text as before the key was a parameter.
    assert apply_script(DEST, STAGE, COLUMNS, steps, history=HIST) == apply_script(DEST, STAGE, COLUMNS, steps,
                                                                                   history=HIST, key="id")


def test_the_adoption_statements_use_the_resources_key_and_creation_field():
    from airflow_revcent.bigquery.statements import adoption_fill_statement, orphan_ids_query, unplaced_rows_query

    orphans = orphan_ids_query(DEST, has_created_at=True, has_created_unix=True, key="sale_id", created="made_unix")
    assert orphans.startswith("SELECT CAST(`sale_id` AS STRING) AS id FROM `p.ds.t` WHERE `_created_at` IS NULL "
                              "AND `made_unix` IS NULL")
    assert "COUNTIF(`made_unix` IS NULL)" in unplaced_rows_query(DEST, has_created_at=True, has_created_unix=True,
                                                                 created="made_unix")
    assert "TIMESTAMP_SECONDS(`made_unix`)" in adoption_fill_statement(DEST, "made_unix")
    assert "TIMESTAMP_SECONDS(CAST(`made_unix` AS INT64))" in adoption_fill_statement(DEST, "made_unix", numeric=True)
