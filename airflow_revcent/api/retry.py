"""When a request is tried again, and how long to wait first, without Airflow.

:class:`RetryPolicy` is the budget of one request (attempts, seconds, the first backoff) and the rule of
what is worth retrying, given as exception classes: :class:`~airflow_revcent.exceptions.RevCentTransientError`
and nothing else (a rejected key or a refused parameter fails at once). The wait between attempts is
exponential backoff with full jitter, replaced by the server's ``Retry-After`` when it sent one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from airflow_revcent.exceptions import RevCentRetryBudgetExceeded, RevCentTransientError

#: Longest single wait between attempts, and the cap on a Retry-After we agree to honour.
MAX_BACKOFF_SECONDS = 60.0

T = TypeVar("T")

#: Called before each wait: (the error, the attempt that failed, attempts allowed, seconds to wait).
OnRetry = Callable[[BaseException | None, int, int, float], None]


class RetryWait:
    """Honour Retry-After when the server gave one; otherwise exponential backoff with full jitter.

    :param initial: upper bound of the first wait; each further one up to twice as long, at most
        :data:`MAX_BACKOFF_SECONDS`.
    """

    def __init__(self, initial: float) -> None:
        # tenacity waits up to multiplier * 2 ** (attempt - 1): the first wait is bounded by `initial`.
        self._backoff = tenacity.wait_random_exponential(multiplier=initial, max=MAX_BACKOFF_SECONDS)

    def __call__(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(min(retry_after, MAX_BACKOFF_SECONDS))
        return float(self._backoff(state))


@dataclass(frozen=True)
class RetryPolicy:
    """The retry budget of one request and what is worth retrying.

    :param max_attempts: attempts, the first included.
    :param max_seconds: no new attempt starts after this many seconds.
    :param initial_backoff: upper bound of the first wait (see :class:`RetryWait`).
    :param retryable: the errors worth another attempt; anything else is raised at once.
    """

    max_attempts: int
    max_seconds: float
    initial_backoff: float
    retryable: tuple[type[BaseException], ...] = (RevCentTransientError,)

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` is worth another attempt."""
        return isinstance(exc, self.retryable)

    def call(
        self,
        attempt: Callable[[], T],
        *,
        what: str,
        cancelled: threading.Event | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: OnRetry | None = None,
    ) -> T:
        """Run ``attempt`` until it succeeds, fails for good, or the budget is spent.

        :param attempt: one try; raises to fail.
        :param what: names the request in the budget's message.
        :param cancelled: once set, no further attempt starts (and waits should end: see ``sleep``).
        :param sleep: how to wait between attempts (a cancellable wait in the hook).
        :param on_retry: told before each wait.
        :raises RevCentRetryBudgetExceeded: the last retryable error, once the budget is spent.
        """
        stop = tenacity.stop_after_attempt(self.max_attempts) | tenacity.stop_before_delay(self.max_seconds)
        if cancelled is not None:
            stop = stop | tenacity.stop_when_event_set(cancelled)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if on_retry is not None:
                exc = state.outcome.exception() if state.outcome else None
                wait_s = state.next_action.sleep if state.next_action else 0.0
                on_retry(exc, state.attempt_number, self.max_attempts, wait_s)

        retrying = tenacity.Retrying(
            stop=stop,
            sleep=sleep,
            wait=RetryWait(self.initial_backoff),
            retry=tenacity.retry_if_exception(self.is_retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        started = time.monotonic()
        try:
            return retrying(attempt)
        except RevCentTransientError as exc:
            if not self.is_retryable(exc):
                raise
            attempts = retrying.statistics.get("attempt_number", 1)
            raise RevCentRetryBudgetExceeded(
                f"Gave up on the {what} after {attempts} attempts in {time.monotonic() - started:.1f} s "
                f"(budget: {self.max_attempts} attempts, {self.max_seconds:g} s). Last "
                f"error: {exc} Raise retry_max_attempts / retry_max_seconds (connection extras or operator "
                "arguments) if the API needs longer to recover.",
                status=exc.status, error_code=exc.error_code, api_message=exc.api_message,
            ) from exc
