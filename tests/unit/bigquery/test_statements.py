from __future__ import annotations

import pytest

from airflow_revcent.bigquery.statements import TableRef, merge_statement
from airflow_revcent.exceptions import RevCentConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("revcent.customers", TableRef("billing-proj", "revcent", "customers")),
        ("my-proj.revcent.customers", TableRef("my-proj", "revcent", "customers")),
        ("`my-proj.revcent.customers`", TableRef("my-proj", "revcent", "customers")),
        ("example.com:proj.ds.t_1", TableRef("example.com:proj", "ds", "t_1")),
    ],
)
def test_table_names(text, expected):
    assert TableRef.parse(text, default_project="billing-proj") == expected


@pytest.mark.parametrize(
    "text", ["customers", "a.b.c.d", "ds.", ".t", "My_Proj.ds.t", "ds.t;drop", "", None, "ds.t t2"]
)
def test_malformed_table_names_are_refused(text):
    with pytest.raises(RevCentConfigError, match="not a BigQuery table name"):
        TableRef.parse(text, default_project="p")


def test_a_table_without_project_needs_a_default():
    with pytest.raises(RevCentConfigError, match="names no project"):
        TableRef.parse("ds.t", default_project=None)


def test_staging_table_lives_beside_the_destination():
    staging = TableRef("p", "ds", "customers").staging("abc123")
    assert staging == TableRef("p", "ds", "_revcent_staging_customers_abc123")


def test_merge_is_keyed_on_id_updates_only_changed_rows_and_keeps_first_seen():
    sql = merge_statement(TableRef("p", "ds", "t"), TableRef("p", "ds", "s"),
                          ["id", "email", "_content_hash", "_first_seen_at", "_last_changed_at", "_extracted_at"])
    assert sql.startswith("MERGE `p.ds.t` AS T")
    assert "ON T.`id` = S.`id`\n" in sql
    assert "QUALIFY ROW_NUMBER() OVER (PARTITION BY `id`" in sql
    assert ("WHEN MATCHED AND T.`_content_hash` != S.`_content_hash` AND S.`_extracted_at` > T.`_extracted_at` "
            "THEN UPDATE SET") in sql
    update = sql.split("UPDATE SET")[1].split("WHEN NOT MATCHED")[0]
    assert "`_first_seen_at`" not in update and "`id` =" not in update
    assert "`_last_changed_at` = S.`_extracted_at`" in update
    assert "INSERT (`id`, `email`, `_content_hash`, `_first_seen_at`, `_last_changed_at`, `_extracted_at`)" in sql


def test_history_script_is_one_transaction_reading_the_destination_before_changing_it():
    from airflow_revcent.bigquery.statements import change_counts_query, history_script

    dest, stage, hist = TableRef("p", "ds", "t"), TableRef("p", "ds", "s"), TableRef("p", "ds", "h")
    sql = history_script(dest, stage, hist, ["id", "email", "_content_hash", "_first_seen_at", "_last_changed_at",
                                             "_extracted_at"])
    statements = [s.strip() for s in sql.split(";") if s.strip()]
    assert statements[0] == "BEGIN TRANSACTION" and statements[-1] == "COMMIT TRANSACTION"
    kinds = [s.split()[0] + " " + s.split()[1] for s in statements[1:-1]]
    assert kinds == ["UPDATE `p.ds.h`", "INSERT INTO", "INSERT INTO", "DELETE FROM"]
    assert "`p.ds.h`" in statements[2] and "`p.ds.t`" in statements[3]  # history first, then the table
    assert "COALESCE(T.`_first_seen_at`, S.`_extracted_at`)" in statements[3]
    assert "D.`_content_hash` != S.`_content_hash` AND S.`_extracted_at` > D.`_extracted_at`" in statements[4]
    assert "COUNTIF(T.`id` IS NULL) AS inserted" in change_counts_query(dest, stage)
