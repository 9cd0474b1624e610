"""The concurrent reader with a fake fetch: order, the concurrency budget, verification, stalls, cancellation."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import pytest

from airflow_revcent.api.paging import CustomersPage
from airflow_revcent.api.reader import ConcurrentReader
from airflow_revcent.api.windows import Window
from airflow_revcent.exceptions import RevCentCancelled, RevCentRequestError, RevCentStalledError

DAY = 86400
WINDOWS = [Window(0, DAY), Window(DAY, 2 * DAY), Window(2 * DAY, 3 * DAY)]
PAGE_SIZE = 2


class FakeApi:
    """Customers by window, served in pages of two; records every request."""

    def __init__(self, per_window: int = 5, *, delay: float = 0.0) -> None:
        self.customers = {
            w: [{"id": f"c{w.start}-{i}", "created_date_unix": w.start + i} for i in range(per_window)]
            for w in WINDOWS
        }
        self.delay = delay
        self.calls: list[tuple[int, int]] = []
        self.lock = threading.Lock()
        self.inflight = self.peak = 0
        self.on_call: Callable[[Window, int], object] = lambda _w, _p: None

    def __call__(self, window: Window, page: int) -> CustomersPage:
        with self.lock:
            self.calls.append((WINDOWS.index(window), page))
            self.inflight += 1
            self.peak = max(self.peak, self.inflight)
        try:
            self.on_call(window, page)
            if self.delay:
                time.sleep(self.delay)
            found = self.customers[window]
            chunk = found[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
            return CustomersPage(page, len(found), math.ceil(len(found) / PAGE_SIZE), list(chunk))
        finally:
            with self.lock:
                self.inflight -= 1


def reader(api: FakeApi, **kw) -> ConcurrentReader:
    return ConcurrentReader(api, **{"max_concurrency": 4, "stall_seconds": 60.0, **kw})


def test_every_customer_is_yielded_once_and_each_window_finishes_once():
    api = FakeApi(per_window=5)
    batches = list(reader(api).read(WINDOWS))
    got = [c["id"] for b in batches for c in b.customers]
    assert sorted(got) == sorted(c["id"] for w in WINDOWS for c in api.customers[w])
    assert len(got) == len(set(got))
    finished = [b.finished for b in batches if b.finished]
    assert sorted(s.window.start for s in finished) == [w.start for w in WINDOWS]
    assert [(s.records, s.total_count, s.passes) for s in finished] == [(5, 5, 1)] * 3


def test_one_at_a_time_earlier_windows_come_first_and_finished_windows_are_verified_at_the_end():
    api = FakeApi(per_window=3)
    list(reader(api, max_concurrency=1).read(WINDOWS[:2]))
    # Window 0's pages, window 1's pages, then window 0 checked again (it finished before window 1).
    assert api.calls == [(0, 1), (0, 2), (1, 1), (1, 2), (0, 1)]


def test_the_concurrency_budget_is_reached_and_never_exceeded():
    api = FakeApi(per_window=20, delay=0.02)
    list(reader(api, max_concurrency=3).read(WINDOWS))
    assert api.peak == 3


def test_a_window_that_grew_after_it_was_read_is_read_again_and_the_new_customer_yielded():
    api = FakeApi(per_window=3)
    late = {"id": "late", "created_date_unix": 10}

    def grow(window: Window, page: int) -> None:
        if WINDOWS.index(window) == 1 and late not in api.customers[WINDOWS[0]]:
            api.customers[WINDOWS[0]].append(late)  # created in window 0 while window 1 is read

    api.on_call = grow
    batches = list(reader(api, max_concurrency=1).read(WINDOWS[:2]))
    got = [c["id"] for b in batches for c in b.customers]
    assert got.count("late") == 1 and len(got) == len(set(got)) == 7
    # Window 0 read, window 1 read, window 0 checked (total_count moved: read again, two pages now),
    # then window 1 checked, since window 0 finished after it.
    assert api.calls == [(0, 1), (0, 2), (1, 1), (1, 2), (0, 1), (0, 1), (0, 2), (1, 1)]
    (stats,) = [b.finished for b in batches if b.finished and b.index == 0][-1:]
    assert (stats.passes, stats.total_count) == (2, 4)


def test_a_read_with_no_page_for_stall_seconds_fails_naming_what_it_waits_on():
    release = threading.Event()
    api = FakeApi()
    api.on_call = lambda _w, _p: release.wait(10)
    now = [0.0]

    def clock() -> float:
        now[0] += 1000.0  # each look at the clock is a quarter of an hour later
        return now[0]

    started = time.monotonic()
    try:
        with pytest.raises(RevCentStalledError, match=r"no page arrived for 100 s while waiting on window .* page 1"):
            list(reader(api, stall_seconds=100.0, clock=clock).read(WINDOWS[:1]))
    finally:
        release.set()
    assert time.monotonic() - started < 5  # the fake clock decides, not the wall clock


def test_cancelling_stops_requesting_pages():
    api = FakeApi(per_window=20)
    cancelled = threading.Event()
    read = reader(api, max_concurrency=1, cancelled=cancelled).read(WINDOWS)
    next(read)
    cancelled.set()  # on_kill, from another thread
    sent = len(api.calls)
    with pytest.raises(RevCentCancelled):
        list(read)
    assert len(api.calls) == sent


def test_a_failing_consumer_cancels_the_read_and_no_request_starts_after():
    api = FakeApi(per_window=20, delay=0.01)
    cancelled = threading.Event()
    with pytest.raises(ZeroDivisionError):  # noqa: PT012 - the consumer fails while reading
        for _batch in reader(api, max_concurrency=2, cancelled=cancelled).read(WINDOWS):
            1 / 0  # noqa: B018
    assert cancelled.is_set()
    sent = len(api.calls)
    time.sleep(0.05)
    assert len(api.calls) == sent < 10


def test_a_failed_request_fails_the_read():
    api = FakeApi()

    def refuse(window: Window, page: int) -> None:
        if page == 2:
            raise RevCentRequestError("refused page 2", status=400)

    api.on_call = refuse
    with pytest.raises(RevCentRequestError, match="refused page 2"):
        list(reader(api).read(WINDOWS[:1]))


def test_a_reader_is_reusable_and_clears_its_cancellation_when_a_read_starts():
    api = FakeApi(per_window=1)
    cancelled = threading.Event()
    cancelled.set()
    one = reader(api, cancelled=cancelled)
    assert len(list(one.read(WINDOWS[:1]))) == 1
    assert len(list(one.read(WINDOWS[1:2]))) == 1
    assert one.first_page == 1


def test_windows_finish_in_order_and_at_most_max_concurrency_are_open_at_once():
    # Eight windows of 9 items (5 pages of 2): earlier windows' pages go first, so a window finishes before
    # later ones open and a failure late in a run leaves most windows done (issue 19: resume, bounded disk).
    windows = [Window(i * DAY, (i + 1) * DAY) for i in range(8)]

    def fetch(window: Window, page: int) -> CustomersPage:
        time.sleep(0.002 * (page % 3))  # pages come back out of order
        found = [{"id": f"c{window.start}-{i}", "created_date_unix": window.start + i} for i in range(9)]
        return CustomersPage(page, 9, 5, found[(page - 1) * PAGE_SIZE: page * PAGE_SIZE])

    opened: set[int] = set()
    finished: list[int] = []
    most_open = 0
    for batch in ConcurrentReader(fetch, max_concurrency=3, stall_seconds=60.0, page_size=PAGE_SIZE).read(windows):
        opened.add(batch.index)
        most_open = max(most_open, len(opened - set(finished)))
        if batch.finished:
            finished.append(batch.index)
    assert sorted(finished) == list(range(8))
    assert most_open <= 3  # a window opens only once every earlier window's pages are sent
