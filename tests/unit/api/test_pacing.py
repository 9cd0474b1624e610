from __future__ import annotations

import pytest

from airflow_revcent.api.pacing import DECREASE, MIN_RATE, Pacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_unlimited_pacer_never_waits(clock):
    pacer = Pacer(None, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        pacer.acquire()
    assert clock.slept == [] and pacer.rate is None


def test_configured_rate_spaces_request_starts_evenly(clock):
    pacer = Pacer(4, clock=clock, sleep=clock.sleep)
    starts = [pacer.acquire() for _ in range(5)]
    assert starts == pytest.approx([100.0, 100.25, 100.5, 100.75, 101.0])


def test_zero_means_no_limit(clock):
    assert Pacer(0, clock=clock, sleep=clock.sleep).rate is None


def test_throttle_pauses_everyone_for_retry_after_and_lowers_the_pace(clock):
    pacer = Pacer(None, clock=clock, sleep=clock.sleep)
    for _ in range(20):  # 20 successes in the first second of the run: 20/s
        sent = pacer.acquire()
        clock.now += 0.05
        pacer.on_success(sent)
    sent = pacer.acquire()
    pacer.on_throttle(sent, retry_after=3)
    assert pacer.rate == pytest.approx(DECREASE * 20)
    start = pacer.acquire()
    assert start == pytest.approx(clock.now)  # the acquire slept until the pause ended
    assert sum(clock.slept) == pytest.approx(3.0)


def test_requests_sent_before_a_decrease_do_not_lower_the_pace_again(clock):
    pacer = Pacer(10, clock=clock, sleep=clock.sleep)
    in_flight = [pacer.acquire() for _ in range(4)]
    clock.now += 1
    pacer.on_throttle(in_flight[0], retry_after=None)
    first = pacer.rate
    for sent in in_flight[1:]:
        pacer.on_throttle(sent, retry_after=None)
    assert pacer.rate == first and pacer.throttles == 4


def test_pace_never_drops_below_the_floor(clock):
    pacer = Pacer(1, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        clock.now += 10
        pacer.on_throttle(clock.now, retry_after=None)
    assert pacer.rate == MIN_RATE


def test_pace_recovers_gradually_up_to_the_ceiling(clock):
    pacer = Pacer(10, clock=clock, sleep=clock.sleep)
    clock.now += 5
    pacer.on_throttle(clock.now, retry_after=None)
    low = pacer.rate
    assert low is not None and low < 10
    rates = []
    for _ in range(60):
        clock.now += 1
        pacer.on_success(clock.now)
        rates.append(pacer.rate)
    assert rates == sorted(rates)  # monotone recovery
    assert rates[0] < 10 and rates[-1] == 10  # gradual, then capped at the configured ceiling


def test_without_ceiling_the_limit_is_lifted_once_healthy_at_twice_the_throttled_pace(clock):
    pacer = Pacer(None, clock=clock, sleep=clock.sleep)
    clock.now += 5
    pacer.on_throttle(clock.now, retry_after=None)
    assert pacer.rate == MIN_RATE
    for _ in range(10):
        clock.now += 1
        pacer.on_success(clock.now)
    assert pacer.rate is None


def test_an_early_429_uses_the_send_rate_not_an_empty_success_count(clock):
    pacer = Pacer(None, clock=clock, sleep=clock.sleep)
    sends = [pacer.acquire() for _ in range(8)]  # 8 requests in flight, no answer yet
    clock.now += 0.1
    pacer.on_throttle(sends[0], retry_after=None)
    assert pacer.rate == pytest.approx(DECREASE * 8 / 0.25)  # not the floor


def test_recovery_is_proportional_when_the_pace_is_high(clock):
    pacer = Pacer(200, clock=clock, sleep=clock.sleep)
    for _ in range(200):  # 100/s accepted over two seconds
        sent = pacer.acquire()
        clock.now += 0.01
        pacer.on_success(sent)
    pacer.on_throttle(pacer.acquire(), retry_after=None)
    low = pacer.rate
    assert low == pytest.approx(DECREASE * 100, rel=0.02)
    clock.now += 1
    pacer.on_success(clock.now)
    assert pacer.rate == pytest.approx(low * 1.05)


def test_after_a_throttle_the_pace_returns_quickly_to_the_accepted_rate_then_probes_slowly(clock):
    pacer = Pacer(None, clock=clock, sleep=clock.sleep)
    for _ in range(40):  # 20/s accepted over two seconds
        sent = pacer.acquire()
        clock.now += 0.05
        pacer.on_success(sent)
    pacer.on_throttle(pacer.acquire(), retry_after=None)
    assert pacer.rate == pytest.approx(DECREASE * 20)
    for _ in range(5):
        clock.now += 1
        pacer.on_success(clock.now)
    assert pacer.rate == pytest.approx(20)  # back at the estimate within seconds, not above it
    for _ in range(10):
        clock.now += 1
        pacer.on_success(clock.now)
    assert 20 < pacer.rate < 21.1  # then only 0.5%/s beyond


def test_a_bucket_burst_is_not_mistaken_for_the_server_rate(clock):
    pacer = Pacer(None, clock=clock, sleep=clock.sleep)
    for _ in range(20):  # a token bucket of 20 lets 20 requests through in 0.2 s
        sent = pacer.acquire()
        clock.now += 0.01
        pacer.on_success(sent)
    pacer.on_throttle(pacer.acquire(), retry_after=1)
    assert pacer.rate == pytest.approx(DECREASE * 20)  # 20 per second at most, not 100 per second


def test_a_thread_waiting_for_its_slot_is_paused_by_a_429_that_arrives_meanwhile(clock):
    pacer = Pacer(1, clock=clock, sleep=clock.sleep)
    pacer.acquire()  # slot at 100.0; the next one is at 101.0

    def sleep_and_throttle(seconds: float) -> None:
        # While this thread sleeps towards 101.0, another gets a 429 with Retry-After 5.
        pacer._sleep = clock.sleep
        pacer.on_throttle(100.5, retry_after=5)
        clock.sleep(seconds)

    pacer._sleep = sleep_and_throttle
    assert pacer.acquire() >= 105.0
