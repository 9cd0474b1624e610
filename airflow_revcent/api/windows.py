"""Half-open UTC intervals and the request windows that cover them: pure functions of plain values.

A run covers ``[start, end)``. A customer belongs to it when ``start <= created_date_unix < end``.
RevCent's docs do not say whether ``date_start``/``date_end`` are inclusive, so every window asks
for one guard second on each side (``[start - 1, end]``) and the reader keeps only what the window
contains: no reading of the API's bounds can then lose a boundary customer, and the client-side
filter makes a customer created exactly at midnight land in exactly one daily run.

Two types, two jobs. An :class:`Interval` is what a run covers, of any length: the run's interval
(:func:`resolve_interval`) and the range it reads (:func:`with_lookback`); the summary, the
``_interval_*`` columns and the load key report it. A :class:`Window` is what one request
covers: the pipeline makes them with :func:`split_windows` only, so none is longer than
:data:`MAX_WINDOW`; it knows the bounds to send (guard seconds included) and which customers it
keeps. The hook and the paging state take Windows, not Intervals, so the type checker stops a run's
interval from reaching the API unsplit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.rows.timefmt import unix_text

#: The API refuses ranges longer than 90 days.
API_MAX_RANGE = timedelta(days=90)
#: The guard second requested on each side of a window (see the module docstring).
GUARD_SECONDS = 1
#: The longest span of creation times one window may cover: its request, guards included,
#: must stay within the API's 90 days even if the API counts them strictly.
MAX_WINDOW = API_MAX_RANGE - timedelta(seconds=2 * GUARD_SECONDS)
#: Default window: whole days, comfortably inside the limit.
DEFAULT_WINDOW = timedelta(days=89)
MIN_WINDOW = timedelta(minutes=1)

_ZERO_WIDTH_HINT = (
    "Airflow 3's schedule='@daily' (a CronTriggerTimetable) gives every run a zero-width data interval "
    "(data_interval_start == data_interval_end); schedule the DAG with "
    "CronDataIntervalTimetable('0 0 * * *', timezone='UTC') or pass date_start/date_end explicitly."
)


@dataclass(frozen=True, order=True)
class Window:
    """One request range: customers with ``start <= created_date_unix < end`` (unix seconds), at most
    :data:`MAX_WINDOW` long (made by :func:`split_windows`).

    :param start: first second the window contains.
    :param end: first second after the window.
    """

    start: int
    end: int

    @property
    def date_start(self) -> int:
        """The ``date_start`` to request: one guard second early, in case the API's start is exclusive."""
        return self.start - GUARD_SECONDS

    @property
    def date_end(self) -> int:
        """The ``date_end`` to request: ``end`` itself, covered whether the API's end is inclusive or not."""
        return self.end

    def contains(self, created_date_unix: int) -> bool:
        """Whether a customer created at this second belongs to the window."""
        return self.start <= created_date_unix < self.end

    def __str__(self) -> str:
        return f"[{unix_text(self.start)}, {unix_text(self.end)})"


@dataclass(frozen=True)
class Interval:
    """A half-open UTC interval ``[start, end)`` of whole unix seconds, of any length: what a run covers
    or reads, as reported; :func:`split_windows` turns it into the :class:`Window` s requested.

    :param start: first second covered.
    :param end: first second not covered.
    """

    start: int
    end: int

    @property
    def start_iso(self) -> str:
        return unix_text(self.start)

    @property
    def end_iso(self) -> str:
        return unix_text(self.end)

    def __str__(self) -> str:
        return f"[{self.start_iso}, {self.end_iso})"


def parse_instant(value: Any, *, name: str) -> datetime:
    """Turn a date, an aware datetime or an ISO-8601 string into an aware UTC datetime.

    A bare date (``2025-01-01``) means midnight UTC. A date-time must carry its offset
    (``2025-01-01T00:00:00Z``): a naive one is refused rather than guessed.

    :param value: what the user passed or a template rendered.
    :param name: the argument's name, for the error message.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise RevCentConfigError(
                f"{name}={value.isoformat()!r} is a naive datetime; give it a time zone "
                f"(for example {value.isoformat()}+00:00) so the interval is not ambiguous."
            )
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise RevCentConfigError(f"{name} is an empty string; give an ISO-8601 date or date-time.")
        try:
            if len(text) == 10:
                return parse_instant(date.fromisoformat(text), name=name)
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise RevCentConfigError(
                f"{name}={value!r} is not an ISO-8601 date or date-time; use for example "
                "'2025-01-01' (midnight UTC) or '2025-01-01T06:00:00Z'."
            ) from None
        if parsed.tzinfo is None:
            raise RevCentConfigError(
                f"{name}={value!r} has no UTC offset; append 'Z' or '+00:00' "
                f"(for example {text}Z), or give a bare date for midnight UTC."
            )
        return parsed.astimezone(UTC)
    raise RevCentConfigError(
        f"{name}={value!r} ({type(value).__name__}) is not a date; give an ISO-8601 string, a date "
        "or an aware datetime."
    )


def parse_duration(value: Any, *, name: str) -> timedelta:
    """A non-negative duration from a ``timedelta`` or an ISO-8601 duration string (``P45D``, ``PT6H``).

    Months and years are refused: they have no fixed length.

    :param value: what the user passed or a template rendered.
    :param name: the argument's name, for the error message.
    """
    if isinstance(value, timedelta):
        duration = value
    elif isinstance(value, str) and value.strip():
        text = value.strip().upper()
        match = _DURATION.fullmatch(text)
        if not match or text in ("P", "PT") or text.endswith("T"):
            raise RevCentConfigError(
                f"{name}={value!r} is not an ISO-8601 duration in weeks, days, hours, minutes or seconds; "
                "write for example 'P45D' or 'PT12H' (months and years have no fixed length)."
            )
        parts = {k: float(v) for k, v in match.groupdict().items() if v}
        duration = timedelta(weeks=parts.get("w", 0), days=parts.get("d", 0), hours=parts.get("h", 0),
                             minutes=parts.get("m", 0), seconds=parts.get("s", 0))
    else:
        raise RevCentConfigError(f"{name}={value!r} must be a timedelta or an ISO-8601 duration such as 'P45D'.")
    if duration < timedelta(0):
        raise RevCentConfigError(f"{name}={value!r} is negative; give a duration of zero or more.")
    return duration


_DURATION = re.compile(
    r"P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)


def with_lookback(interval: Interval, lookback: timedelta) -> Interval:
    """The interval to read: the run's interval plus the ``lookback`` before it (one contiguous range,
    so no customer is read twice in a run and windows still split it at 90 days).

    :param interval: the run's interval.
    :param lookback: how far before it to re-read.
    """
    return Interval(interval.start - int(lookback.total_seconds()), interval.end)


def resolve_interval(start: datetime, end: datetime, *, now: datetime) -> Interval:
    """Validate ``[start, end)`` and clip an end in the future to ``now``.

    Sub-second bounds are rounded up: for whole-second creation times, ``start <= t < end`` holds
    exactly when ``ceil(start) <= t < ceil(end)``.

    :param start: interval start (aware).
    :param end: interval end, exclusive (aware).
    :param now: the current time; nothing created after it can be read yet.
    """
    if end == start:
        raise RevCentConfigError(
            f"The interval [{start.isoformat()}, {end.isoformat()}) is empty: date_end equals date_start. "
            + _ZERO_WIDTH_HINT
        )
    if end < start:
        raise RevCentConfigError(
            f"date_end {end.isoformat()} is before date_start {start.isoformat()}; "
            "date_end must be after date_start (it is exclusive)."
        )
    start_unix = math.ceil(start.timestamp())
    end_unix = min(math.ceil(end.timestamp()), math.floor(now.timestamp()))
    if end_unix <= start_unix:
        raise RevCentConfigError(
            f"date_start {start.isoformat()} is not in the past (now is {now.isoformat()}); "
            "no customer can have been created in the interval yet. Check the run's dates."
        )
    return Interval(start_unix, end_unix)


def validate_window_size(size: timedelta) -> timedelta:
    """Check a window size and return the span each window will actually cover.

    :param size: the requested span of one window, at most 90 days.
    """
    if not isinstance(size, timedelta):
        raise RevCentConfigError(f"window_size={size!r} must be a datetime.timedelta, e.g. timedelta(days=30).")
    if size > API_MAX_RANGE:
        raise RevCentConfigError(
            f"window_size={size} is over the API's limit of 90 days per request; use at most "
            "timedelta(days=90)."
        )
    if size < MIN_WINDOW:
        raise RevCentConfigError(f"window_size={size} is under {MIN_WINDOW}; use a larger window.")
    # A window of exactly 90 days would need 90 days and 2 guard seconds per request.
    return min(size, MAX_WINDOW)


def split_windows(interval: Interval, size: timedelta) -> list[Window]:
    """Split an interval into consecutive windows of at most ``size`` each.

    :param interval: the half-open interval to cover.
    :param size: the longest span of one window (validated with :func:`validate_window_size`).
    """
    step = int(validate_window_size(size).total_seconds())
    return [
        Window(lo, min(lo + step, interval.end)) for lo in range(interval.start, interval.end, step)
    ]
