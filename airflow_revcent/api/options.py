"""How requests are sent: concurrency, pace, timeouts and retry budgets, validated once.

:class:`RequestOptions` is what an operator or a DAG author gives; every field left ``None`` falls back
to the connection's extra of the same name, then to the default. The values are checked where the
object is built, naming the field, so a bad one fails when the DAG file is parsed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from airflow_revcent.exceptions import RevCentConfigError

DEFAULT_MAX_CONCURRENCY = 4
DEFAULT_MAX_REQUESTS_PER_SECOND = 10.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
#: One attempt's budget to its last byte: a server that trickles a response (a byte every few seconds)
#: never trips read_timeout, which bounds only the wait between reads.
DEFAULT_REQUEST_TIMEOUT = 120.0
DEFAULT_RETRY_MAX_ATTEMPTS = 8
DEFAULT_RETRY_MAX_SECONDS = 600.0
#: Upper bound of the first wait between attempts (full jitter), doubling per attempt.
DEFAULT_RETRY_INITIAL_BACKOFF = 1.0


def number(value: Any, name: str, *, minimum: float, integer: bool = False) -> float:
    """``value`` as a finite number of at least ``minimum``, or an error naming ``name``.

    Text is accepted (connection extras are often strings); booleans are not numbers.

    :param value: what was given.
    :param name: the setting's name, for the message.
    :param minimum: the smallest value allowed.
    :param integer: whether the value must be whole.
    """
    if isinstance(value, bool):
        raise RevCentConfigError(f"{name}={value!r} is not a number.")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise RevCentConfigError(f"{name}={value!r} is not a number.") from None
    if not math.isfinite(result) or result < minimum or (integer and result != int(result)):
        kind = "an integer" if integer else "a number"
        raise RevCentConfigError(f"{name}={value!r} must be {kind} >= {minimum:g}.")
    return result


def flag(value: Any, name: str) -> bool:
    """``value`` as a bool (``true``/``false``, ``1``/``0``, ``yes``/``no`` as text), or an error naming ``name``.

    :param value: what was given.
    :param name: the setting's name, for the message.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise RevCentConfigError(f"{name}={value!r} must be true or false.")


#: field -> (minimum, integer) for every option.
_RULES: dict[str, tuple[float, bool]] = {
    "max_concurrency": (1, True),
    "max_requests_per_second": (0, False),
    "connect_timeout": (0.001, False),
    "read_timeout": (0.001, False),
    "request_timeout": (0.001, False),
    "stall_timeout": (0.001, False),
    "retry_max_attempts": (1, True),
    "retry_max_seconds": (0, False),
    "retry_initial_backoff": (0, False),
}


@dataclass(frozen=True)
class RequestOptions:
    """How the RevCent hook sends requests; ``None`` means the connection's extra, else the default.

    :param max_concurrency: requests in flight at once (default 4).
    :param max_requests_per_second: pace ceiling for everything one task sends (default 10; ``0`` = none).
    :param connect_timeout: seconds to establish a connection (default 10).
    :param read_timeout: seconds to wait for response data (default 60).
    :param request_timeout: seconds one attempt may take to its last byte, however slowly the server sends
        (default 120; checked between reads, so at most request_timeout + read_timeout).
    :param stall_timeout: seconds a run may go without any page before it fails, naming the window and page
        it waits on (default: the longest one request can legitimately take, retry_max_seconds +
        request_timeout + read_timeout + connect_timeout + 60).
    :param retry_max_attempts: attempts per request (default 8).
    :param retry_max_seconds: seconds per request, retries included (default 600).
    :param retry_initial_backoff: the first wait between attempts is up to this many seconds, doubling per
        attempt up to 60 s (default 1; a 429's Retry-After replaces it).
    """

    max_concurrency: int | None = None
    max_requests_per_second: float | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None
    request_timeout: float | None = None
    stall_timeout: float | None = None
    retry_max_attempts: int | None = None
    retry_max_seconds: float | None = None
    retry_initial_backoff: float | None = None

    def __post_init__(self) -> None:
        for name, (minimum, integer) in _RULES.items():
            value = getattr(self, name)
            if value is None:
                continue
            if (integer and type(value) is not int) or (not integer and type(value) not in (int, float)):
                kind = "an integer" if integer else "a number"
                raise RevCentConfigError(f"RequestOptions.{name}={value!r} must be {kind} >= {minimum:g}.")
            number(value, f"RequestOptions.{name}", minimum=minimum, integer=integer)

    def given(self) -> dict[str, Any]:
        """The options that were set, by name (they win over the connection's extras)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def merged(self, other: RequestOptions) -> RequestOptions:
        """These options, with ``other``'s set fields winning."""
        return RequestOptions(**{**self.given(), **other.given()})


REQUEST_OPTION_NAMES: tuple[str, ...] = tuple(_RULES)
