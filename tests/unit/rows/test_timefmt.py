"""The three text forms of a UTC instant: 4-digit years at both ends of BigQuery's range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from airflow_revcent.rows.timefmt import sql_timestamp_text, timestamp_text, unix_text

FIRST = datetime(1, 1, 1, tzinfo=UTC)
LAST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize(("unix", "text"), [
    (0, "1970-01-01T00:00:00Z"),
    (1_793_404_800, "2026-10-31T00:00:00Z"),
    (-1, "1969-12-31T23:59:59Z"),
    (int(FIRST.timestamp()), "0001-01-01T00:00:00Z"),
    (int(LAST.replace(microsecond=0).timestamp()), "9999-12-31T23:59:59Z"),
])
def test_unix_seconds(unix, text):
    assert unix_text(unix) == text
    assert text == datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


def test_timestamps_keep_microseconds_and_convert_to_utc():
    assert timestamp_text(datetime(2026, 11, 2, 1, 2, 3, tzinfo=UTC)) == "2026-11-02T01:02:03.000000Z"
    east = datetime(2026, 11, 2, 3, 2, 3, 500, tzinfo=timezone(timedelta(hours=2)))
    assert timestamp_text(east) == "2026-11-02T01:02:03.000500Z"
    assert timestamp_text(FIRST) == "0001-01-01T00:00:00.000000Z"
    assert timestamp_text(LAST) == "9999-12-31T23:59:59.999999Z"


def test_sql_literals():
    assert sql_timestamp_text(datetime(2026, 11, 2, 1, 2, 3, 4, tzinfo=UTC)) == "2026-11-02 01:02:03.000004+00"
    assert sql_timestamp_text(FIRST) == "0001-01-01 00:00:00.000000+00"
    assert sql_timestamp_text(LAST) == "9999-12-31 23:59:59.999999+00"
