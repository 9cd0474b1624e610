"""UTC instants as text, in the three forms the pipeline writes them (pure): one module, so they agree.

* :func:`unix_text`: whole seconds, ``2026-11-01T00:00:00Z``: interval and window bounds (logs, the
  XCom summary, errors) and the ``_created_at``/``_interval_start``/``_interval_end`` NDJSON values.
* :func:`timestamp_text`: microseconds, ``2026-11-02T01:02:03.000000Z``: other TIMESTAMP values in
  NDJSON rows (read times, the API's date-times).
* :func:`sql_timestamp_text`: ``2026-11-02 01:02:03.000000+00``, the text of a GoogleSQL
  ``TIMESTAMP '...'`` literal.

Not ``strftime``: its ``%Y`` writes year 1 as ``1``, which BigQuery reads as no TIMESTAMP. Every
form here has a 4-digit year, and the f-strings are the fast path the per-record code needs.
"""

from __future__ import annotations

from datetime import UTC, datetime


def unix_text(unix: int) -> str:
    """``2026-11-01T00:00:00Z``: a whole unix second as RFC 3339 UTC text.

    :param unix: seconds since the epoch.
    """
    at = datetime.fromtimestamp(unix, tz=UTC)
    return f"{at.year:04d}-{at.month:02d}-{at.day:02d}T{at.hour:02d}:{at.minute:02d}:{at.second:02d}Z"


def timestamp_text(at: datetime) -> str:
    """``2026-11-02T01:02:03.000000Z``: an aware instant as RFC 3339 UTC text with microseconds.

    :param at: the instant (any time zone).
    """
    utc = at.astimezone(UTC)
    return (f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}."
            f"{utc.microsecond:06d}Z")


def sql_timestamp_text(at: datetime) -> str:
    """``2026-11-02 01:02:03.000000+00``: an aware instant as the text of a ``TIMESTAMP '...'`` literal.

    :param at: the instant (any time zone).
    """
    v = at.astimezone(UTC)
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}+00"
