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
    assert "WHEN MATCHED AND T.`_content_hash` IS DISTINCT FROM S.`_content_hash` THEN UPDATE SET" in sql
    update = sql.split("UPDATE SET")[1].split("WHEN NOT MATCHED")[0]
    assert "`_first_seen_at`" not in update and "`id` =" not in update
    assert "`_last_changed_at` = S.`_extracted_at`" in update
    assert "INSERT (`id`, `email`, `_content_hash`, `_first_seen_at`, `_last_changed_at`, `_extracted_at`)" in sql
