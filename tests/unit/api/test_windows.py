from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from airflow_revcent.api.windows import (
    API_MAX_RANGE,
    DEFAULT_WINDOW,
    MAX_WINDOW,
    Interval,
    Window,
    parse_instant,
    resolve_interval,
    split_windows,
    validate_window_size,
)
from airflow_revcent.exceptions import RevCentConfigError

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


class TestParseInstant:
    def test_bare_date_is_midnight_utc(self):
        assert parse_instant("2025-01-01", name="date_start") == datetime(2025, 1, 1, tzinfo=UTC)

    def test_offset_is_converted_to_utc(self):
        assert parse_instant("2025-01-01T02:00:00+02:00", name="x") == datetime(2025, 1, 1, tzinfo=UTC)
        assert parse_instant("2025-01-01T00:00:00Z", name="x") == datetime(2025, 1, 1, tzinfo=UTC)

    def test_date_and_aware_datetime_objects(self):
        assert parse_instant(date(2025, 3, 1), name="x") == datetime(2025, 3, 1, tzinfo=UTC)
        berlin = timezone(timedelta(hours=1))
        assert parse_instant(datetime(2025, 3, 1, 1, tzinfo=berlin), name="x") == datetime(2025, 3, 1, tzinfo=UTC)

    @pytest.mark.parametrize("value", ["2025-01-01T00:00:00", datetime(2025, 1, 1)])
    def test_naive_values_are_refused_with_the_value(self, value):
        with pytest.raises(RevCentConfigError, match=r"date_start.*(offset|naive)"):
            parse_instant(value, name="date_start")

    @pytest.mark.parametrize("value", ["yesterday", "2025-13-01", "", 12345])
    def test_unparseable_values_are_refused(self, value):
        with pytest.raises(RevCentConfigError, match="date_end"):
            parse_instant(value, name="date_end")


class TestResolveInterval:
    def test_half_open_interval_in_unix_seconds(self):
        interval = resolve_interval(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC), now=NOW)
        assert interval == Interval(ts(2026, 11, 1), ts(2026, 11, 2))
        assert interval.start_iso == "2026-11-01T00:00:00Z"
        assert interval.end_iso == "2026-11-02T00:00:00Z"

    def test_zero_width_interval_explains_the_daily_timetable_trap(self):
        day = datetime(2026, 11, 1, tzinfo=UTC)
        with pytest.raises(RevCentConfigError, match=r"zero-width.*CronDataIntervalTimetable"):
            resolve_interval(day, day, now=NOW)

    def test_inverted_interval_is_refused(self):
        with pytest.raises(RevCentConfigError, match="before date_start"):
            resolve_interval(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC), now=NOW)

    def test_future_end_is_clipped_to_now(self):
        interval = resolve_interval(datetime(2026, 11, 29, tzinfo=UTC), datetime(2026, 12, 5, tzinfo=UTC), now=NOW)
        assert interval.end == int(NOW.timestamp())

    def test_interval_wholly_in_the_future_is_refused(self):
        with pytest.raises(RevCentConfigError, match="not in the past"):
            resolve_interval(datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC), now=NOW)

    def test_sub_second_bounds_round_up_so_membership_is_exact(self):
        start = datetime(2026, 11, 1, 0, 0, 0, 500000, tzinfo=UTC)
        end = datetime(2026, 11, 1, 0, 0, 10, 500000, tzinfo=UTC)
        interval = resolve_interval(start, end, now=NOW)
        # t=0 is before 0.5 (out); t=10 is before 10.5 (in)
        assert (interval.start, interval.end) == (ts(2026, 11, 1) + 1, ts(2026, 11, 1) + 11)


class TestWindows:
    def test_window_requests_a_guard_second_each_side_and_filters_half_open(self):
        window = Window(1000, 2000)
        assert (window.date_start, window.date_end) == (999, 2000)
        assert window.contains(1000) and window.contains(1999)
        assert not window.contains(999) and not window.contains(2000)

    def test_consecutive_daily_windows_share_no_second(self):
        midnight = ts(2026, 11, 2)
        day1, day2 = Window(ts(2026, 11, 1), midnight), Window(midnight, ts(2026, 11, 3))
        # A customer created exactly at midnight belongs to exactly one day.
        assert [day1.contains(midnight), day2.contains(midnight)] == [False, True]
        assert [day1.contains(midnight - 1), day2.contains(midnight - 1)] == [True, False]

    def test_a_year_splits_into_89_day_windows_covering_it_exactly(self):
        interval = Interval(ts(2025, 1, 1), ts(2026, 1, 1))
        windows = split_windows(interval, DEFAULT_WINDOW)
        assert len(windows) == 5
        assert windows[0].start == interval.start and windows[-1].end == interval.end
        assert all(a.end == b.start for a, b in itertools.pairwise(windows))
        assert all(w.end - w.start <= 89 * 86400 for w in windows)
        assert windows[1].start == ts(2025, 3, 31)  # whole days

    def test_requests_never_exceed_the_api_90_days_even_with_guards(self):
        windows = split_windows(Interval(0, 400 * 86400), timedelta(days=90))
        assert max(w.date_end - w.date_start for w in windows) <= API_MAX_RANGE.total_seconds()
        assert validate_window_size(timedelta(days=90)) == MAX_WINDOW

    def test_smaller_configured_windows(self):
        windows = split_windows(Interval(0, 10 * 86400), timedelta(days=3))
        assert [(w.start, w.end) for w in windows] == [
            (0, 3 * 86400), (3 * 86400, 6 * 86400), (6 * 86400, 9 * 86400), (9 * 86400, 10 * 86400),
        ]

    def test_short_interval_is_one_window(self):
        assert split_windows(Interval(5, 6), DEFAULT_WINDOW) == [Window(5, 6)]

    @pytest.mark.parametrize("size", [timedelta(days=91), timedelta(seconds=10), 30])
    def test_bad_window_sizes_are_refused(self, size):
        with pytest.raises(RevCentConfigError, match="window_size"):
            validate_window_size(size)
