"""Deterministic, generated RevCent customers for the sandbox.

The store never keeps full customer objects. Per customer it keeps four machine
integers (created second, version, an "unknown fields" flag and its position in
the paging order), about 20 bytes, so 100,000 customers cost a few megabytes.
The full object is a pure function of ``(seed, index, version, unknown flag,
created second)`` and is rebuilt on demand; its JSON bytes are kept in a bounded
LRU so that serving a page is mostly joining cached byte strings.

Customer ids are a keyed bijection of the index (see :func:`_customer_id`), so
they are unique by construction and never need to be stored either.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, TypeVar

from revcent_sandbox import messy as _messy

__all__ = [
    "CUSTOMER_FIELDS",
    "ID_ARRAY_FIELDS",
    "METADATA_NAME_EXISTS",
    "STATUS_FILTER_VALUES",
    "CustomerFilter",
    "CustomerStore",
]

JSONDict = dict[str, Any]
_T = TypeVar("_T")

DAY: Final = 86_400

#: Names of the second ``allOf`` object of the spec: arrays of 20-char ids.
ID_ARRAY_FIELDS: Final[tuple[str, ...]] = (
    "sales",
    "product_sales",
    "shipping",
    "tax",
    "discounts",
    "trials",
    "subscriptions",
    "subscription_renewals",
    "invoices",
    "transactions",
    "ai_threads",
    "ai_assistants",
    "paypal_transactions",
    "offline_payments",
    "check_directs",
    "salvage_transactions",
    "pending_refunds",
    "chargebacks",
    "fraud_detections",
    "api_calls",
)

#: Every top-level field of the spec's customer object, in the spec's order.
#: Served objects use this key order (unknown fields, when enabled, come last).
CUSTOMER_FIELDS: Final[tuple[str, ...]] = (
    "address_line_1",
    "address_line_2",
    "blocked",
    "city",
    "company",
    "country",
    "email",
    "first_name",
    "internal_id",
    "last_name",
    "phone",
    "state",
    "zip",
    "created_date_unix",
    "id",
    "campaign_id",
    "campaign_name",
    "enabled",
    "customer_card",
    "customer_group",
    "lifetime_value",
    "notes",
    "products_purchased",
    "status",
    "metadata",
    "updated_date_unix",
    *ID_ARRAY_FIELDS,
)

STATUS_FILTER_VALUES: Final = frozenset({"enabled", "disabled", "blocked", "fraud", "chargeback"})
METADATA_NAME_EXISTS: Final = "METADATA_NAME_EXISTS"

_M64: Final = (1 << 64) - 1
_ALNUM: Final = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Maps any random byte to an alphanumeric one, so random ids come from one
# randbytes() call plus bytes.translate (both C speed). The bias (256 is not a
# multiple of 62) does not matter for fake ids.
_ID_TABLE: Final = bytes(_ALNUM[b % 62] for b in range(256))

# Salts keep the random streams of different purposes independent.
_SALT_POOLS: Final = 1
_SALT_CREATED: Final = 2
_SALT_BASE: Final = 3
_SALT_MUTATE: Final = 4
_SALT_UNKNOWN: Final = 5
_SALT_ADD: Final = 6
_SALT_PICK_MUTATE: Final = 7
_SALT_PICK_UNKNOWN: Final = 8

# The first indices get fixed profiles so that every field shape (full, absent,
# empty, unicode-heavy, money edge values) exists in any store of >= 5 customers,
# whatever the random draws of the other customers are.
_PROFILES: Final[tuple[str, ...]] = ("full", "sparse", "empty", "unicode", "money")


def _seed_key(seed: int, a: int, b: int, salt: int) -> int:
    """Pack (seed, salt, a, b) into one collision-free integer seed."""
    return (((seed & _M64) << 8 | salt) << 64 | (a & _M64)) << 32 | (b & 0xFFFFFFFF)


def _rng(seed: int, a: int, b: int, salt: int) -> random.Random:
    """Return a Random seeded from a packed key.

    Random's integer seeding (init_by_array) is specified and stable across
    Python versions, unlike hash() of strings, so the data is reproducible.
    """
    return random.Random(_seed_key(seed, a, b, salt))


class _Draw:
    """Fast deterministic draws for building one customer.

    ``randrange``/``choice``/``sample`` cost about a microsecond each in pure
    Python; a customer needs ~100 draws, so these helpers use only the C-level
    ``random()`` and ``randbytes()``, which are also stable across versions.
    """

    __slots__ = ("_blob", "_pos", "_rng", "random")

    def __init__(self, key: int) -> None:
        self._rng = random.Random(key)
        self.random = self._rng.random
        self._blob = ""
        self._pos = 0

    def below(self, n: int) -> int:
        """An int in ``[0, n)``."""
        return int(self.random() * n)

    def between(self, low: int, high: int) -> int:
        """An int in ``[low, high]``."""
        return low + int(self.random() * (high - low + 1))

    def pick(self, seq: Sequence[_T]) -> _T:
        return seq[int(self.random() * len(seq))]

    def sample(self, seq: Sequence[_T], k: int) -> list[_T]:
        pool = list(seq)
        return [pool.pop(int(self.random() * len(pool))) for _ in range(k)]

    def _refill(self, need: int) -> None:
        fresh = self._rng.randbytes(max(800, need)).translate(_ID_TABLE).decode("ascii")
        self._blob = self._blob[self._pos :] + fresh
        self._pos = 0

    def ids(self, n: int) -> list[str]:
        """``n`` random 20-char alphanumeric ids, cut from one pre-drawn blob."""
        need = 20 * n
        if self._pos + need > len(self._blob):
            self._refill(need)
        start = self._pos
        self._pos += need
        blob = self._blob
        return [blob[i : i + 20] for i in range(start, start + need, 20)]

    def id(self) -> str:
        """One random id (the same stream as :meth:`ids`, without building a list)."""
        if self._pos + 20 > len(self._blob):
            self._refill(20)
        pos = self._pos
        self._pos = pos + 20
        return self._blob[pos : pos + 20]


def _mix64(x: int) -> int:
    """SplitMix64 finalizer: a bijection on 64-bit integers."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _base62(x: int, width: int) -> str:
    out = bytearray(width)
    for i in range(width - 1, -1, -1):
        x, r = divmod(x, 62)
        out[i] = _ALNUM[r]
    return out.decode("ascii")


def _customer_id(seed: int, index: int) -> str:
    """20-char alphanumeric id, unique per index for a given seed.

    The first 11 characters are base62 of a keyed 64-bit bijection of the index
    (62**11 > 2**64), so two indices can never share an id; the last 9 only make
    it look random.
    """
    x = _mix64((index + _mix64(seed & _M64)) & _M64)
    return _base62(x, 11) + _base62(_mix64(x ^ 0x5DEECE66D), 9)


def _money(cents: int) -> int | float:
    """Render cents the way a JavaScript API does: ``20`` not ``20.0``, ``0.1``.

    ``cents / 100`` is the double nearest to the 2-decimal value, so its repr
    (what json emits) never has more than 2 decimals.
    """
    return cents // 100 if cents % 100 == 0 else cents / 100


def _iso(ts: int, millis: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{millis:03d}Z"


def _encode(obj: JSONDict) -> bytes:
    # Compact, UTF-8, non-ASCII left raw (as a JavaScript API sends it).
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class CustomerFilter:
    """The optional filters of ``GET /v2/customers``; different kinds are ANDed.

    Within a kind, any id (or status) matches; every metadata pair must match.
    """

    campaign_ids: frozenset[str] = frozenset()
    customer_group_ids: frozenset[str] = frozenset()
    product_ids: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    metadata: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        bad = set(self.statuses) - STATUS_FILTER_VALUES
        if bad:
            raise ValueError(f"statuses: unknown status filter value(s) {sorted(bad)}")

    @property
    def is_empty(self) -> bool:
        """True when the filter matches every customer."""
        return not (
            self.campaign_ids or self.customer_group_ids or self.product_ids or self.statuses or self.metadata
        )

    def key(self) -> str:
        """A canonical string for the filter, independent of parameter order."""
        parts = [
            "c=" + ",".join(sorted(self.campaign_ids)),
            "g=" + ",".join(sorted(self.customer_group_ids)),
            "p=" + ",".join(sorted(self.product_ids)),
            "s=" + ",".join(sorted(self.statuses)),
            "m=" + json.dumps(sorted(self.metadata), ensure_ascii=False),
        ]
        return "&".join(parts)

    def matches(self, customer: Mapping[str, Any]) -> bool:
        """Whether a served customer object passes this filter."""
        if self.campaign_ids and customer.get("campaign_id") not in self.campaign_ids:
            return False
        if self.customer_group_ids and not any(
            g.get("id") in self.customer_group_ids for g in customer.get("customer_group") or ()
        ):
            return False
        if self.product_ids and not any(
            p.get("id") in self.product_ids for p in customer.get("products_purchased") or ()
        ):
            return False
        if self.statuses and not any(_status_matches(customer, s) for s in self.statuses):
            return False
        if self.metadata:
            pairs = customer.get("metadata") or ()
            for name, value in self.metadata:
                if not any(
                    m.get("name") == name and (value == METADATA_NAME_EXISTS or m.get("value") == value)
                    for m in pairs
                ):
                    return False
        return True


def _status_matches(customer: Mapping[str, Any], status: str) -> bool:
    lifetime = customer.get("lifetime_value") or {}
    if status == "fraud":
        return bool((lifetime.get("fraud_detection") or {}).get("num", 0) > 0)
    if status == "chargeback":
        return bool((lifetime.get("chargeback") or {}).get("num", 0) > 0)
    return str(customer.get("status", "")).lower() == status


# --- fixed vocabularies ------------------------------------------------------------------
# Mixed ASCII / accented / CJK / emoji so encoders, NDJSON writers and databases meet
# real-world text; one name has an apostrophe, one note has quotes, a backslash, a
# newline and U+2028 (a line separator that str.splitlines() splits on, JSON does not).

_FIRST_NAMES: Final = (
    "Alice", "Bob", "Carlos", "Dana", "Emma", "Frank", "Grace", "Hiro", "Ines", "Jamal",
    "José", "Zoë", "Siobhán", "Łukasz", "Søren", "Ana María", "Nguyễn", "王", "さくら", "Ólafur",
)  # fmt: skip
_LAST_NAMES: Final = (
    "Smith", "Johnson", "Garcia", "Miller", "Davis", "Lopez", "Wilson", "Taylor", "Clark", "Lewis",
    "O'Brien", "Müller", "Ñúñez", "Kowalczyk", "Dvořák", "李", "山田", "Þórsdóttir", "Van der Berg",
    "Smith-Jones",
)  # fmt: skip
_LOCATIONS: Final = (
    ("Austin", "TX", "73301", "USA"),
    ("New York", "NY", "10001", "USA"),
    ("Seattle", "WA", "98101", "USA"),
    ("Toronto", "ON", "M5H 2N2", "CAN"),
    ("Montréal", "QC", "H2X 1Y4", "CAN"),
    ("London", "", "SW1A 1AA", "GBR"),
    ("Zürich", "ZH", "8001", "CHE"),
    ("São Paulo", "SP", "01000-000", "BRA"),
    ("Kraków", "", "30-001", "POL"),
    ("Reykjavík", "", "101", "ISL"),
    ("東京", "東京都", "100-0001", "JPN"),
    ("Paris", "", "75001", "FRA"),
)
_STREETS: Final = (
    "Main St",
    "Oak Ave",
    "Rue de Rivoli",
    "Bahnhofstrasse",
    "Avenida Paulista",
    "Elm Road",
    "桜通り",
)
_COMPANIES: Final = (
    "Acme Corp",
    "Globex LLC",
    "Initech",
    "Café Müller GmbH",
    "株式会社サンプル",
    "Umbrella & Sons",
)
_DOMAINS: Final = ("example.com", "example.org", "mail.example.net")
_CARD_TYPES: Final = (
    ("Visa", "411111"),
    ("Mastercard", "555555"),
    ("American Express", "378282"),
    ("Discover", "601111"),
)
_NOTE_TEXTS: Final = (
    "Called about shipping delay.",
    "Requested refund; approved.",
    "Customer prefers email contact.",
    "VIP — handle with care ✨",
    "Adresse mise à jour après déménagement.",
    "请在周末之前发货。",
    "Upgraded plan 🎉 after trial",
    'Said "thanks!" and left a 5★ review \\o/',
    "Line one\nline two",
    "Separator\u2028inside a note",
)
_EMPLOYEES: Final = (
    ("jdoe", "John", "Doe"),
    ("mgarcia", "María", "García"),
    ("tanaka", "太郎", "田中"),
)
_RELATED_TYPES: Final = ("sale", "subscription", "customer", "trial")
_METADATA: Final = (
    ("utm_source", ("google", "facebook", "newsletter", "tiktok")),
    ("utm_campaign", ("spring_sale", "black_friday", "été-2026")),
    ("affiliate_id", ("AFF001", "AFF002", "AFF003")),
    ("landing_page", ("/offer", "/pricing", "/promo?x=1&y=2")),
    ("préférence", ("email", "sms", "téléphone")),
)
_CAMPAIGN_NAMES: Final = ("Spring Promo", "Évènement d'été", "常規キャンペーン", "Black Friday 🛍️", "Default")
_GROUP_NAMES: Final = ("VIP", "Wholesale", "Newsletter", "Fraud Review", "Ålesund Partners", "早期会员")
_PRODUCT_NAMES: Final = (
    "Starter Kit", "Pro Subscription", "Café Blend 1kg", "Gift Card", "抹茶セット", "Vitamin Pack",
    "Deluxe Bundle 🎁", "Shipping Insurance",
)  # fmt: skip
_LOYALTY: Final = ("bronze", "silver", "gold", "platinum")
_NETWORKS: Final = ("visa", "mastercard", "amex", "discover")


@dataclass(slots=True)
class _Amounts:
    """Cents of one lifetime-value block; rendered as money only at the end."""

    gross: int = 0
    refunded: int = 0
    remaining: int = 0
    to_salvage: int = 0
    discounted: int = 0
    fees: int = 0
    num: int = 0

    def add(self, other: _Amounts) -> _Amounts:
        return _Amounts(
            self.gross + other.gross,
            self.refunded + other.refunded,
            self.remaining + other.remaining,
            self.to_salvage + other.to_salvage,
            self.discounted + other.discounted,
            self.fees + other.fees,
            self.num + other.num,
        )

    def render(self) -> JSONDict:
        # total = original - (refunded + discounted),
        # where original = gross + refunded + discounted + remaining.
        return {
            "amount_gross": _money(self.gross),
            "amount_net": _money(self.gross - self.fees),
            "amount_refunded": _money(self.refunded),
            "amount_remaining": _money(self.remaining),
            "amount_to_salvage": _money(self.to_salvage),
            "amount_total": _money(self.gross + self.remaining),
            "amount_discounted": _money(self.discounted),
        }


@dataclass(slots=True)
class _Ledger:
    """Money state of a customer while it is being built (cents, counts, dates)."""

    sale: _Amounts = field(default_factory=_Amounts)
    renewal: _Amounts = field(default_factory=_Amounts)
    overdue: int = 0
    chargeback_cents: int = 0
    chargeback_num: int = 0
    fraud_num: int = 0
    last_sale: tuple[int, int] | None = None  # (unix, millis)
    last_renewal: tuple[int, int] | None = None


class _Presence:
    """Decides whether an optional field is present, absent or empty ("" / []).

    It always draws, so a fixed profile never shifts the random stream of the
    fields after it.
    """

    __slots__ = ("_profile", "_rng")

    def __init__(self, rng: _Draw, profile: str) -> None:
        self._rng = rng
        self._profile = profile

    def __call__(self, p_absent: float, p_empty: float) -> str:
        r = self._rng.random()
        if self._profile in ("full", "unicode", "money"):
            return "present"
        if self._profile in ("sparse", "empty"):
            return "absent" if self._profile == "sparse" else "empty"
        return "absent" if r < p_absent else "empty" if r < p_absent + p_empty else "present"


class _Generator:
    """Builds customer objects; holds only immutable per-seed vocabularies."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        rng = _Draw(_seed_key(seed, 0, 0, _SALT_POOLS))
        self.campaigns: tuple[tuple[str, str], ...] = tuple(
            zip(rng.ids(len(_CAMPAIGN_NAMES)), _CAMPAIGN_NAMES, strict=True)
        )
        self.groups: tuple[tuple[str, str], ...] = tuple(
            zip(rng.ids(len(_GROUP_NAMES)), _GROUP_NAMES, strict=True)
        )
        # Prices include 0 and 0.1 so products show the awkward values too.
        self.products: tuple[tuple[str, str, str, str, int], ...] = tuple(
            (pid, name, f"P-{i:04d}", f"SKU-{i:03d}-{name[:3].upper()}", (10, 1999, 4999, 0, 12345)[i % 5])
            for i, (pid, name) in enumerate(zip(rng.ids(len(_PRODUCT_NAMES)), _PRODUCT_NAMES, strict=True))
        )
        self.employee_ids: tuple[str, ...] = tuple(rng.ids(len(_EMPLOYEES)))

    # -- public entry point ---------------------------------------------------------------

    def build(self, index: int, created: int, version: int, unknown: bool) -> JSONDict:
        """The customer exactly as served (before JSON encoding)."""
        profile = _PROFILES[index] if index < len(_PROFILES) else "random"
        obj, ledger = self._base(index, created, profile)
        for step in range(1, version + 1):
            self._mutate_step(obj, ledger, index, step)
        obj["lifetime_value"] = self._render_lifetime(ledger)
        out = {k: obj[k] for k in CUSTOMER_FIELDS if k in obj}
        if unknown:
            self._add_unknown(out, index)
        return out

    # -- pieces ---------------------------------------------------------------------------

    def _base(self, index: int, created: int, profile: str) -> tuple[JSONDict, _Ledger]:
        """Version 0 of a customer. Key order does not matter here: build() normalizes it."""
        rng = _Draw(_seed_key(self.seed, index, 0, _SALT_BASE))
        presence = _Presence(rng, profile)
        obj = self._contact(rng, presence, index, profile)
        obj["created_date_unix"] = created
        obj["id"] = _customer_id(self.seed, index)
        campaign_id, campaign_name = self.campaigns[3] if profile == "unicode" else rng.pick(self.campaigns)
        obj["campaign_id"] = campaign_id
        obj["campaign_name"] = campaign_name
        r = rng.random()
        status = "Enabled" if r < 0.8 else "Disabled" if r < 0.92 else "Blocked"
        if profile == "full":
            status = "Blocked"  # the rarest status, pinned so it always exists
        _set_status(obj, status)
        updated = created if rng.random() < 0.3 else created + rng.between(1, 30 * DAY)
        if profile in ("full", "unicode"):
            updated = max(updated, created + 1)
        obj["updated_date_unix"] = updated
        self._relations(obj, rng, presence, profile, created=created, updated=updated)
        ledger = self._ledger(rng, profile, created, updated)
        self._id_arrays(obj, rng, profile, ledger)
        return obj, ledger

    @staticmethod
    def _contact(rng: _Draw, presence: _Presence, index: int, profile: str) -> JSONDict:
        """Name, e-mail, phone, company and address fields."""
        unicode = profile == "unicode"
        obj: JSONDict = {}
        obj["first_name"] = "王" if unicode else rng.pick(_FIRST_NAMES)
        obj["last_name"] = "Þórsdóttir-山田 🌸" if unicode else rng.pick(_LAST_NAMES)
        city, state, zip_code, country = _LOCATIONS[10] if unicode else rng.pick(_LOCATIONS)
        obj["address_line_1"] = f"{rng.between(1, 9999)} {'桜通り' if unicode else rng.pick(_STREETS)}"
        kind = presence(0.4, 0.2)
        if kind != "absent":
            obj["address_line_2"] = "" if kind == "empty" else f"Apt {rng.between(1, 999)}"
        obj["city"] = city
        obj["state"] = "" if profile == "empty" else state
        obj["zip"] = zip_code
        obj["country"] = country
        kind = presence(0.3, 0.1)
        if kind != "absent":
            company = "株式会社サンプル" if unicode else rng.pick(_COMPANIES)
            obj["company"] = "" if kind == "empty" else company
        local = "josé.王" if unicode else f"customer{index}.{rng.below(10**6):06d}"
        obj["email"] = f"{local}@{rng.pick(_DOMAINS)}"
        kind = presence(0.3, 0.2)
        if kind != "absent":
            obj["internal_id"] = "" if kind == "empty" else f"CRM-{rng.below(10**7):07d}"
        kind = presence(0.1, 0.1)
        if kind != "absent":
            obj["phone"] = "" if kind == "empty" else f"+1 {rng.between(200, 989)}-555-{rng.below(10**4):04d}"
        return obj

    def _relations(
        self, obj: JSONDict, rng: _Draw, presence: _Presence, profile: str, *, created: int, updated: int
    ) -> None:
        """Cards, groups, notes, purchased products and metadata."""
        full = profile == "full"
        kind = presence(0.1, 0.15)
        if kind != "absent":
            n = 0 if kind == "empty" else (3 if full else rng.between(1, 3))
            obj["customer_card"] = [
                self._card(rng, created + i * 3600, updated, is_default=(i == n - 1)) for i in range(n)
            ]
        kind = presence(0.05, 0.5)
        if kind != "absent":
            n = 0 if kind == "empty" else (2 if full else rng.between(1, 2))
            obj["customer_group"] = [{"id": gid, "name": name} for gid, name in rng.sample(self.groups, n)]
        kind = presence(0.1, 0.4)
        if kind != "absent":
            n = 0 if kind == "empty" else (3 if full else rng.between(1, 3))
            obj["notes"] = [self._note(rng, created, updated, profile == "unicode") for _ in range(n)]
        kind = presence(0.05, 0.2)
        if kind != "absent":
            n = 0 if kind == "empty" else (4 if profile in ("full", "money") else rng.between(1, 4))
            obj["products_purchased"] = [
                self._product(rng, product, created, updated, profile)
                for product in rng.sample(self.products, n)
            ]
        kind = presence(0.1, 0.3)
        if kind != "absent":
            n = 0 if kind == "empty" else (len(_METADATA) if full else rng.between(1, 3))
            obj["metadata"] = [
                {"name": name, "value": rng.pick(values)} for name, values in rng.sample(_METADATA, n)
            ]

    @staticmethod
    def _id_arrays(obj: JSONDict, rng: _Draw, profile: str, ledger: _Ledger) -> None:
        """The second allOf object: arrays of 20-char ids, sized consistently with the ledger."""
        counts = {
            "sales": ledger.sale.num,
            "subscription_renewals": ledger.renewal.num,
            "chargebacks": ledger.chargeback_num,
            "fraud_detections": ledger.fraud_num,
            "transactions": ledger.sale.num + ledger.renewal.num,
            "product_sales": ledger.sale.num,
        }
        sizes: list[tuple[str, int]] = []
        for name in ID_ARRAY_FIELDS:
            n = counts.get(name, rng.between(0, 2) if rng.random() < 0.5 else 0)
            if profile == "full":
                n = max(n, 1)
            elif profile == "empty":
                n = 0
            # Some id arrays are missing entirely (sparse profile, or 3% at random).
            missing = rng.random() < 0.03
            if profile == "sparse" and name not in ("sales", "transactions"):
                missing = True
            if profile in ("full", "empty", "unicode", "money"):
                missing = False
            if not missing:
                sizes.append((name, n))
        # One draw for all the id arrays, then slices: ~20 fewer calls per customer.
        flat = rng.ids(sum(n for _, n in sizes))
        pos = 0
        for name, n in sizes:
            obj[name] = flat[pos : pos + n]
            pos += n

    def _ledger(self, rng: _Draw, profile: str, created: int, updated: int) -> _Ledger:  # noqa: C901 - one branch per customer profile, each a short recipe
        ledger = _Ledger()
        if profile == "money":
            # Awkward binary-float values and a large amount; all sums stay exact in cents.
            ledger.sale = _Amounts(
                gross=10, refunded=20, remaining=30, to_salvage=0, discounted=30, fees=40, num=3
            )
            ledger.renewal = _Amounts(
                gross=12345678, refunded=0, remaining=0, to_salvage=1999, discounted=0, fees=0, num=1
            )
            ledger.chargeback_cents, ledger.chargeback_num = 1999, 1
            ledger.last_sale = (updated, 0)
            ledger.last_renewal = (updated, 999)
            return ledger
        if profile in ("empty", "sparse"):
            return ledger
        n_sales = rng.between(1, 5) if profile in ("full", "unicode") else rng.pick((0, 0, 1, 1, 1, 2, 3, 5))
        big = rng.random() < 0.01
        for _ in range(n_sales):
            cents = rng.below(20_000_000 if big else 50_000)
            ledger.sale.gross += cents
            ledger.sale.fees += cents * 3 // 100
            ledger.sale.num += 1
        if rng.random() < 0.1:
            ledger.sale.refunded = rng.below(5_000)
        if rng.random() < 0.1:
            ledger.sale.discounted = rng.below(3_000)
        if rng.random() < 0.05:
            ledger.sale.to_salvage = rng.below(10_000)
            ledger.sale.remaining = ledger.sale.to_salvage + rng.below(5_000)
        n_renew = (
            rng.between(1, 3) if profile == "full" else (rng.between(1, 12) if rng.random() < 0.3 else 0)
        )
        for _ in range(n_renew):
            cents = rng.pick((999, 1999, 2999, 4999))
            ledger.renewal.gross += cents
            ledger.renewal.fees += cents * 3 // 100
            ledger.renewal.num += 1
        if n_renew and rng.random() < 0.2:
            ledger.overdue = rng.between(1, 2)
        if profile == "full" or rng.random() < 0.08:
            ledger.chargeback_num = rng.between(1, 2)
            ledger.chargeback_cents = ledger.chargeback_num * rng.between(100, 19_999)
        if profile == "full" or rng.random() < 0.05:
            ledger.fraud_num = rng.between(1, 3)
        if ledger.sale.num:
            ledger.last_sale = (rng.between(created, updated), rng.below(1000))
        if ledger.renewal.num:
            ledger.last_renewal = (rng.between(created, updated), rng.below(1000))
        return ledger

    @staticmethod
    def _render_lifetime(ledger: _Ledger) -> JSONDict:
        sale, renewal = ledger.sale, ledger.renewal
        sale_out = sale.render()
        sale_out["num"] = sale.num
        sale_out["avg"] = _money(round((sale.gross + sale.remaining) / sale.num)) if sale.num else 0
        renewal_out = renewal.render()
        renewal_out["num"] = renewal.num
        renewal_out["avg"] = (
            _money(round((renewal.gross + renewal.remaining) / renewal.num)) if renewal.num else 0
        )
        renewal_out["num_overdue"] = ledger.overdue
        out: JSONDict = {
            "all": sale.add(renewal).render(),
            "sale": sale_out,
            "subscription_renewal": renewal_out,
            "chargeback": {
                "amount": _money(ledger.chargeback_cents),
                "num": ledger.chargeback_num,
                "avg": _money(round(ledger.chargeback_cents / ledger.chargeback_num))
                if ledger.chargeback_num
                else 0,
            },
            "fraud_detection": {"num": ledger.fraud_num},
        }
        # Absent (not null, not "") when there never was such an event.
        if ledger.last_sale is not None:
            out["last_sale_date"] = _iso(*ledger.last_sale)
        if ledger.last_renewal is not None:
            out["last_subscription_renewal_date"] = _iso(*ledger.last_renewal)
        return out

    @staticmethod
    def _card(rng: _Draw, created: int, updated: int, *, is_default: bool) -> JSONDict:
        card_type, first_6 = rng.pick(_CARD_TYPES)
        month, year = rng.between(1, 12), rng.between(26, 34)
        card_created = min(created, updated)
        return {
            "id": rng.id(),
            "type": card_type,
            "first_6": first_6,
            "last_4": f"{rng.below(10**4):04d}",
            "expiry_date": f"{month:02d}/{year:02d}",
            "expiry_month": f"{month:02d}",
            "expiry_year": f"{year:02d}",
            "is_default": is_default,
            "created_date_unix": card_created,
            "updated_date_unix": max(card_created, rng.between(card_created, max(card_created, updated))),
        }

    def _note(self, rng: _Draw, created: int, updated: int, unicode: bool) -> JSONDict:
        employee = rng.below(len(_EMPLOYEES))
        username, first, last = _EMPLOYEES[employee]
        note_created = rng.between(created, updated)
        return {
            "created_date_unix": note_created,
            "updated_date_unix": note_created
            if rng.random() < 0.7
            else rng.between(note_created, note_created + DAY),
            "id": rng.id(),
            "text": "Notiz 📝: 顧客は «très» content — ✓" if unicode else rng.pick(_NOTE_TEXTS),
            "username": username,
            "first_name": first,
            "last_name": last,
            "employee_id": self.employee_ids[employee],
            "customer_note_related_type": rng.pick(_RELATED_TYPES),
            "customer_note_related_id": rng.id(),
        }

    @staticmethod
    def _product(
        rng: _Draw, product: tuple[str, str, str, str, int], created: int, updated: int, profile: str
    ) -> JSONDict:
        pid, name, internal_id, sku, price_cents = product
        if profile == "money":
            price_cents = rng.pick((10, 20, 30, 1999))
        count = rng.between(1, 3)
        quantity = count * rng.between(1, 2)
        gross = price_cents * quantity
        refunded = (price_cents if rng.random() < 0.1 else 0) if profile != "money" else 20
        return {
            "id": pid,
            "name": name,
            "internal_id": internal_id,
            "sku": sku,
            "quantity": quantity,
            "price": _money(price_cents),
            "amount_gross": _money(gross),
            "amount_refunded": _money(refunded),
            "purchase_count": count,
            "purchase_dates": sorted(rng.between(created, updated) for _ in range(count)),
        }

    def _mutate_step(self, obj: JSONDict, ledger: _Ledger, index: int, step: int) -> None:
        """Version ``step`` of a customer: a new sale and note, maybe a status change and a card."""
        rng = _Draw(_seed_key(self.seed, index, step, _SALT_MUTATE))
        updated = int(obj["updated_date_unix"]) + rng.between(60, 3 * DAY)
        obj["updated_date_unix"] = updated
        cents = rng.between(100, 29_999)
        ledger.sale.gross += cents
        ledger.sale.fees += cents * 3 // 100
        ledger.sale.num += 1
        ledger.last_sale = (updated, rng.below(1000))
        sale_id, product_sale_id, transaction_id = rng.ids(3)
        obj.setdefault("sales", []).append(sale_id)
        obj.setdefault("product_sales", []).append(product_sale_id)
        obj.setdefault("transactions", []).append(transaction_id)
        if rng.random() < 0.35:
            new_status = {
                "Enabled": rng.pick(("Disabled", "Blocked")),
                "Disabled": "Enabled",
                "Blocked": "Enabled",
            }
            obj["status"] = new_status[str(obj["status"])]
            _set_status(obj, obj["status"])
        if rng.random() < 0.5:
            cards = obj.setdefault("customer_card", [])
            for card in cards:
                card["is_default"] = False
            cards.append(self._card(rng, updated, updated, is_default=True))
        obj.setdefault("notes", []).append(self._note(rng, updated, updated, unicode=False))

    def _add_unknown(self, obj: JSONDict, index: int) -> None:
        """Fields the spec does not know, top-level and nested (schema drift)."""
        rng = _Draw(_seed_key(self.seed, index, 0, _SALT_UNKNOWN))
        obj["lifetime_value"]["all"]["amount_tax"] = 1.5
        for card in obj.get("customer_card") or ():
            card["network"] = rng.pick(_NETWORKS)
        obj["loyalty_tier"] = rng.pick(_LOYALTY)
        obj["consent"] = {"email": rng.random() < 0.5, "sms": rng.random() < 0.5, "source": "checkout"}


def _set_status(obj: JSONDict, status: str) -> None:
    # status, enabled and blocked must never disagree.
    obj["status"] = status
    obj["enabled"] = status == "Enabled"
    obj["blocked"] = status == "Blocked"


# A snapshot of one customer's generation inputs: (index, created, version, unknown).
_Snap = tuple[int, int, int, int]


class CustomerStore:
    """A deterministic, thread-safe set of generated customers.

    ``len(store)`` is ``count`` plus the edge-case customers that are always added:

    * for each of the first 10 UTC midnights inside ``[start, end)``: one customer
      created exactly at 00:00:00 and one at 23:59:59 of the previous day (when that
      second is inside the range), up to 20 customers;
    * 4 groups of 3 customers sharing the same second: at ``start``, at the first
      midnight (or mid-range when there is none), at a second a third into the
      range, and at ``end - 1``; 12 customers.

    The first five indices have fixed shapes (full, sparse with absent optional
    fields, empty strings/arrays, unicode-heavy, awkward money values) so that every
    spec field and every shape exists whenever ``len(store) >= 5``.
    """

    def __init__(
        self,
        *,
        seed: int = 1,
        count: int = 300,
        start: int,
        end: int,
        cache_size: int = 50_000,
        messy: str = "none",
    ) -> None:
        if end <= start:
            raise ValueError(f"end ({end}) must be greater than start ({start})")
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self._seed = seed
        self._start = start
        self._end = end
        self._gen = _Generator(seed)
        self._lock = threading.RLock()
        self._cache: OrderedDict[tuple[int, int, int], bytes] = OrderedDict()
        self._cache_size = max(1, cache_size)
        self._query_cache: OrderedDict[tuple[int, int, CustomerFilter, int], list[int]] = OrderedDict()
        self._epoch = 0  # bumped on every change; keys the filtered-query cache
        #: index -> messy variant (see revcent_sandbox.messy); generated customers only.
        self.messy: dict[int, str] = _messy.pick(seed, range(len(_PROFILES), count), messy)

        draw = _rng(seed, 0, 0, _SALT_CREATED).random
        span = end - start
        created = [start + int(draw() * span) for _ in range(count)]
        created.extend(self._edge_case_seconds(start, end))
        self._created = array("q", created)
        self._version = array("I", bytes(4 * len(created)))
        self._unknown = array("B", bytes(len(created)))
        # Paging order: indices sorted by (created, id), with the created seconds in a
        # parallel array so a date range is two bisects.
        order = sorted(range(len(created)), key=created.__getitem__)
        self._order = array("q", self._sort_ties(order))
        self._order_created = array("q", (created[i] for i in self._order))

    @staticmethod
    def _edge_case_seconds(start: int, end: int) -> list[int]:
        out: list[int] = []
        first_midnight = -(-start // DAY) * DAY
        for k in range(10):
            midnight = first_midnight + k * DAY
            if midnight >= end:
                break
            out.append(midnight)
            if midnight - 1 >= start:
                out.append(midnight - 1)
        tie_seconds = (
            start,
            first_midnight if first_midnight < end else start + (end - start) // 2,
            start + (end - start) // 3,
            end - 1,
        )
        for second in tie_seconds:
            out.extend([second] * 3)
        return out

    def _sort_ties(self, order: list[int]) -> list[int]:
        """Sort runs of equal created seconds by id (ids are computed only for ties)."""
        created = self._created
        i = 0
        while i < len(order):
            j = i + 1
            while j < len(order) and created[order[j]] == created[order[i]]:
                j += 1
            if j - i > 1:
                order[i:j] = sorted(order[i:j], key=self.id_of)
            i = j
        return order

    # -- basic accessors ------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._created)

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def start(self) -> int:
        return self._start

    @property
    def end(self) -> int:
        return self._end

    @property
    def campaigns(self) -> tuple[tuple[str, str], ...]:
        """``(id, name)`` of the campaigns customers belong to (for filter tests)."""
        return self._gen.campaigns

    @property
    def customer_groups(self) -> tuple[tuple[str, str], ...]:
        """``(id, name)`` of the customer groups in use."""
        return self._gen.groups

    @property
    def products(self) -> tuple[tuple[str, str], ...]:
        """``(id, name)`` of the products customers purchase."""
        return tuple((p[0], p[1]) for p in self._gen.products)

    def id_of(self, index: int) -> str:
        """The customer id of ``index`` (a pure function of seed and index)."""
        return _customer_id(self._seed, index)

    def created_of(self, index: int) -> int:
        with self._lock:
            return self._created[index]

    def cache_len(self) -> int:
        """Number of encoded customers currently in the LRU."""
        with self._lock:
            return len(self._cache)

    # -- objects --------------------------------------------------------------------------

    def customer(self, index: int) -> JSONDict:
        """The full customer object, exactly as the server serves it."""
        result: JSONDict = json.loads(self.customer_bytes(index))
        return result

    def customer_bytes(self, index: int) -> bytes:
        """The JSON bytes the server sends for this customer."""
        with self._lock:
            snap = self._snap(index)
        return self._encoded([snap])[0]

    def _snap(self, index: int) -> _Snap:
        return (index, self._created[index], self._version[index], self._unknown[index])

    def _encoded(self, snaps: list[_Snap]) -> list[bytes]:
        """Encoded customers for the snapshots, via the LRU; generation runs unlocked."""
        out: list[bytes | None] = []
        cache = self._cache
        with self._lock:
            for index, _created, version, unknown in snaps:
                key = (index, version, unknown)
                hit = cache.get(key)
                if hit is not None:
                    cache.move_to_end(key)
                out.append(hit)
        missing = [i for i, b in enumerate(out) if b is None]
        if missing:
            made: list[tuple[tuple[int, int, int], bytes]] = []
            for i in missing:
                index, created, version, unknown = snaps[i]
                obj = self._gen.build(index, created, version, bool(unknown))
                variant = self.messy.get(index)
                data = _encode(obj) if variant is None else _messy.encode(_messy.apply(obj, variant))
                out[i] = data
                made.append(((index, version, unknown), data))
            with self._lock:
                for key, data in made:
                    cache[key] = data
                    cache.move_to_end(key)
                while len(cache) > self._cache_size:
                    cache.popitem(last=False)
        return [b for b in out if b is not None]

    # -- queries --------------------------------------------------------------------------

    def _bounds(self, lo_time: int, hi_time: int) -> tuple[int, int]:
        """Positions in the paging order of customers with lo_time <= created < hi_time."""
        lo = bisect.bisect_left(self._order_created, lo_time)
        hi = bisect.bisect_left(self._order_created, hi_time, lo)
        return lo, max(lo, hi)

    def _matching(self, lo_time: int, hi_time: int, filters: CustomerFilter | None) -> list[int] | None:
        """Indices (ascending order) matching a filter, or None when there is no filter.

        Matching needs the full objects, so results are cached per (range, filter,
        epoch): a client pages through the same query many times.
        """
        if filters is None or filters.is_empty:
            return None
        with self._lock:
            cache_key = (lo_time, hi_time, filters, self._epoch)
            hit = self._query_cache.get(cache_key)
            if hit is not None:
                self._query_cache.move_to_end(cache_key)
                return hit
            lo, hi = self._bounds(lo_time, hi_time)
            snaps = [self._snap(i) for i in self._order[lo:hi]]
        matched: list[int] = []
        for snap, data in zip(snaps, self._encoded(snaps), strict=True):
            if filters.matches(json.loads(data)):
                matched.append(snap[0])
        with self._lock:
            self._query_cache[cache_key] = matched
            while len(self._query_cache) > 16:
                self._query_cache.popitem(last=False)
        return matched

    def query(
        self,
        date_start: int,
        date_end: int,
        *,
        end_inclusive: bool,
        filters: CustomerFilter | None = None,
        order: str = "desc",
    ) -> list[int]:
        """Indices of the customers in the range, in paging order.

        ``order="desc"`` is newest first (the exact reverse of ``"asc"``: created
        descending, then id descending); ``"asc"`` is oldest first, ties by id.
        """
        _check_order(order)
        hi_time = date_end + 1 if end_inclusive else date_end
        matched = self._matching(date_start, hi_time, filters)
        if matched is None:
            with self._lock:
                lo, hi = self._bounds(date_start, hi_time)
                matched = list(self._order[lo:hi])
        return matched[::-1] if order == "desc" else list(matched)

    def page(
        self,
        date_start: int,
        date_end: int,
        *,
        end_inclusive: bool,
        filters: CustomerFilter | None = None,
        order: str = "desc",
        offset: int,
        limit: int,
    ) -> tuple[int, list[bytes]]:
        """``(total_count, encoded customers of the page)`` from one consistent snapshot."""
        _check_order(order)
        hi_time = date_end + 1 if end_inclusive else date_end
        matched = self._matching(date_start, hi_time, filters)
        with self._lock:
            if matched is None:
                lo, hi = self._bounds(date_start, hi_time)
                total = hi - lo
                # Only the page's slice of the order is touched: no per-request list of
                # every matching index.
                indices: list[int] = []
                if offset < total and order == "asc":
                    indices = list(self._order[lo + offset : min(hi, lo + offset + limit)])
                elif offset < total:
                    top = hi - offset
                    indices = list(self._order[max(lo, top - limit) : top])[::-1]
            else:
                total = len(matched)
                seq = matched if order == "asc" else matched[::-1]
                indices = seq[offset : offset + limit]
            snaps = [self._snap(i) for i in indices]
        return total, self._encoded(snaps)

    def truth(
        self, start: int, end: int, filters: CustomerFilter | None = None, *, exact: bool = False
    ) -> list[JSONDict]:
        """Customers with ``start <= created_date_unix < end`` (half-open), oldest first,
        each exactly as served: what a correct client must end up with.

        ``exact=True`` reads numbers with a fraction or exponent as ``Decimal`` (the messy values'
        text survives); the default reads them as floats."""
        parse_float = Decimal if exact else float
        return [json.loads(b, parse_float=parse_float) for b in self.truth_bytes(start, end, filters)]

    def truth_bytes(self, start: int, end: int, filters: CustomerFilter | None = None) -> list[bytes]:
        """Like :meth:`truth`, as the encoded bytes (one JSON object each, no newline)."""
        indices = self.query(start, end, end_inclusive=False, filters=filters, order="asc")
        with self._lock:
            snaps = [self._snap(i) for i in indices]
        return self._encoded(snaps)

    # -- changes --------------------------------------------------------------------------

    def add_customers(self, n: int, date_start: int, date_end: int, *, seed: int) -> list[str]:
        """Insert ``n`` new customers created in ``[date_start, date_end)``; return their ids.

        Deterministic given the store's prior state: the seconds come from ``seed``,
        the content and id from the new customer's index.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if date_end <= date_start:
            raise ValueError(f"date_end ({date_end}) must be greater than date_start ({date_start})")
        with self._lock:
            draw = _rng(self._seed, seed, len(self._created), _SALT_ADD).random
            ids: list[str] = []
            for _ in range(n):
                second = date_start + int(draw() * (date_end - date_start))
                index = len(self._created)
                self._created.append(second)
                self._version.append(0)
                self._unknown.append(0)
                new_id = self.id_of(index)
                # Insert after every customer of an earlier second and among the
                # customers of the same second by id.
                pos = bisect.bisect_left(self._order_created, second)
                while (
                    pos < len(self._order)
                    and self._order_created[pos] == second
                    and self.id_of(self._order[pos]) < new_id
                ):
                    pos += 1
                self._order.insert(pos, index)
                self._order_created.insert(pos, second)
                ids.append(new_id)
            self._epoch += 1
            return ids

    def _pick(self, fraction: float, seed: int, salt: int) -> list[int]:
        if not 0.0 <= fraction <= 1.0 or math.isnan(fraction):
            raise ValueError(f"fraction must be within [0, 1], got {fraction}")
        n = len(self._created)
        k = 0 if fraction == 0 or n == 0 else max(1, min(n, round(fraction * n)))
        return sorted(_rng(self._seed, seed, 0, salt).sample(range(n), k))

    def mutate(self, fraction: float, *, seed: int) -> list[str]:
        """Change about ``fraction`` of the customers (a new version each); return their ids.

        A new version has a new sale (lifetime values change), a new note, maybe a
        status change and a new default card, and a later ``updated_date_unix``.
        """
        with self._lock:
            picked = self._pick(fraction, seed, _SALT_PICK_MUTATE)
            for index in picked:
                self._version[index] += 1
            self._epoch += 1
            return [self.id_of(i) for i in picked]

    def add_unknown_fields(self, fraction: float, *, seed: int) -> list[str]:
        """Give about ``fraction`` of the customers fields the spec does not know.

        Top level ``loyalty_tier`` (string) and ``consent`` (object); nested
        ``network`` in each ``customer_card`` item and ``amount_tax`` in
        ``lifetime_value.all``. This models vendor-side schema drift, so
        ``updated_date_unix`` does not change. Returns the ids of the chosen customers.
        """
        with self._lock:
            picked = self._pick(fraction, seed, _SALT_PICK_UNKNOWN)
            for index in picked:
                self._unknown[index] = 1
            self._epoch += 1
            return [self.id_of(i) for i in picked]

    def indices_in_order(self) -> list[int]:
        """All indices, oldest first (ties by id)."""
        with self._lock:
            return list(self._order)


def _check_order(order: str) -> None:
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")
