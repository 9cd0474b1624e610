"""Deterministic fault injection for the sandbox.

A client pages concurrently, so the order in which requests arrive is not
reproducible. The fault for a request is therefore decided from a hash of the
plan seed, the request's *key* (the query without noise: date range, page,
limit, filters) and how many times that same key has been seen so far. The same
client logic then meets the same faults on every run, whatever the thread
interleaving.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = ["FAULT_KINDS", "MIXED_KINDS", "FaultPlan"]

#: Every fault kind a plan can inject.
FAULT_KINDS: Final[tuple[str, ...]] = (
    "429",  # HTTP 429 with Retry-After: 1
    "429_no_retry_after",  # HTTP 429 without Retry-After
    "500",  # JSON error envelope
    "502",  # HTML body, as a proxy sends it
    "503",  # JSON error envelope
    "504",  # HTML body, as a proxy sends it
    "code0",  # HTTP 200 carrying an error envelope (code 0)
    "truncated",  # HTTP 200, a valid page cut in the middle
    "reset",  # the connection is reset, no response at all
    "hang",  # sleep hang_seconds, then answer (a client read timeout fires first)
    "slow",  # sleep slow_ms, then answer
    "shift",  # answer, then insert customers into the request's range
)

#: The kinds :meth:`FaultPlan.mixed` spreads its rate over: everything but
#: ``shift`` (it changes the data, not the transport) and ``hang`` (it costs a
#: full client timeout per hit).
MIXED_KINDS: Final[tuple[str, ...]] = tuple(k for k in FAULT_KINDS if k not in ("shift", "hang"))


class FaultPlan:
    """Decides, per request attempt, which fault (if any) the server injects.

    ``rates`` maps fault kinds to a probability per attempt; they must sum to at
    most 1. After ``max_faults_per_request`` faulted attempts of the same request
    key, every later attempt succeeds, so a client with bounded retries always
    converges. ``shift`` does not count towards that bound; it is limited instead
    by ``max_shifts`` in total (``None`` means unlimited: a window that never
    settles).
    """

    def __init__(
        self,
        seed: int = 0,
        rates: Mapping[str, float] | None = None,
        *,
        max_faults_per_request: int = 3,
        hang_seconds: float = 30.0,
        slow_ms: float = 1500.0,
        shift_size: int = 5,
        max_shifts: int | None = 3,
    ) -> None:
        rates = dict(rates or {})
        unknown = sorted(set(rates) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"rates: unknown fault kind(s) {unknown}; known: {list(FAULT_KINDS)}")
        for kind, rate in rates.items():
            if not 0.0 <= rate <= 1.0 or math.isnan(rate):
                raise ValueError(f"rates[{kind!r}] must be within [0, 1], got {rate}")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError(f"rates must sum to at most 1, got {sum(rates.values())}")
        if max_faults_per_request < 0:
            raise ValueError(f"max_faults_per_request must be >= 0, got {max_faults_per_request}")
        if hang_seconds < 0 or slow_ms < 0:
            raise ValueError("hang_seconds and slow_ms must be >= 0")
        if shift_size < 1:
            raise ValueError(f"shift_size must be >= 1, got {shift_size}")
        if max_shifts is not None and max_shifts < 0:
            raise ValueError(f"max_shifts must be >= 0 or None, got {max_shifts}")
        self.seed = seed
        # Canonical order, so the cumulative thresholds do not depend on dict order.
        self.rates: dict[str, float] = {k: rates[k] for k in FAULT_KINDS if rates.get(k, 0.0) > 0.0}
        self.max_faults_per_request = max_faults_per_request
        self.hang_seconds = hang_seconds
        self.slow_ms = slow_ms
        self.shift_size = shift_size
        self.max_shifts = max_shifts
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._faulted: dict[str, int] = {}
        self._shifts = 0

    @classmethod
    def mixed(cls, seed: int, rate: float, kinds: Iterable[str] = MIXED_KINDS, **options: Any) -> FaultPlan:
        """A plan spreading ``rate`` evenly over ``kinds`` (default: :data:`MIXED_KINDS`).

        ``options`` are the other constructor arguments (``max_faults_per_request``, ...).
        """
        kinds = tuple(kinds)
        if not kinds:
            raise ValueError("kinds must not be empty")
        share = rate / len(kinds)
        return cls(seed, {k: share for k in kinds}, **options)

    @property
    def shifts_done(self) -> int:
        """How many shifts have been handed out so far."""
        with self._lock:
            return self._shifts

    def reset(self) -> None:
        """Forget every attempt count, as if no request had been seen."""
        with self._lock:
            self._seen.clear()
            self._faulted.clear()
            self._shifts = 0

    def decide(self, request_key: str) -> str | None:
        """The fault for the next attempt of ``request_key``, or None to answer normally.

        Counts the attempt, so call it exactly once per request.
        """
        with self._lock:
            attempt = self._seen.get(request_key, 0)
            self._seen[request_key] = attempt + 1
            if not self.rates:
                return None
            kind = self._draw(request_key, attempt)
            if kind is None:
                return None
            if kind == "shift":
                if self.max_shifts is not None and self._shifts >= self.max_shifts:
                    return None
                self._shifts += 1
                return kind
            faulted = self._faulted.get(request_key, 0)
            if faulted >= self.max_faults_per_request:
                return None
            self._faulted[request_key] = faulted + 1
            return kind

    def _draw(self, request_key: str, attempt: int) -> str | None:
        digest = hashlib.blake2b(
            f"{self.seed}\x1f{request_key}\x1f{attempt}".encode(), digest_size=8
        ).digest()
        u = int.from_bytes(digest, "big") / 2.0**64
        cumulative = 0.0
        for kind, rate in self.rates.items():
            cumulative += rate
            if u < cumulative:
                return kind
        return None

    def __repr__(self) -> str:
        return (
            f"FaultPlan(seed={self.seed}, rates={self.rates}, "
            f"max_faults_per_request={self.max_faults_per_request}, hang_seconds={self.hang_seconds}, "
            f"slow_ms={self.slow_ms}, shift_size={self.shift_size}, "
            f"max_shifts={self.max_shifts})"
        )
