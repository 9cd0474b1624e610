"""Client-side request pacing: a rate limit shared by every thread of a task, and adaptive back-off.

RevCent publishes no rate limit, so the provider never trusts itself to know one:

* ``max_requests_per_second`` (when set) spaces request *starts* evenly, so a team can stay
  inside its account's allowance whatever the concurrency;
* a 429 is a congestion signal for everyone: all threads pause until its ``Retry-After`` and the
  pace drops multiplicatively below the rate the API was actually accepting;
* healthy responses raise the pace again additively (gradual recovery); with no configured limit
  the cap is lifted once the pace has doubled its last throttled rate without a new 429.

Only 429s for requests *sent after* the last decrease lower the pace again: requests already in
flight when the pace dropped were sent at the old pace and say nothing new (as TCP does).

The clock and sleep are injectable so the arithmetic is unit-tested with plain values.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

#: Multiplicative decrease applied to the accepted rate on a 429.
DECREASE = 0.8
#: Additive increase, in requests/s gained per second of healthy responses.
RECOVERY_PER_SECOND = 0.5
#: The pace never drops below this (one request every 4 s).
MIN_RATE = 0.25
#: Window over which the accepted (successful) rate is measured.
MEASURE_SECONDS = 2.0
#: Longest pause a Retry-After may impose on everyone.
MAX_PAUSE_SECONDS = 300.0


class Pacer:
    """Paces request starts for all threads of one task.

    :param max_requests_per_second: the ceiling; ``None`` or ``0`` means no configured limit.
    :param clock: monotonic clock in seconds.
    :param sleep: how to wait.
    """

    def __init__(
        self,
        max_requests_per_second: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ceiling = max_requests_per_second or None
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._rate: float | None = self.ceiling
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._last_decrease = float("-inf")
        self._throttled_rate: float | None = None
        self._last_success = clock()
        self._successes: deque[float] = deque()
        self.throttles = 0

    @property
    def rate(self) -> float | None:
        """The current pace in requests/s (``None``: unpaced)."""
        return self._rate

    def acquire(self) -> float:
        """Wait for this thread's turn to send; return the send time to pass back later."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot, self._paused_until)
            if self._rate is not None:
                self._next_slot = slot + 1.0 / self._rate
        if slot > now:
            self._sleep(slot - now)
        return slot

    def on_success(self, sent_at: float) -> None:
        """A healthy response: count it and let the pace recover a little."""
        with self._lock:
            now = self._clock()
            self._successes.append(now)
            while self._successes and self._successes[0] < now - MEASURE_SECONDS:
                self._successes.popleft()
            elapsed = max(0.0, now - max(self._last_success, self._last_decrease))
            self._last_success = now
            if self._rate is None or self._throttled_rate is None:
                return
            self._rate += RECOVERY_PER_SECOND * elapsed
            if self.ceiling is not None:
                self._rate = min(self._rate, self.ceiling)
            elif self._rate >= 2 * self._throttled_rate:
                # Healthy at twice the last throttled pace: the limit that bit has gone.
                self._rate = None
                self._throttled_rate = None

    def on_throttle(self, sent_at: float, retry_after: float | None) -> None:
        """A 429: pause everyone until ``retry_after`` and lower the pace.

        :param sent_at: when the throttled request was sent (from :meth:`acquire`).
        :param retry_after: the server's ``Retry-After`` in seconds, if it gave one.
        """
        with self._lock:
            now = self._clock()
            self.throttles += 1
            if retry_after:
                self._paused_until = max(self._paused_until, now + min(retry_after, MAX_PAUSE_SECONDS))
            if sent_at < self._last_decrease:
                return
            accepted = len([t for t in self._successes if t >= now - MEASURE_SECONDS]) / MEASURE_SECONDS
            current = self._rate if self._rate is not None else float("inf")
            new_rate = max(MIN_RATE, DECREASE * min(current, max(accepted, MIN_RATE)))
            self._rate = new_rate
            self._throttled_rate = new_rate
            self._last_decrease = now
            # Spread what follows at the new pace instead of releasing a burst when the pause ends.
            self._next_slot = max(self._next_slot, self._paused_until)
