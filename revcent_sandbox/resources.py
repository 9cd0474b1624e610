"""The sandbox's list resources beyond customers: sales, transactions, API calls, taxes and functions.

Their item schemas are the sandbox's own, plausible ones (field names from RevCent's guides), never the
product's types: they exist so the provider can be tested on more than one resource. What each resource
is (path, operationId, maximum range, filters, whether its envelope carries totals) is a
:class:`ResourceKind`; :mod:`revcent_sandbox.openapi` describes the same kinds in the served document.

A :class:`ResourceStore` holds one resource's items, generated deterministically from a seed like the
customers (a few hundred items: kept whole, sorted by creation time then id), and serves pages with the
same semantics as :class:`~revcent_sandbox.data.CustomerStore` (``end_inclusive``, ``order``, offset/limit)
and its truth (half-open, oldest first).
"""

from __future__ import annotations

import bisect
import json
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from revcent_sandbox.data import DAY, CustomerStore, _customer_id, _encode, _money

__all__ = [
    "KINDS_BY_NAME",
    "RESOURCE_KINDS",
    "ResourceFilter",
    "ResourceKind",
    "ResourceStore",
    "default_resources",
    "resources_for",
]

JSONDict = dict[str, Any]
CURRENCIES: Final = ("USD", "EUR", "GBP", "CAD")
GATEWAYS: Final = (("Stripe Main", 3), ("NMI Backup", 5), ("Authorize.net", 7))
API_CALL_SOURCES: Final = ("api", "portal", "mcp")
API_CALL_TYPES: Final = ("GetCustomers", "CreateSale", "GetSales", "RefundTransaction", "GetTransactions")
# Money values that are not exact in binary floating point, in every money-carrying store.
_AWKWARD_CENTS: Final = (10, 20, 30, 1999, 12345678)


@dataclass(frozen=True)
class ResourceKind:
    """What one list resource is, as the document and the server both use it.

    :param name: the path's last segment (``tax``).
    :param operation_id: ``GetTaxes``.
    :param schema_name: the item schema's name in ``components/schemas``.
    :param max_days: the longest ``date_start``..``date_end`` range; ``None`` for a list without dates.
    :param totals: whether the envelope carries ``total_count`` and ``total_pages``.
    :param filters: filter parameter -> the item field its values match (a string field).
    :param salt: keeps this resource's ids and draws apart from every other's.
    """

    name: str
    operation_id: str
    schema_name: str
    max_days: int | None
    totals: bool
    filters: Mapping[str, str]
    salt: int

    @property
    def path(self) -> str:
        return f"/v2/{self.name}"

    @property
    def date_ranged(self) -> bool:
        return self.max_days is not None


#: Every resource the sandbox serves besides customers, in the document's order.
RESOURCE_KINDS: Final[tuple[ResourceKind, ...]] = (
    ResourceKind("sales", "GetSales", "Sale", 90, True,
                 {"campaign_filter": "campaign_id", "currency_filter": "currency"}, 11),
    ResourceKind("transactions", "GetTransactions", "Transaction", 90, True,
                 {"campaign_filter": "campaign_id", "currency_filter": "currency", "gateway_filter": "gateway_id"},
                 12),
    ResourceKind("api_calls", "GetAPICalls", "APICall", 2, True,
                 {"api_account_filter": "api_account.id", "api_call_source_filter": "source"}, 13),
    ResourceKind("tax", "GetTaxes", "Tax", 90, False, {"currency_filter": "currency"}, 14),
    ResourceKind("functions", "GetFunctions", "Function", None, True, {}, 15),
)
KINDS_BY_NAME: Final = {kind.name: kind for kind in RESOURCE_KINDS}


@dataclass(frozen=True)
class ResourceFilter:
    """Filter values per filter parameter; an item matches when, for every parameter given, its field's
    value is one of the values (the customers' semantics: OR within a filter, AND across)."""

    values: tuple[tuple[str, frozenset[str]], ...] = ()

    @classmethod
    def of(cls, **values: Sequence[str]) -> ResourceFilter:
        """``ResourceFilter.of(currency_filter=["USD"])``; empty lists are dropped."""
        return cls(tuple(sorted((k, frozenset(v)) for k, v in values.items() if v)))

    @property
    def is_empty(self) -> bool:
        return not self.values

    def key(self) -> str:
        """A canonical text for fault plans (sorted names and values)."""
        return "&".join(f"{name}={','.join(sorted(vals))}" for name, vals in self.values)

    def matches(self, kind: ResourceKind, item: Mapping[str, Any]) -> bool:
        return all(_field(item, kind.filters[name]) in vals for name, vals in self.values)


def _field(item: Mapping[str, Any], dotted: str) -> Any:
    node: Any = item
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


class _Gen:
    """The draws for one item: ids from the same bijection as customer ids, keyed by the resource."""

    def __init__(self, seed: int, salt: int, index: int) -> None:
        self.rng = random.Random((seed << 16 | salt) << 32 | index)

    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.rng.random() * len(seq))]

    def cents(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def ref_id(self, label: int) -> str:
        return _customer_id(label, self.rng.randrange(1 << 30))


def _pool(seed: int, salt: int, n: int) -> tuple[str, ...]:
    return tuple(_customer_id(seed * 1_000 + salt, i) for i in range(n))


class ResourceStore:
    """One resource's generated items, with the customers' paging semantics.

    :param kind: the resource.
    :param seed: the data seed (the customers' seed gives related data).
    :param count: how many items before the edge cases (three items share ``start``, two share
        ``end - 1``, one sits at each of the first three UTC midnights in range).
    :param start: the earliest creation second (inclusive).
    :param end: the latest creation second (exclusive).
    :param customer_ids: ids that sales, transactions and taxes refer to (e.g. the customer store's).
    """

    def __init__(
        self,
        kind: ResourceKind,
        *,
        seed: int,
        count: int,
        start: int,
        end: int,
        customer_ids: Sequence[str] = (),
    ) -> None:
        if end <= start:
            raise ValueError(f"end ({end}) must be after start ({start})")
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if not hasattr(self, f"_build_{kind.name}"):
            known = ", ".join(k.name for k in RESOURCE_KINDS)
            raise ValueError(f"no item generator for resource {kind.name!r}; the sandbox generates {known}")
        self.kind = kind
        self.seed = seed
        self.start = start
        self.end = end
        self._customer_ids = tuple(customer_ids) or _pool(seed, 99, 50)
        self.campaigns = _pool(seed, 1, 4)
        self.api_accounts = _pool(seed, 2, 3)
        self.gateways = tuple(zip(_pool(seed, 3, len(GATEWAYS)), (g for g, _ in GATEWAYS), strict=True))
        self._lock = threading.Lock()
        self._items: list[tuple[int, str, bytes]] = []  # (created, id, encoded), ascending
        rng = random.Random(seed << 8 | kind.salt)
        seconds = [rng.randrange(start, end) for _ in range(count)]
        seconds += [start] * 3 + [end - 1] * 2
        first_midnight = -(-start // DAY) * DAY
        seconds += [m for m in range(first_midnight, first_midnight + 3 * DAY, DAY) if m < end]
        self._next_index = 0
        self._insert(seconds)

    # -- building -------------------------------------------------------------------------

    def _insert(self, seconds: Sequence[int]) -> list[str]:
        ids: list[str] = []
        with self._lock:
            for created in seconds:
                index = self._next_index
                self._next_index += 1
                item = self._build(index, created)
                ids.append(item["id"])
                bisect.insort(self._items, (created, item["id"], _encode(item)))
        return ids

    def _build(self, index: int, created: int) -> JSONDict:
        g = _Gen(self.seed, self.kind.salt, index)
        base: JSONDict = {"id": _customer_id(self.seed * 1_000 + self.kind.salt, index), "created_date_unix": created}
        build: Callable[[_Gen, int, int], JSONDict] = getattr(self, f"_build_{self.kind.name}")
        return {**base, **build(g, index, created)}

    def _money_cents(self, g: _Gen, index: int) -> int:
        return _AWKWARD_CENTS[index] if index < len(_AWKWARD_CENTS) else g.cents(100, 50_000)

    def _build_sales(self, g: _Gen, index: int, created: int) -> JSONDict:
        total = self._money_cents(g, index)
        sale: JSONDict = {
            "customer_id": g.pick(self._customer_ids),
            "campaign_id": g.pick(self.campaigns),
            "currency": g.pick(CURRENCIES),
            "status": g.pick(("approved", "pending", "refunded")),
            "amount_total": _money(total),
            "product_sales": [g.ref_id(21) for _ in range(g.rng.randint(0, 3))],
            "customer": None,
            "metadata": [{"name": "source", "value": g.pick(("fb", "google", "email"))}] if index % 3 else [],
            "updated_date_unix": created + g.rng.randint(0, 3 * DAY),
        }
        sale["customer"] = {"id": sale["customer_id"], "email": f"buyer{index}@example.com"}
        return sale

    def _build_transactions(self, g: _Gen, index: int, created: int) -> JSONDict:
        gross = self._money_cents(g, index)
        fees = gross * 3 // 100
        refunded = gross // 2 if index % 7 == 0 else 0
        gateway_id, gateway_name = g.pick(self.gateways)
        approved = index % 5 != 4
        return {
            "customer_id": g.pick(self._customer_ids),
            "sale_id": g.ref_id(22),
            "campaign_id": g.pick(self.campaigns),
            "currency": g.pick(CURRENCIES),
            "amount": _money(gross),
            "amount_total": _money(gross),
            "amount_gross": _money(gross),
            "amount_net": _money(gross - fees),
            "amount_fees": _money(fees),
            "amount_refunded": _money(refunded),
            "amount_remaining": _money(gross - refunded),
            "approved": approved,
            "declined": not approved,
            "held": False,
            "captured": approved,
            "settled": approved and index % 2 == 0,
            "void": False,
            "gateway_id": gateway_id,
            "gateway_name": gateway_name,
            "gateway_transaction_id": g.ref_id(23),
        }

    def _build_api_calls(self, g: _Gen, index: int, created: int) -> JSONDict:
        account = g.pick(self.api_accounts)
        return {
            "type": g.pick(API_CALL_TYPES),
            "method": g.pick(("GET", "POST")),
            "source": g.pick(API_CALL_SOURCES),
            "api_account": {"id": account, "name": f"Account {self.api_accounts.index(account) + 1}"},
            "ip_address": f"203.0.113.{index % 250 + 1}",
            "response_code": g.pick((1, 1, 1, 0)),
        }

    def _build_tax(self, g: _Gen, index: int, created: int) -> JSONDict:
        amount = self._money_cents(g, index)
        rate_bp = g.pick((500, 725, 825, 2000))
        return {
            "customer_id": g.pick(self._customer_ids),
            "sale_id": g.ref_id(24),
            "name": g.pick(("State tax", "VAT", "GST")),
            "currency": g.pick(CURRENCIES),
            "rate": _money(rate_bp),
            "amount": _money(amount),
            "amount_total": _money(amount + amount * rate_bp // 10_000),
        }

    def _build_functions(self, g: _Gen, index: int, created: int) -> JSONDict:
        return {"name": f"function_{index:04d}", "enabled": index % 4 != 3, "trigger": g.pick(("sale", "cron"))}

    # -- queries --------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _matching(self, lo: int | None, hi: int | None, filters: ResourceFilter | None) -> list[bytes]:
        """Encoded items with ``lo <= created < hi`` (all when ``lo`` is None), oldest first."""
        with self._lock:
            items = self._items
            if lo is not None and hi is not None:
                a = bisect.bisect_left(items, (lo,))
                b = bisect.bisect_left(items, (hi,), a)
                items = items[a:b]
            else:
                items = list(items)
        if filters is None or filters.is_empty:
            return [data for _, _, data in items]
        return [data for _, _, data in items if filters.matches(self.kind, json.loads(data))]

    def page(
        self,
        date_start: int | None,
        date_end: int | None,
        *,
        end_inclusive: bool,
        filters: ResourceFilter | None = None,
        order: str = "desc",
        offset: int,
        limit: int,
    ) -> tuple[int, list[bytes]]:
        """``(total_count, encoded items of the page)``; no dates means every item (a list without a range)."""
        if order not in ("asc", "desc"):
            raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")
        hi = None if date_end is None else (date_end + 1 if end_inclusive else date_end)
        matched = self._matching(date_start, hi, filters)
        seq = matched if order == "asc" else matched[::-1]
        return len(matched), seq[offset : offset + limit]

    def truth(
        self, start: int | None = None, end: int | None = None, filters: ResourceFilter | None = None,
        *, exact: bool = False,
    ) -> list[JSONDict]:
        """Items with ``start <= created_date_unix < end`` (half-open; every item when no range is given),
        oldest first, each exactly as served. ``exact=True`` reads fractional numbers as ``Decimal``."""
        parse_float = Decimal if exact else float
        return [json.loads(b, parse_float=parse_float) for b in self.truth_bytes(start, end, filters)]

    def truth_bytes(
        self, start: int | None = None, end: int | None = None, filters: ResourceFilter | None = None
    ) -> list[bytes]:
        """Like :meth:`truth`, as the encoded bytes."""
        if (start is None) != (end is None):
            raise ValueError("give both start and end, or neither")
        return self._matching(start, end, filters)

    def add_items(self, n: int, date_start: int, date_end: int, *, seed: int) -> list[str]:
        """Insert ``n`` items created in ``[date_start, date_end)`` (the "shift" fault); return their ids."""
        if date_end <= date_start:
            raise ValueError("date_end must be after date_start")
        rng = random.Random(seed << 8 | self.kind.salt)
        return self._insert([rng.randrange(date_start, date_end) for _ in range(n)])


def default_resources(
    *, seed: int, start: int, end: int, customer_ids: Sequence[str] = (), count: int = 200
) -> dict[str, ResourceStore]:
    """One store per :data:`RESOURCE_KINDS` entry, ``count`` items each (API calls: over the last 10 days
    of the range, so a 2-day window holds several pages)."""
    stores: dict[str, ResourceStore] = {}
    for kind in RESOURCE_KINDS:
        lo = max(start, end - 10 * DAY) if kind.name == "api_calls" else start
        stores[kind.name] = ResourceStore(
            kind, seed=seed, count=count, start=lo, end=end, customer_ids=customer_ids
        )
    return stores



def resources_for(store: CustomerStore, count: int = 200) -> dict[str, ResourceStore]:
    """:func:`default_resources` over ``store``'s seed and range, referring to its first 200 customers;
    ``{}`` (customers alone) when ``count`` is 0.

    :param store: the customers.
    :param count: items per resource.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count == 0:
        return {}
    customer_ids = [store.id_of(i) for i in range(min(len(store), 200))]
    return default_resources(seed=store.seed, start=store.start, end=store.end, customer_ids=customer_ids,
                             count=count)
