"""Paging state of one window, as a small class fed with plain values (no I/O).

The hook asks :class:`WindowReader` which pages to request and hands it each parsed page; the
reader answers with the customers that are new and the pages to request next. Pages can arrive
in any order (the hook fetches them concurrently).

Why passes: the API pages by offset and does not document its sort order or whether pages are
stable. If customers are created inside a window while it is being read, ``total_count`` changes
and an offset reader sees some customers twice and misses others. So a *pass* reads every page;
when it ends, the window is *settled* only if every page of the pass reported the same
``total_count`` and the distinct ids seen for the window are at least that many. Otherwise
another pass re-reads the window (already-seen customers are not emitted again), up to
``max_passes``. With customers only being added, the union of passes then holds every customer
the API has for the window when extraction ends, each once.

Without totals (an envelope with only ``current_count``, ``current_page`` and ``results``, as some list
operations have), pages are read one after another and a pass ends on a short page (fewer items than
``page_size``); such a window settles after one pass, and verification asks page 1 again for new items.

Why verification: windows finish at different times. When a run reads several windows, a window
that finished before the last one is checked once more at the end (one request: page 1's
``total_count``); if it moved, the window is read again. So every window is as of the end of
extraction, not as of the moment it was read.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_revcent.api.windows import Window
from airflow_revcent.exceptions import RevCentAPIError, RevCentDataError, RevCentWindowUnsettledError

if TYPE_CHECKING:
    from airflow_revcent.rows.records import InvalidPolicy

DEFAULT_MAX_PASSES = 5


@dataclass(frozen=True)
class CustomersPage:
    """One successful page of a list operation (``GET /v2/customers``, ``GET /v2/sales``, ...).

    :param current_page: the page the API says it served.
    :param total_count: items matching the request, according to this response; ``None`` when the envelope
        has no totals.
    :param total_pages: pages for the request's ``limit``, according to this response (``None``: no totals).
    :param customers: the page's items, as the API sent them (lone surrogates already replaced).
    :param received_at: when the page's body was received (unix seconds): the read time of its customers.
    :param repairs: (customer id, field path) of each value whose lone surrogates were replaced by U+FFFD.
    """

    current_page: int
    total_count: int | None
    total_pages: int | None
    customers: list[dict[str, Any]]
    received_at: float = 0.0
    repairs: tuple[tuple[str, str], ...] = ()


@dataclass
class WindowStats:
    """What reading one window cost and produced."""

    window: Window
    requests: int = 0
    passes: int = 0
    records: int = 0
    skipped: int = 0
    total_count: int | None = None
    #: Distinct customers the API returned for the window's request (guard seconds included) when it
    #: settled: what ``total_count`` should equal.
    distinct: int = 0
    seconds: float = 0.0


@dataclass
class PageOutcome:
    """What to do after a page: customers to emit and pages to request next."""

    customers: list[dict[str, Any]] = field(default_factory=list)
    next_pages: list[int] = field(default_factory=list)


class WindowReader:
    """The paging state of one window.

    :param window: the window being read.
    :param first_page: the number of the first page (RevCent's common case is 1).
    :param max_passes: how many full passes may be made before the window is declared unsettled.
    :param on_invalid_record: ``"fail"`` (default): an item without a usable key or creation time fails the
        read; ``"keep"``: such items are skipped (counted in ``stats.skipped``), as the operator's
        ``on_invalid_record`` keeps what it can.
    :param page_size: the ``limit`` each request asks for: without totals, a shorter page is the last.
    :param key_field: the field that identifies an item.
    :param created_field: the item's creation time (unix seconds).
    :param item: what messages call one item.
    """

    def __init__(
        self,
        window: Window,
        *,
        first_page: int = 1,
        max_passes: int = DEFAULT_MAX_PASSES,
        on_invalid_record: InvalidPolicy = "fail",
        page_size: int = 25,
        key_field: str = "id",
        created_field: str = "created_date_unix",
        item: str = "customer",
    ) -> None:
        self.window = window
        self.page_size = page_size
        self.key_field = key_field
        self.created_field = created_field
        self.item = item
        self.first_page = first_page
        self.max_passes = max_passes
        self.on_invalid_record = on_invalid_record
        self.stats = WindowStats(window)
        # Every id the API returned for this window's request range, guard seconds included,
        # because total_count counts those too. Small per customer (a 20-character string) and
        # dropped when the window is done.
        self._seen: set[str | int] = set()
        self._pass_total: int | None = None
        self._pass_started = False
        self._pass_shifted = False
        # Unusable customers (on_invalid_record="keep") have no id to de-duplicate, but the total counts them.
        self._pass_skipped = 0
        self._pass_new = 0
        self._outstanding: set[int] = set()
        self._probed_zero = False
        #: Ids of a finished window as sorted 64-bit digests: 8 bytes each instead of a ~90-byte
        #: string in a set, kept only so that a re-read after verification emits nobody twice.
        self._finished_ids = array("Q")
        self._settled_total: int | None = None
        self._verifying = False
        self.done = False
        self.verified = False

    def start(self) -> list[int]:
        """Begin a pass: the first page to request."""
        self.stats.passes += 1
        self._pass_total = None
        self._pass_started = False
        self._pass_shifted = False
        self._pass_skipped = 0
        self._pass_new = 0
        self._outstanding = {self.first_page}
        return [self.first_page]

    def on_page(self, requested: int, page: CustomersPage) -> PageOutcome:
        """Take one page and say what is new and what to request next.

        :param requested: the page number that was requested.
        :param page: the parsed response.
        """
        self.stats.requests += 1
        self._outstanding.discard(requested)
        outcome = PageOutcome()
        if self._verifying:
            return self._on_verify(requested, page)
        probing_zero = requested == 0 and self.first_page == 1
        if page.current_page != requested and not probing_zero:
            raise RevCentAPIError(
                f"Window {self.window}: asked for page {requested} but the API answered current_page="
                f"{page.current_page}. The API is not paging as documented; report it to RevCent."
            )
        outcome.customers = self._take(page, requested)
        if probing_zero:
            if page.current_page == 0 and outcome.customers:
                # The API numbers pages from 0: page 0 held customers that pages 1..N did not.
                self.first_page = 0
        elif page.total_pages is None:
            # No totals: the next page is known only once this one is full.
            self._pass_started = True
            if len(page.customers) >= self.page_size:
                self._outstanding.add(requested + 1)
                outcome.next_pages = [requested + 1]
        elif not self._pass_started:
            self._pass_started = True
            self._pass_total = page.total_count
            self.stats.total_count = page.total_count
            later = list(range(requested + 1, requested + page.total_pages))
            self._outstanding.update(later)
            outcome.next_pages = later
        elif page.total_count != self._pass_total:
            self._pass_shifted = True
            self.stats.total_count = page.total_count
        if not self._outstanding:
            outcome.next_pages += self._end_of_pass()
        return outcome

    def _take(self, page: CustomersPage, requested: int) -> list[dict[str, Any]]:
        new: list[dict[str, Any]] = []
        for position, customer in enumerate(page.customers):
            customer_id = customer.get(self.key_field) if isinstance(customer, dict) else None
            created = customer.get(self.created_field) if isinstance(customer, dict) else None
            if not (isinstance(customer_id, str | int) and customer_id != "" and type(customer_id) is not bool) \
                    or type(created) is not int:
                if self.on_invalid_record == "keep":
                    self._pass_skipped += 1
                    continue
                raise RevCentDataError(
                    f"Window {self.window}, page {requested}, position {position}: the {self.item} has "
                    f"{self.key_field}={customer_id!r} and {self.created_field}={created!r}; the spec requires a "
                    f"string (or integer) {self.key_field} and an integer {self.created_field}. Set "
                    "on_invalid_record='keep' to skip such records."
                )
            if customer_id in self._seen:
                continue
            self._seen.add(customer_id)  # counted toward total_count even if emitted in an earlier read
            self._pass_new += 1
            if self._finished_ids and self._was_finished(customer_id):
                continue
            if self.window.contains(created):
                new.append(customer)
        self.stats.records += len(new)
        return new

    def _end_of_pass(self) -> list[int]:
        total = self._pass_total or 0
        # Settled: a stable pass saw at least total_count customers; or a stable re-read found nobody new,
        # so the API lists fewer customers than it counts, consistently (reconciliation reports it).
        stable_shortfall = not self._pass_shifted and self.stats.passes > 1 and self._pass_new == 0
        if (not self._pass_shifted and len(self._seen) + self._pass_skipped >= total) or stable_shortfall:
            self.done = True
            self._settled_total = self._pass_total
            self.stats.distinct = len(self._seen) + self._pass_skipped
            self.stats.skipped = self._pass_skipped
            merged = sorted({*self._finished_ids, *(_digest(i) for i in self._seen)})
            self._finished_ids = array("Q", merged)
            self._seen = set()
            return []
        if not self._pass_shifted and self.first_page == 1 and not self._probed_zero:
            # Stable total but fewer ids than it: maybe the API counts pages from 0.
            self._probed_zero = True
            self._outstanding = {0}
            return [0]
        if self.stats.passes >= self.max_passes:
            raise RevCentWindowUnsettledError(
                f"Window {self.window} did not settle after {self.stats.passes} passes: total_count moved "
                f"while paging or pages missed customers (last total_count={self.stats.total_count}, "
                f"distinct customers seen={len(self._seen)}). Customers are being created inside this "
                "window faster than it can be read; retry later or use a smaller window_size."
            )
        return self.start()

    def verify(self) -> list[int]:
        """After other windows finished later: ask page 1 again to check ``total_count`` has not moved."""
        self._verifying = True
        self.verified = False
        self._outstanding = {self.first_page}
        return [self.first_page]

    def _on_verify(self, requested: int, page: CustomersPage) -> PageOutcome:
        self._verifying = False
        outcome = PageOutcome(customers=self._take(page, requested))
        if page.total_count == self._settled_total and not outcome.customers:
            self.verified = True
            return outcome
        # Customers were created in this window after it was read: read it again.
        self.done = False
        self.stats.total_count = page.total_count
        if self.stats.passes >= self.max_passes:
            raise RevCentWindowUnsettledError(
                f"Window {self.window} kept changing after it was read: total_count went from "
                f"{self._settled_total} to {page.total_count} after {self.stats.passes} passes. Customers are "
                "being created inside this window while the run reads it; retry later."
            )
        outcome.next_pages = self.start()
        return outcome

    def _was_finished(self, customer_id: str | int) -> bool:
        digest = _digest(customer_id)
        at = bisect_left(self._finished_ids, digest)
        return at < len(self._finished_ids) and self._finished_ids[at] == digest

    def on_probe_failed(self) -> list[int]:
        """Page 0 was refused (the API numbers from 1): carry on as if the probe found nothing."""
        self._outstanding.discard(0)
        return self._end_of_pass() if not self._outstanding else []


def _digest(customer_id: str | int) -> int:
    # 64 bits: the chance that two of a million ids collide is below 1e-7. An integer key (key_field) as its text.
    return int.from_bytes(hashlib.blake2b(str(customer_id).encode(), digest_size=8).digest(), "big")
