"""Reading many windows concurrently through one injected ``fetch(window, page)``, without Airflow or HTTP.

:class:`ConcurrentReader` decides which page of which window to request next (earlier windows first),
keeps at most ``max_concurrency`` requests in flight, hands each page to the window's
:class:`~airflow_revcent.api.paging.WindowReader`, queues the verification passes at the end, fails a read
that stalls, and stops every request when it ends or its consumer fails. ``fetch`` is whatever sends one
request: the hook's paced and retried request path in production, a plain function in the unit tests.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_revcent.api.paging import DEFAULT_MAX_PASSES, CustomersPage, WindowReader, WindowStats
from airflow_revcent.api.windows import Window
from airflow_revcent.exceptions import RevCentCancelled, RevCentRequestError, RevCentStalledError

if TYPE_CHECKING:
    from airflow_revcent.rows.records import InvalidPolicy

#: Sends one request for ``page`` of ``window`` and returns the parsed page.
Fetch = Callable[[Window, int], CustomersPage]

#: Longest wait for the next page before checking for a stall (or a cancellation) again.
MAX_POLL_SECONDS = 5.0


@dataclass
class WindowBatch:
    """Customers that one page added to one window; ``finished`` is set on the window's last batch."""

    index: int
    window: Window
    customers: list[dict[str, Any]]
    finished: WindowStats | None = None
    #: The API's total_count for the window, as of this page.
    total_count: int | None = None
    #: When the page was received (unix seconds): the read time of these customers.
    received_at: float = 0.0
    #: (customer id, field path) of the values of these customers whose lone surrogates were replaced.
    repairs: list[tuple[str, str]] = field(default_factory=list)


class ReadPlan:
    """Which page of which window to request next (earlier windows first), and when to verify.

    :param readers: one reader per window, in window order.
    :param clock: monotonic clock in seconds (for each window's ``stats.seconds``).
    """

    def __init__(self, readers: Sequence[WindowReader], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.readers = readers
        self._clock_fn = clock
        self._queue: list[tuple[int, int, int]] = []  # (window index, order, page)
        self._clock = 0
        self._started: dict[int, float] = {}
        self._done_at: dict[int, int] = {}  # window index -> when it last finished a read
        self._as_of: dict[int, int] = {}  # window index -> when it was last known complete
        for index, reader in enumerate(readers):
            self.push(index, reader.start())

    def __bool__(self) -> bool:
        return bool(self._queue)

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def push(self, index: int, pages: Sequence[int]) -> None:
        for page in pages:
            heapq.heappush(self._queue, (index, self._tick(), page))

    def pop(self) -> tuple[int, int]:
        index, _, page = heapq.heappop(self._queue)
        self._started.setdefault(index, self._clock_fn())
        return index, page

    def record(self, index: int, *, was_done: bool, was_verified: bool) -> bool:
        """Note a reader's progress; True when the window has just finished a read."""
        reader = self.readers[index]
        if reader.verified and not was_verified:
            self._as_of[index] = self._tick()
        if reader.done and not was_done:
            self._done_at[index] = self._as_of[index] = self._tick()
            reader.stats.seconds = self._clock_fn() - self._started[index]
            return True
        return False

    def verify_finished_windows(self) -> bool:
        """Every window is read: queue a check of those known complete only as of before the last
        one finished (see paging.py). False when there is nothing left to do."""
        last = max(self._done_at.values(), default=0)
        stale = [i for i in range(len(self.readers)) if self._as_of.get(i, last) < last]
        for index in stale:
            self.push(index, self.readers[index].verify())
        return bool(stale)


class ConcurrentReader:
    """Reads windows through ``fetch``, at most ``max_concurrency`` requests at a time.

    :param fetch: sends one request (``fetch(window, page)``); raises to fail it.
    :param max_concurrency: requests in flight at once.
    :param stall_seconds: a read fails when no page arrives for this long.
    :param max_passes: full re-reads allowed for a window whose results shift while it is paged.
    :param first_page: the number of the first page; becomes 0 once the API shows it counts from 0
        (read it back to start the next read there).
    :param cancelled: set when the read ends (or by whoever stops it): ``fetch`` should stop retrying
        and pausing then; no new request is submitted once it is set.
    :param clock: monotonic clock in seconds (stall detection and window timings).
    :param page_size: the ``limit`` each request asks for (ends a window without totals on a short page).
    :param key_field: the field that identifies an item.
    :param created_field: the item's creation time (unix seconds).
    :param item: what messages call one item.
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        max_concurrency: int,
        stall_seconds: float,
        max_passes: int = DEFAULT_MAX_PASSES,
        first_page: int = 1,
        cancelled: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        page_size: int = 25,
        key_field: str = "id",
        created_field: str = "created_date_unix",
        item: str = "customer",
    ) -> None:
        self.fetch = fetch
        self.page_size = page_size
        self.key_field = key_field
        self.created_field = created_field
        self.item = item
        self.max_concurrency = max_concurrency
        self.stall_seconds = stall_seconds
        self.max_passes = max_passes
        self.first_page = first_page
        self.cancelled = cancelled if cancelled is not None else threading.Event()
        self._clock = clock

    def read(self, windows: Sequence[Window], *, on_invalid_record: InvalidPolicy = "fail") -> Iterator[WindowBatch]:
        """Read windows concurrently; yield the customers each page adds, as pages arrive.

        Page 1 of a window is read first; once it tells ``total_pages``, the window's other pages
        are requested at once, all windows sharing ``max_concurrency`` (earlier windows first).
        Within a window a customer is yielded once, and only if the window contains its
        creation second. Memory stays bounded by the pages in flight.

        :param windows: the windows to read.
        :param on_invalid_record: ``"keep"``: skip items without a usable key or creation time (counted)
            instead of failing (``"fail"``, the default).
        """
        readers = [
            WindowReader(w, first_page=self.first_page, max_passes=self.max_passes,
                         on_invalid_record=on_invalid_record,
                         page_size=self.page_size, key_field=self.key_field, created_field=self.created_field,
                         item=self.item)
            for w in windows
        ]
        plan = ReadPlan(readers, clock=self._clock)
        limit = self.max_concurrency
        self.cancelled.clear()
        pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="revcent")
        inflight: dict[Future[CustomersPage], tuple[int, int]] = {}
        stall = self.stall_seconds
        last_page = self._clock()
        stalled = False
        try:
            while plan or inflight or plan.verify_finished_windows():
                while plan and len(inflight) < limit:
                    if self.cancelled.is_set():
                        raise RevCentCancelled("The read was stopped: no further page is requested.")
                    index, page = plan.pop()
                    inflight[pool.submit(self.fetch, readers[index].window, page)] = (index, page)
                finished, _ = wait(inflight, timeout=self._poll(stall, last_page), return_when=FIRST_COMPLETED)
                if not finished:
                    if self._clock() - last_page >= stall:
                        stalled = True
                        raise RevCentStalledError(_stall_message(readers, inflight, stall))
                    continue
                last_page = self._clock()
                for future in finished:
                    index, page = inflight.pop(future)
                    batch = self._take_page(plan, index, page, future)
                    if batch.customers or batch.finished:
                        yield batch
        finally:
            # Stop retries and pauses at once; requests on the wire end within their read timeout (after a
            # stall they are not waited for: the error is raised now, the threads end on their own).
            self.cancelled.set()
            for future in inflight:
                future.cancel()
            pool.shutdown(wait=not stalled, cancel_futures=True)

    def _poll(self, stall: float, last_page: float) -> float:
        """How long to wait for the next page before checking for a stall again."""
        return max(0.05, min(stall - (self._clock() - last_page), MAX_POLL_SECONDS))

    def _take_page(self, plan: ReadPlan, index: int, page: int, future: Future[CustomersPage]) -> WindowBatch:
        reader = plan.readers[index]
        was_done, was_verified = reader.done, reader.verified
        customers: list[dict[str, Any]] = []
        try:
            result = future.result()
        except RevCentRequestError:
            if page != 0 or reader.first_page != 1:
                raise
            next_pages = reader.on_probe_failed()  # page 0 refused: pages start at 1
        else:
            outcome = reader.on_page(page, result)
            next_pages, customers = outcome.next_pages, outcome.customers
            if reader.first_page == 0:
                self.first_page = 0
        plan.push(index, next_pages)
        batch = WindowBatch(index, reader.window, customers, total_count=reader.stats.total_count)
        if customers:
            batch.received_at = result.received_at
            if result.repairs:
                emitted = {str(c.get(reader.key_field)) for c in customers}
                batch.repairs = [r for r in result.repairs if r[0] in emitted]
        if plan.record(index, was_done=was_done, was_verified=was_verified):
            batch.finished = reader.stats
        return batch


def _stall_message(readers: Sequence[WindowReader], inflight: Mapping[Future[CustomersPage], tuple[int, int]],
                   stall: float) -> str:
    waiting = sorted(inflight.values())
    shown = ", ".join(f"window {readers[i].window} page {p}" for i, p in waiting[:3])
    more = f" and {len(waiting) - 3} more" if len(waiting) > 3 else ""
    return (f"The read stalled: no page arrived for {stall:g} s while waiting on {shown}{more}. RevCent (or "
            "the network) is holding requests open; retry later, or raise stall_timeout (connection extra) "
            "if pages legitimately take this long.")
