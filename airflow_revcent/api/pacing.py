"""Client-side request pacing: a rate limit shared by every thread of a task, and adaptive back-off.

RevCent publishes no rate limit, so the provider never trusts itself to know one:

* ``max_requests_per_second`` (when set) spaces request *starts* evenly, so a team can stay
  inside its account's allowance whatever the concurrency;
* a 429 is a congestion signal for everyone: all threads pause until its ``Retry-After`` and the
  pace drops multiplicatively below the rate the API was actually accepting;
* healthy responses raise the pace again: quickly (5%/s) back up to the rate the API accepted
  when it throttled, the best estimate of its limit, then only slowly (0.5%/s) beyond it, so a
  limit once found is probed rarely; with no configured limit the cap is lifted once the pace has
  doubled that estimate without a new 429.

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
#: Recovery per second of healthy responses: at least this many requests/s ...
RECOVERY_PER_SECOND = 0.5
#: ... or this fraction of the current pace, whichever is more (quick back from a deep cut).
RECOVERY_FRACTION = 0.05
#: Above the estimated limit the pace grows by this fraction per second only.
PROBE_FRACTION = 0.005
#: The pace never drops below this (one request every 4 s).
MIN_RATE = 0.25
#: Window over which the accepted (successful) and sent rates are measured.
MEASURE_SECONDS = 2.0
#: Successes needed before the accepted rate is trusted as an estimate of the server's limit.
MIN_SAMPLES = 3
#: The accepted rate is averaged over at least this long: a token-bucket server lets a burst of its
#: whole bucket through at once, and a shorter average would mistake that burst for its rate.
MIN_ACCEPTED_SPAN = 1.0
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
        self._limit_estimate: float | None = None
        self._last_success = clock()
        self._successes: deque[float] = deque()
        self._sends: deque[float] = deque()
        self._first_send: float | None = None
        self.throttles = 0

    @property
    def rate(self) -> float | None:
        """The current pace in requests/s (``None``: unpaced)."""
        return self._rate

    def acquire(self) -> float:
        """Wait for this thread's turn to send; return the send time to pass back later.

        A 429 that arrives while a thread waits for its slot pauses that thread too: it takes a new
        slot after the pause instead of sending at the old one.
        """
        while True:
            with self._lock:
                now = self._clock()
                slot = max(now, self._next_slot, self._paused_until)
                if self._rate is not None:
                    self._next_slot = slot + 1.0 / self._rate
            if slot > now:
                self._sleep(slot - now)
            with self._lock:
                if self._paused_until <= slot:
                    if self._first_send is None:
                        self._first_send = slot
                    self._sends.append(slot)
                    _trim(self._sends, slot - MEASURE_SECONDS)
                    return slot

    def on_success(self, sent_at: float) -> None:
        """A healthy response: count it and let the pace recover a little."""
        with self._lock:
            now = self._clock()
            self._successes.append(now)
            _trim(self._successes, now - MEASURE_SECONDS)
            elapsed = max(0.0, now - max(self._last_success, self._last_decrease))
            self._last_success = now
            if self._rate is None or self._throttled_rate is None:
                return
            limit = self._limit_estimate if self._limit_estimate is not None else float("inf")
            if self._rate < limit:
                step = max(RECOVERY_PER_SECOND, RECOVERY_FRACTION * self._rate)
                self._rate = min(limit, self._rate + step * elapsed)
            else:
                self._rate += PROBE_FRACTION * self._rate * elapsed
            if self.ceiling is not None:
                self._rate = min(self._rate, self.ceiling)
            elif self._rate >= 2 * max(self._throttled_rate, self._limit_estimate or 0.0):
                # Healthy at twice the last throttled pace: the limit that bit has gone.
                self._rate = None
                self._throttled_rate = self._limit_estimate = None

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
            # What the server accepted lately estimates its limit; early on (few successes) what
            # we sent is the better guide. Early means the window is shorter than MEASURE_SECONDS.
            elapsed = now - (self._first_send or now)
            accepted_span = max(MIN_ACCEPTED_SPAN, min(MEASURE_SECONDS, elapsed))
            accepted = [t for t in self._successes if t >= now - accepted_span]
            if len(accepted) >= MIN_SAMPLES:
                basis = len(accepted) / accepted_span
                self._limit_estimate = basis
            else:
                sent_span = max(0.25, min(MEASURE_SECONDS, elapsed))
                basis = len([t for t in self._sends if t >= now - sent_span]) / sent_span
            current = self._rate if self._rate is not None else float("inf")
            new_rate = max(MIN_RATE, DECREASE * min(current, max(basis, MIN_RATE)))
            self._rate = new_rate
            self._throttled_rate = new_rate
            self._last_decrease = now
            # Spread what follows at the new pace instead of releasing a burst when the pause ends.
            self._next_slot = max(self._next_slot, self._paused_until)


def _trim(times: deque[float], oldest: float) -> None:
    while times and times[0] < oldest:
        times.popleft()
