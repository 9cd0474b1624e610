"""The retry policy: what is retried, how long it waits, and the budget that ends it."""

from __future__ import annotations

import random
import threading
from itertools import pairwise
from types import SimpleNamespace

import pytest
import tenacity

from airflow_revcent.api.retry import MAX_BACKOFF_SECONDS, RetryPolicy, RetryWait
from airflow_revcent.exceptions import (
    RevCentAuthError,
    RevCentRequestError,
    RevCentRetryBudgetExceeded,
    RevCentTransientError,
)


def state(attempt: int, exc: BaseException | None = None) -> tenacity.RetryCallState:
    outcome = SimpleNamespace(exception=lambda: exc)
    return SimpleNamespace(attempt_number=attempt, outcome=outcome)  # type: ignore[return-value]


def test_retry_after_replaces_the_backoff_up_to_the_cap():
    wait = RetryWait(1.0)
    assert wait(state(1, RevCentTransientError("x", status=429, retry_after=7.0))) == 7.0
    assert wait(state(1, RevCentTransientError("x", status=429, retry_after=0.0))) == 0.0
    assert wait(state(1, RevCentTransientError("x", status=429, retry_after=3600.0))) == MAX_BACKOFF_SECONDS


def test_the_backoff_is_full_jitter_doubling_per_attempt_up_to_the_cap(monkeypatch):
    wait = RetryWait(2.0)
    lows = []

    def uniform(low: float, high: float) -> float:
        lows.append(low)
        return high

    monkeypatch.setattr(random, "uniform", uniform)
    highs = [wait(state(n, RevCentTransientError("x"))) for n in range(1, 10)]
    assert set(lows) == {0}  # full jitter: anywhere from zero
    assert highs[0] <= 2.0
    for before, after in pairwise(highs):
        assert after == min(2 * before, MAX_BACKOFF_SECONDS)
    assert highs[-1] == MAX_BACKOFF_SECONDS


class Attempts:
    """An attempt that fails with each error in turn, then answers ``"ok"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_transient_errors_are_retried_and_each_wait_is_reported():
    waits: list[float] = []
    retries: list[tuple[str, int, int]] = []
    attempt = Attempts(RevCentTransientError("503"), RevCentTransientError("cut", retry_after=0.25))
    result = RetryPolicy(5, 60.0, 0.0).call(attempt, what="page 1", sleep=waits.append,
                                            on_retry=lambda e, n, of, _w: retries.append((str(e), n, of)))
    assert result == "ok" and attempt.calls == 3
    assert waits == [0.0, 0.25]
    assert retries == [("503", 1, 5), ("cut", 2, 5)]


@pytest.mark.parametrize("error", [RevCentAuthError("key", status=401), RevCentRequestError("bad", status=400),
                                   ValueError("bug")])
def test_anything_not_transient_fails_at_once(error):
    attempt = Attempts(error)
    with pytest.raises(type(error)) as info:
        RetryPolicy(5, 60.0, 0.0).call(attempt, what="page 1", sleep=lambda _s: None)
    assert info.value is error and attempt.calls == 1


def test_the_retryable_errors_are_classes_of_the_policy():
    policy = RetryPolicy(3, 60.0, 0.0, retryable=(RevCentRequestError,))
    assert policy.is_retryable(RevCentRequestError("x")) and not policy.is_retryable(RevCentTransientError("x"))
    attempt = Attempts(RevCentRequestError("once"))
    assert policy.call(attempt, what="page 1", sleep=lambda _s: None) == "ok" and attempt.calls == 2


def test_a_spent_budget_names_the_attempts_and_keeps_the_last_error():
    last = RevCentTransientError("HTTP 503", status=503, error_code="busy", api_message="later")
    attempt = Attempts(RevCentTransientError("1"), RevCentTransientError("2"), last, RevCentTransientError("4"))
    with pytest.raises(RevCentRetryBudgetExceeded, match=r"Gave up on the page 7 after 3 attempts.*HTTP 503") as info:
        RetryPolicy(3, 60.0, 0.0).call(attempt, what="page 7", sleep=lambda _s: None)
    assert attempt.calls == 3
    assert (info.value.status, info.value.error_code, info.value.api_message) == (503, "busy", "later")
    assert info.value.__cause__ is last


def test_no_seconds_left_means_no_second_attempt():
    attempt = Attempts(RevCentTransientError("1"))
    with pytest.raises(RevCentRetryBudgetExceeded, match="after 1 attempts"):
        RetryPolicy(8, 0.0, 0.0).call(attempt, what="page 1", sleep=lambda _s: None)
    assert attempt.calls == 1


def test_a_cancelled_read_starts_no_further_attempt():
    cancelled = threading.Event()

    def attempt() -> str:
        cancelled.set()  # as on_kill would, while this attempt is on the wire
        raise RevCentTransientError("503")

    calls = []

    def counted() -> str:
        calls.append(1)
        return attempt()

    with pytest.raises(RevCentRetryBudgetExceeded, match="after 1 attempts"):
        RetryPolicy(8, 60.0, 0.0).call(counted, what="page 1", cancelled=cancelled, sleep=lambda _s: None)
    assert calls == [1]


def test_the_first_wait_reaches_up_to_the_initial_backoff_not_half_of_it():
    random.seed(3)
    wait = RetryWait(1.0)
    waits = [wait(state(1, RevCentTransientError("x"))) for _ in range(400)]
    assert max(waits) <= 1.0 and max(waits) > 0.9
    assert max(wait(state(2, RevCentTransientError("x"))) for _ in range(400)) > 1.8
