"""Table names: ``[project.]dataset.table`` checked, and the tables kept beside the destination."""

from __future__ import annotations

import pytest

from airflow_revcent.bigquery.tables import TableRef
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


def test_the_malformed_name_message_states_the_rules_the_check_applies():
    # Hyphens are accepted in the project and the table (test_table_names), never in the dataset.
    assert TableRef.parse("my-proj.ds.daily-customers", default_project=None).table == "daily-customers"
    with pytest.raises(RevCentConfigError) as info:
        TableRef.parse("my-proj.re-vcent.customers", default_project="p")
    message = str(info.value)
    assert "'my-proj.re-vcent.customers'" in message
    assert ("project: lowercase letters, digits and hyphens" in message
            and "dataset: letters, digits and underscores" in message
            and "table: letters, digits, underscores and hyphens" in message)


def test_a_table_without_project_needs_a_default():
    with pytest.raises(RevCentConfigError, match="names no project"):
        TableRef.parse("ds.t", default_project=None)


def test_staging_table_lives_beside_the_destination():
    staging = TableRef("p", "ds", "customers").staging("abc123")
    assert staging == TableRef("p", "ds", "_revcent_staging_customers_abc123")


def test_lock_table_lives_beside_the_destination():
    assert TableRef("p", "ds", "customers").lock() == TableRef("p", "ds", "_revcent_lock_customers")
