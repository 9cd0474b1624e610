from __future__ import annotations

from google.cloud.bigquery import SchemaField

from airflow_revcent.bigquery.fields import add_missing, diff_schema, to_schema_fields
from airflow_revcent.rows.columns import table_columns


def F(name, kind, mode="NULLABLE", fields=()):
    return SchemaField(name, kind, mode=mode, fields=fields)


EXPECTED = [F("id", "STRING", "REQUIRED"), F("amount", "NUMERIC"),
            F("lv", "RECORD", fields=[F("all", "RECORD", fields=[F("gross", "NUMERIC")])]),
            F("tags", "STRING", "REPEATED")]


def test_identical_and_alias_types_are_compatible():
    actual = [F("id", "STRING", "REQUIRED"), F("amount", "DECIMAL"),
              F("lv", "STRUCT", fields=[F("all", "RECORD", fields=[F("gross", "NUMERIC")])]),
              F("tags", "STRING", "REPEATED"), F("user_added", "INT64")]
    assert diff_schema(EXPECTED, actual).conflicts == []


def test_conflicts_name_every_offending_column():
    actual = [F("id", "INTEGER"), F("amount", "FLOAT"),
              F("lv", "RECORD", fields=[F("all", "RECORD", fields=[F("gross", "STRING")])]), F("tags", "STRING")]
    diff = diff_schema(EXPECTED, actual)
    assert diff.conflicts == [
        "id is INTEGER (expected STRING)",
        "amount is FLOAT (expected NUMERIC)",
        "lv.all.gross is STRING (expected NUMERIC)",
        "tags has mode NULLABLE (expected REPEATED)",
    ]


def test_required_column_the_pipeline_may_leave_null_conflicts():
    diff = diff_schema([F("email", "STRING")], [F("email", "STRING", "REQUIRED")])
    assert diff.conflicts == ["email is REQUIRED but the pipeline may leave it NULL"]


def test_missing_columns_are_added_as_nullable_even_nested():
    actual = [F("id", "STRING", "REQUIRED"), F("lv", "RECORD", fields=[F("all", "RECORD", fields=[])])]
    diff = diff_schema(EXPECTED, actual)
    assert diff.conflicts == [] and diff.missing == ["amount", "lv.all.gross", "tags"]
    merged = add_missing(actual, EXPECTED)
    assert [f.name for f in merged] == ["id", "lv", "amount", "tags"]
    assert merged[1].fields[0].fields[0].name == "gross"
    assert merged[3].mode == "REPEATED"
    assert diff_schema(EXPECTED, merged).missing == []


def test_full_table_schema_has_descriptions_and_nesting():
    fields = {f.name: f for f in to_schema_fields(table_columns())}
    assert fields["lifetime_value"].field_type == "RECORD"
    assert fields["customer_card"].mode == "REPEATED"
    assert fields["email"].description == "The customer email."
    assert fields["_unknown_fields"].field_type == "JSON"
