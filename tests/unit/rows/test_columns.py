from __future__ import annotations

from airflow_revcent.rows.columns import METADATA_COLUMNS, customer_columns, find_column, table_columns
from airflow_revcent.spec import load_spec


def _spec_customer_properties() -> set[str]:
    item = load_spec()["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["results"]["items"]
    names: set[str] = set()
    for part in item["allOf"]:
        names |= set(part["properties"])
    return names


def test_every_field_of_the_spec_is_a_column_in_spec_order():
    columns = customer_columns()
    assert {c.name for c in columns} == _spec_customer_properties()
    assert [c.name for c in columns][:3] == ["address_line_1", "address_line_2", "blocked"]


def test_type_mapping():
    cols = customer_columns()

    def col(path: str):
        found = find_column(cols, path)
        assert found is not None, path
        return found.type, found.mode

    assert col("id") == ("STRING", "REQUIRED")
    assert col("created_date_unix") == ("INTEGER", "NULLABLE")
    assert col("blocked") == ("BOOLEAN", "NULLABLE")
    assert col("lifetime_value") == ("RECORD", "NULLABLE")
    assert col("lifetime_value.all.amount_gross") == ("NUMERIC", "NULLABLE")
    assert col("lifetime_value.last_sale_date") == ("TIMESTAMP", "NULLABLE")
    assert col("customer_card") == ("RECORD", "REPEATED")
    assert col("customer_card.updated_date_unix") == ("INTEGER", "NULLABLE")
    assert col("products_purchased.purchase_dates") == ("INTEGER", "REPEATED")
    assert col("notes.text") == ("STRING", "NULLABLE")  # allOf inside array items
    assert col("sales") == ("STRING", "REPEATED")
    assert col("metadata.value") == ("STRING", "NULLABLE")


def test_descriptions_come_from_the_spec():
    cols = customer_columns()
    assert find_column(cols, "email").description == "The customer email."
    assert find_column(cols, "customer_card").description == "A list of credit cards associated with the customer."
    assert "gross" in find_column(cols, "lifetime_value.all.amount_gross").description


def test_metadata_columns_follow_and_start_with_underscore():
    columns = table_columns()
    assert columns[-len(METADATA_COLUMNS):] == METADATA_COLUMNS
    assert all(c.name.startswith("_") for c in METADATA_COLUMNS)
    assert not any(c.name.startswith("_") for c in customer_columns())
    assert find_column(columns, "_created_at").type == "TIMESTAMP"
