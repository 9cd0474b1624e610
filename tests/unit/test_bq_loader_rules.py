"""The NDJSON loader check (tests/bq_rules/loader.py): accepted and rejected samples per type."""

from __future__ import annotations

import pytest
from google.cloud.bigquery import SchemaField

from tests.bq_rules.loader import NumberText, check_ndjson, check_row, parse_line


def one(kind: str, text: str, mode: str = "NULLABLE") -> list[str]:
    return check_row(parse_line('{"v":' + text + "}"), [SchemaField("v", kind, mode=mode)])


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("STRING", '"Zo\\u00eb \\ud83d\\ude80"'),  # a valid pair is fine
        ("STRING", '""'),
        ("INTEGER", "9007199254740991"),  # 2**53 - 1: the largest a double holds with every integer below it
        ("INTEGER", "-9007199254740991"),
        ("INTEGER", '"9223372036854775807"'),  # beyond, only as a string
        ("INTEGER", '"-9223372036854775808"'),
        ("INTEGER", '"42"'),
        ("INT64", "0"),
        ("FLOAT", "33.333333333333336"),
        ("FLOAT", "1e-7"),
        ("NUMERIC", "12345678901234567890.12"),
        ("NUMERIC", '"0.123456789"'),
        ("NUMERIC", "99999999999999999999999999999.999999999"),
        ("NUMERIC", "-0"),
        ("NUMERIC", "1e-7"),
        ("BIGNUMERIC", "0.12345678901234567890123456789012345678"),
        ("BIGNUMERIC", "99999999999999999999999999999999999999"),
        ("BIGNUMERIC", "578960446186580977117854925043439539266"),
        ("BOOLEAN", "false"),
        ("TIMESTAMP", '"0001-01-01T00:00:00.000000Z"'),
        ("TIMESTAMP", '"9999-12-31T23:59:59.999999Z"'),
        ("TIMESTAMP", '"2025-03-04 05:06:07"'),
        ("TIMESTAMP", '"0001-01-01T00:30:00+00:30"'),
        ("TIMESTAMP", '"2025-03-04T05:06:07.5+02:00"'),
        ("JSON", '{"a": [1, 2.5, "x", null, {"b": true}]}'),
        ("STRING", "null"),
    ],
)
def test_accepted(kind, text):
    assert one(kind, text) == []


@pytest.mark.parametrize(
    ("kind", "text", "why"),
    [
        ("STRING", '"bad \\ud83d here"', "lone surrogate"),
        ("STRING", "12", "needs a JSON string"),
        ("INTEGER", '"9223372036854775808"', "outside INT64"),
        ("INTEGER", '"-9223372036854775809"', "outside INT64"),
        ("INTEGER", "9007199254740992", "write it as a string"),  # a JSON number the loader may corrupt
        ("INTEGER", "-9007199254740992", "write it as a string"),
        ("INTEGER", "9223372036854775807", "write it as a string"),
        ("INTEGER", "1.0", "needs an integer"),
        ("INTEGER", "true", "needs an integer"),
        ("NUMERIC", "0.1234567891", "10 fractional digits"),
        ("NUMERIC", "33.333333333333336", "15 fractional digits"),
        ("NUMERIC", "100000000000000000000000000000", "30 integer digits"),
        ("NUMERIC", "1e29", "30 integer digits"),
        ("NUMERIC", '"abc"', "needs a decimal"),
        ("BIGNUMERIC", "578960446186580977117854925043439539267", "39 integer digits"),
        ("BIGNUMERIC", "0.123456789012345678901234567890123456789", "39 fractional digits"),
        ("BOOLEAN", '"true"', "true or false"),
        ("TIMESTAMP", '"1-01-01T00:00:00Z"', "4-digit year"),
        ("TIMESTAMP", '"0001-01-01T00:00:00+01:00"', "outside 0001-01-01"),
        ("TIMESTAMP", '"9999-12-31T23:59:59-00:01"', "outside 0001-01-01"),
        ("TIMESTAMP", '"2016-12-31T23:59:60Z"', "not a real date"),
        ("TIMESTAMP", '"2025-02-30T00:00:00Z"', "not a real date"),
        ("TIMESTAMP", '"   "', "4-digit year"),
        ("TIMESTAMP", "1735689600", "needs a string"),
        ("JSON", '{"k": "\\udc00"}', "lone surrogate"),
    ],
)
def test_rejected(kind, text, why):
    problems = one(kind, text)
    assert len(problems) == 1 and why in problems[0], problems


def test_required_repeated_records_and_unknown_fields():
    schema = [
        SchemaField("id", "STRING", mode="REQUIRED"),
        SchemaField("tags", "STRING", mode="REPEATED"),
        SchemaField("card", "RECORD", mode="REPEATED", fields=[SchemaField("n", "INTEGER")]),
        SchemaField("lv", "RECORD", fields=[SchemaField("avg", "NUMERIC")]),
    ]
    good = parse_line('{"id":"a","tags":["x"],"card":[{"n":1},{}],"lv":{"avg":1.5}}')
    assert check_row(good, schema) == []
    bad = parse_line('{"tags":null,"card":[{"n":1.5},null],"lv":{"avg":0.1234567891,"extra":1},"zzz":1}')
    assert sorted(check_row(bad, schema)) == sorted([
        "zzz: no such field in the schema",
        "id: REQUIRED but absent",
        "tags: REPEATED field is null (write [] instead)",
        "card[0].n: INTEGER needs an integer (number or digits), got number '1.5'",
        "card[1]: null inside an array",
        "lv.extra: no such field in the schema",
        "lv.avg: NUMERIC 0.1234567891 has 10 fractional digits (at most 9)",
    ])


def test_numbers_keep_their_text_and_files_are_checked_line_by_line():
    row = parse_line('{"v": 12345678901234567890.12}')
    assert isinstance(row["v"], NumberText) and row["v"] == "12345678901234567890.12"
    schema = [SchemaField("v", "NUMERIC")]
    data = b'{"v":1}\n{"v":1e30}\n\xff\n{"v":\n'
    problems = check_ndjson(data, schema)
    assert [p.split(":")[0] for p in problems] == ["line 2", "line 3", "line 4"]
    assert "not valid UTF-8" in problems[1] and "not JSON" in problems[2]
