"""The conversion rules of records.py for values a real API sends, at their boundaries."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from airflow_revcent.bigquery.fields import to_schema_fields
from airflow_revcent.exceptions import RevCentDataError
from airflow_revcent.rows import jsontext
from airflow_revcent.rows.columns import customer_columns
from airflow_revcent.rows.drift import column_type
from airflow_revcent.rows.ndjson import canonical_json
from airflow_revcent.rows.records import RecordConverter, value_kind
from tests.bq_rules.loader import check_row, parse_line

ID = "A" * 20


def convert(customer: dict, **kwargs) -> tuple[dict, RecordConverter]:
    converter = RecordConverter(customer_columns(), **kwargs)
    return converter.convert({"id": ID, "created_date_unix": 1, **customer}), converter


def last_sale(value: str) -> str | None:
    row, _ = convert({"lifetime_value": {"last_sale_date": value}})
    return row["lifetime_value"]["last_sale_date"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
        ("0001-01-01T00:00:00-01:00", "0001-01-01T01:00:00.000000Z"),
        ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
        ("9999-12-31T23:59:59+01:00", "9999-12-31T22:59:59.000000Z"),
        ("0099-05-06T07:08:09.5Z", "0099-05-06T07:08:09.500000Z"),
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999999Z"),  # leap second: last instant of that minute
        ("2016-12-31T23:59:60.5Z", "2016-12-31T23:59:59.999999Z"),
        ("2017-01-01T00:59:60+01:00", "2016-12-31T23:59:59.999999Z"),
        ("2025-03-04T07:06:07+02:00", "2025-03-04T05:06:07.000000Z"),
        (" 2025-03-04T05:06:07Z ", "2025-03-04T05:06:07.000000Z"),
        ("2025-03-04T05:06:07", "2025-03-04T05:06:07.000000Z"),  # no offset: UTC
        ("", None),
        ("   ", None),  # whitespace-only is NULL like the empty string
        ("\t\n", None),
    ],
)
def test_timestamps_land_in_bigquery_text_with_four_digit_years(text, expected):
    assert last_sale(text) == expected


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "0001-01-01T00:59:59+01:00",
                                  "9999-12-31T23:59:59-00:01", "9999-12-31T23:30:00-01:00"])
def test_a_timestamp_outside_bigquerys_range_is_a_data_error_naming_customer_and_field(text):
    with pytest.raises(RevCentDataError, match=rf"Customer '{ID}': field lifetime_value.last_sale_date .*"
                                               r"TIMESTAMP within 0001-01-01 and 9999-12-31 UTC"):
        last_sale(text)
    row, converter = convert({"lifetime_value": {"last_sale_date": text}}, on_invalid_record="keep")
    assert row["_unknown_fields"] == {"lifetime_value": {"last_sale_date": text}}
    assert converter.invalid_paths == {"lifetime_value.last_sale_date": 1}


@pytest.mark.parametrize("text", ["yesterday", "2025-13-01T00:00:00Z", "2016-12-31T23:59:61Z"])
def test_text_that_is_no_date_time_is_a_data_error(text):
    with pytest.raises(RevCentDataError, match="but the spec says TIMESTAMP"):
        last_sale(text)


def avg(value):
    row, converter = convert({"lifetime_value": {"sale": {"avg": value}}})
    return row["lifetime_value"]["sale"]["avg"], converter.rounded_numbers


@pytest.mark.parametrize(
    ("text", "expected", "rounded"),
    [
        ("19.99", "19.99", 0),
        ("20.0", "20.0", 0),  # as sent: no rounding needed
        ("0.123456789", "0.123456789", 0),  # exactly 9 places
        ("33.333333333333336", "33.333333333", 1),
        ("0.30000000000000004", "0.3", 1),
        ("0.0000000005", "0.000000001", 1),  # half away from zero
        ("-0.0000000005", "-0.000000001", 1),
        ("0.00000000049", "0", 1),
        ("2.0000000004999", "2", 1),
        ("1e-7", "0.0000001", 0),  # exponent forms are exact decimals
        ("1E+3", "1000", 0),
        ("1.5e-12", "0", 1),
        ("12345678901234567890.12", "12345678901234567890.12", 0),
        ("99999999999999999999999999999.999999999", "99999999999999999999999999999.999999999", 0),
    ],
)
def test_numeric_values_are_exact_or_rounded_to_nine_places_and_counted(text, expected, rounded):
    value = jsontext.loads(text)
    got, count = avg(value)
    assert jsontext.decimal_text(got) == expected
    assert count == rounded
    # Written exactly: as a number when a double holds the value, else as a string (BigQuery reads both).
    exact_as_double = Decimal(repr(float(Decimal(expected)))) == Decimal(expected)
    written = expected if exact_as_double else f'"{expected}"'
    assert canonical_json({"v": got}) == f'{{"v":{written}}}'.encode()


@pytest.mark.parametrize("text", ["1e29", "100000000000000000000000000000", "-1e29",
                                  "99999999999999999999999999999.9999999995"])
def test_numeric_values_beyond_29_integer_digits_are_data_errors(text):
    with pytest.raises(RevCentDataError, match=r"lifetime_value.sale.avg .*at most 29 integer digits"):
        avg(jsontext.loads(text))


def test_integers_outside_int64_are_data_errors_and_inside_land():
    row, _ = convert({"lifetime_value": {"sale": {"num": 2**63 - 1}}, "products_purchased": [
        {"purchase_dates": [-(2**63), 0]}]})
    assert row["lifetime_value"]["sale"]["num"] == str(2**63 - 1)  # beyond 2**53 - 1: a string (see below)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"lifetime_value": {"sale": {"num": 2**63}}}, "lifetime_value.sale.num"),
        ({"products_purchased": [{"purchase_dates": [1, -(2**63) - 1]}]}, r"products_purchased\[\].purchase_dates\[\]"),
    ]
    for customer, path in cases:
        with pytest.raises(RevCentDataError, match=rf"Customer '{ID}': field {path} .*INTEGER within INT64"):
            convert(customer)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2**53 - 1, b"9007199254740991"),
        (-(2**53 - 1), b"-9007199254740991"),
        (2**53, b'"9007199254740992"'),
        (-(2**53), b'"-9007199254740992"'),
        (2**63 - 1, b'"9223372036854775807"'),
        (-(2**63), b'"-9223372036854775808"'),
    ],
)
def test_integers_beyond_2_53_are_written_as_strings_the_loader_reads_exactly(value, text):
    # BigQuery's JSON loader asks for an INT64 beyond +-(2**53 - 1) as a string, to avoid corruption.
    row, _ = convert({"lifetime_value": {"sale": {"num": value}}, "products_purchased": [{"purchase_dates": [value]}]})
    line = canonical_json(row)
    assert b'"num":' + text in line and b'"purchase_dates":[' + text + b"]" in line
    problems = check_row(parse_line(line), to_schema_fields(customer_columns()))
    assert problems == []


def test_a_float_from_a_caller_is_read_by_its_repr():
    got, count = avg(0.1 + 0.2)
    assert got == Decimal("0.3") and count == 1


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (Decimal("1.5"), "NUMERIC"),
        (Decimal("0.123456789"), "NUMERIC"),
        (Decimal("0.1234567891"), "FLOAT"),
        (Decimal("1E-7"), "NUMERIC"),
        (Decimal("1E+30"), "FLOAT"),
        (1.5, "NUMERIC"),
        (2**63 - 1, "INTEGER"),
        (2**63, "NUMERIC"),
        (10**30, "FLOAT"),
        (True, "BOOLEAN"),
    ],
)
def test_value_kind_of_decimals_and_big_integers(value, kind):
    assert value_kind(value) == kind


def test_drift_promotes_decimal_fields():
    assert column_type({value_kind(Decimal("1.5")), value_kind(3)}) == "NUMERIC"
    assert column_type({value_kind(Decimal("33.333333333333336")), value_kind(3)}) == "FLOAT"


def test_decimals_a_double_cannot_hold_are_written_as_strings():
    assert canonical_json({"v": Decimal("12345678901234567890.12")}) == b'{"v":"12345678901234567890.12"}'
    assert canonical_json({"v": Decimal("19.99"), "w": Decimal("2.5E+3")}) == b'{"v":19.99,"w":2500}'


def test_numeric_integers_a_double_cannot_hold_are_written_exactly_as_strings():
    row, _ = convert({"lifetime_value": {"all": {"amount_total": 10**28 + 1, "amount_net": 2**53}}})
    assert canonical_json(row["lifetime_value"]["all"]) == b'{"amount_net":9007199254740992,"amount_total":' \
                                                          b'"10000000000000000000000000001"}'


def test_canonical_json_is_deterministic_for_every_representation():
    row = {"b": Decimal("1E-7"), "a": [2**70, Decimal("20.0"), 1.5, "Zo\u00eb"], "c": {"y": 1, "x": None}}
    text = canonical_json(row)
    assert text == '{"a":["1180591620717411303424",20.0,1.5,"Zo\u00eb"],"b":0.0000001,"c":{"x":null,"y":1}}'.encode()
    assert canonical_json(jsontext.loads(text)) == text  # a round trip gives the same text, the same hash
