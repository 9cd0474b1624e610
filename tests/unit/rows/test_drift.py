from __future__ import annotations

from airflow_revcent.rows.columns import Column, customer_columns, find_column
from airflow_revcent.rows.drift import (
    PROMOTED_DESCRIPTION,
    Promotion,
    add_columns,
    column_type,
    plan_promotions,
    promote,
    with_promoted,
)
from airflow_revcent.rows.records import RecordConverter, value_kind


def test_value_kinds_and_unambiguous_types():
    values: tuple[object, ...] = ("a", True, 3, 1.5, 0.1234567891, {}, [])
    assert [value_kind(v) for v in values] == [
        "STRING", "BOOLEAN", "INTEGER", "NUMERIC", "FLOAT", "OTHER", "OTHER"]
    assert column_type({"INTEGER"}) == "INTEGER"
    assert column_type({"INTEGER", "NUMERIC"}) == "NUMERIC"
    assert column_type({"NUMERIC", "FLOAT"}) == "FLOAT"
    assert column_type({"STRING", "INTEGER"}) is None
    assert column_type({"OTHER"}) is None


def test_only_scalar_paths_under_existing_records_are_promoted():
    kinds = {"loyalty_tier": {"STRING"}, "customer_card[].network": {"STRING"},
             "lifetime_value.all.amount_tax": {"INTEGER", "NUMERIC"}, "mixed": {"STRING", "INTEGER"},
             "loyalty": {"OTHER"}, "nowhere.deep": {"STRING"}, "sales[]": {"STRING"}}
    promotions = plan_promotions(kinds, customer_columns())
    assert promotions == [Promotion("customer_card[].network", "STRING"),
                          Promotion("lifetime_value.all.amount_tax", "NUMERIC"),
                          Promotion("loyalty_tier", "STRING")]
    columns = add_columns(customer_columns(), promotions)
    assert find_column(columns, "customer_card.network").type == "STRING"
    assert find_column(columns, "lifetime_value.all.amount_tax").type == "NUMERIC"
    assert find_column(columns, "loyalty_tier").description == PROMOTED_DESCRIPTION


def test_promote_moves_values_out_of_unknown_fields_keeping_positions():
    row = {"id": "x", "customer_card": [{"id": "a"}, {"id": "b"}],
           "_unknown_fields": {"loyalty_tier": "gold", "other": {"x": 1},
                               "customer_card": [{}, {"network": "visa"}]}}
    promote(row, [Promotion("loyalty_tier", "STRING"), Promotion("customer_card[].network", "STRING")])
    assert row["loyalty_tier"] == "gold"
    assert row["customer_card"] == [{"id": "a"}, {"id": "b", "network": "visa"}]
    assert row["_unknown_fields"] == {"other": {"x": 1}}
    clean = {"id": "y", "_unknown_fields": {"loyalty_tier": "silver"}}
    assert promote(clean, [Promotion("loyalty_tier", "STRING")]) == {"id": "y", "loyalty_tier": "silver"}


def test_a_promoted_column_is_an_api_column_next_time_and_a_conflict_is_reported():
    table = add_columns(customer_columns(), [Promotion("loyalty_tier", "STRING")])
    table = (*table, Column("analyst_note", "STRING", description="added by hand"))
    columns = with_promoted(customer_columns(), table)
    assert find_column(columns, "loyalty_tier") is not None
    assert find_column(columns, "analyst_note") is None  # never written by the pipeline
    converter = RecordConverter(columns, on_invalid_record="keep")
    row = converter.convert({"id": "z", "created_date_unix": 1, "loyalty_tier": 5})
    assert row["_unknown_fields"] == {"loyalty_tier": 5} and converter.invalid_paths == {"loyalty_tier": 1}


def test_promoted_float_columns_are_checked_and_conflicts_name_the_right_type():
    columns = add_columns(customer_columns(), [Promotion("score", "FLOAT")])
    converter = RecordConverter(columns)
    assert converter.convert({"id": "f", "created_date_unix": 1, "score": 0.1234567891})["score"] == 0.1234567891
    import pytest

    from airflow_revcent.exceptions import RevCentDataError

    with pytest.raises(RevCentDataError, match=r"field score is 'high' .* the spec says FLOAT"):
        converter.convert({"id": "f", "created_date_unix": 1, "score": "high"})
    with pytest.raises(RevCentDataError, match=r"field lifetime_value.all.amount_gross is 'x' .* says NUMERIC"):
        converter.convert({"id": "f", "created_date_unix": 1, "lifetime_value": {"all": {"amount_gross": "x"}}})


def test_a_promoted_integer_beyond_2_53_lands_as_a_string_and_a_smaller_one_as_a_number():
    kinds = {"loyalty_points": {value_kind(2**60), value_kind(7)}}
    assert plan_promotions(kinds, customer_columns()) == [Promotion("loyalty_points", "INTEGER")]
    rows = [{"id": "x", "_unknown_fields": {"loyalty_points": 2**60}},
            {"id": "y", "_unknown_fields": {"loyalty_points": -(2**53)}},
            {"id": "z", "_unknown_fields": {"loyalty_points": 7}}]
    for row in rows:
        promote(row, [Promotion("loyalty_points", "INTEGER")])
    assert [r["loyalty_points"] for r in rows] == [str(2**60), str(-(2**53)), 7]
    # In _unknown_fields (a JSON column) an integer stays a number; only the INTEGER column needs the string.
    kept = {"id": "w", "_unknown_fields": {"loyalty_points": 2**60}}
    assert promote(kept, [Promotion("loyalty_tier", "STRING")])["_unknown_fields"] == {"loyalty_points": 2**60}
