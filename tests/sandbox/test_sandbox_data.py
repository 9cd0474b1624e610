"""CustomerStore: determinism, spec conformance, edge cases, changes, scale."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import tracemalloc
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from revcent_sandbox import CUSTOMER_FIELDS, ID_ARRAY_FIELDS, CustomerFilter, CustomerStore

DAY = 86_400
START = 1_767_225_600  # 2026-01-01T00:00:00Z
DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
ID20 = re.compile(r"[0-9A-Za-z]{20}")


# --- a small walker over the spec's JSON schema ---------------------------------------------


def _merged(schema: dict[str, Any]) -> dict[str, Any]:
    """An object schema with its allOf parts merged into one properties map."""
    if "allOf" not in schema:
        return schema
    props: dict[str, Any] = {}
    for part in schema["allOf"]:
        props.update(_merged(part).get("properties", {}))
    return {"type": "object", "properties": props}


def _kind(schema: dict[str, Any]) -> str | None:
    return schema.get("type") or ("object" if "properties" in schema else None)


def expected_paths(schema: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Every property path of the schema (``a.b``, ``a[].b``) mapped to its type."""
    schema = _merged(schema)
    out: dict[str, str] = {}
    if _kind(schema) == "object":
        for name, raw in schema.get("properties", {}).items():
            path = f"{prefix}.{name}" if prefix else name
            sub = _merged(raw)
            out[path] = str(_kind(sub))
            out.update(expected_paths(sub, path))
    elif _kind(schema) == "array":
        out.update(expected_paths(schema["items"], prefix + "[]"))
    return out


class Walk:
    """Checks values against the schema, recording which paths were seen and how."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.seen: set[str] = set()
        self.nonempty_arrays: set[str] = set()
        self.numbers: dict[str, list[int | Decimal]] = {}

    def check(self, value: Any, schema: dict[str, Any], path: str = "") -> None:  # noqa: C901, PLR0912 - one branch per JSON Schema keyword
        schema = _merged(schema)
        kind = _kind(schema)
        if kind == "object":
            if not isinstance(value, dict):
                self.errors.append(f"{path}: expected object, got {value!r}")
                return
            props = schema.get("properties", {})
            for key, sub_value in value.items():
                sub_path = f"{path}.{key}" if path else key
                if key not in props:
                    self.errors.append(f"{sub_path}: not in the spec")
                    continue
                self.seen.add(sub_path)
                self.check(sub_value, props[key], sub_path)
        elif kind == "array":
            if not isinstance(value, list):
                self.errors.append(f"{path}: expected array, got {value!r}")
                return
            if value:
                self.nonempty_arrays.add(path)
            for item in value:
                self.check(item, schema["items"], path + "[]")
        elif kind == "string":
            self._string(value, schema, path)
        elif kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                self.errors.append(f"{path}: expected integer, got {value!r}")
        elif kind == "number":
            if not isinstance(value, int | Decimal) or isinstance(value, bool):
                self.errors.append(f"{path}: expected number, got {value!r}")
            else:
                self.numbers.setdefault(path, []).append(value)
        elif kind == "boolean":
            if not isinstance(value, bool):
                self.errors.append(f"{path}: expected boolean, got {value!r}")
        else:
            self.errors.append(f"{path}: schema without a type")

    def _string(self, value: Any, schema: dict[str, Any], path: str) -> None:
        if not isinstance(value, str):
            self.errors.append(f"{path}: expected string, got {value!r}")
            return
        if "minLength" in schema and len(value) < schema["minLength"]:
            self.errors.append(f"{path}: shorter than {schema['minLength']}: {value!r}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            self.errors.append(f"{path}: longer than {schema['maxLength']}: {value!r}")
        if schema.get("minLength") == 20 == schema.get("maxLength") and not ID20.fullmatch(value):
            self.errors.append(f"{path}: not a 20-char alphanumeric id: {value!r}")
        if "enum" in schema and value not in schema["enum"]:
            self.errors.append(f"{path}: {value!r} not in {schema['enum']}")
        if schema.get("format") == "date-time" and not DATE_TIME.fullmatch(value):
            self.errors.append(f"{path}: not an ISO-8601 UTC date-time: {value!r}")


def served(store: CustomerStore) -> list[Any]:
    """Every customer as a client decodes it, floats kept exact as Decimal."""
    return [json.loads(b, parse_float=Decimal) for b in store.truth_bytes(store.start, store.end)]


# --- determinism -------------------------------------------------------------------------------


def _fingerprint(store: CustomerStore) -> str:
    return hashlib.sha256(b"\n".join(store.truth_bytes(store.start, store.end))).hexdigest()


def test_same_seed_gives_identical_bytes() -> None:
    a = CustomerStore(seed=3, count=200, start=START, end=START + 60 * DAY)
    b = CustomerStore(seed=3, count=200, start=START, end=START + 60 * DAY)
    assert a.truth_bytes(a.start, a.end) == b.truth_bytes(b.start, b.end)
    for store in (a, b):
        store.mutate(0.3, seed=5)
        store.add_unknown_fields(0.2, seed=6)
        store.add_customers(7, START + DAY, START + 2 * DAY, seed=8)
    assert a.truth_bytes(a.start, a.end) == b.truth_bytes(b.start, b.end)


def test_different_seed_gives_different_customers() -> None:
    a = CustomerStore(seed=3, count=50, start=START, end=START + 60 * DAY)
    b = CustomerStore(seed=4, count=50, start=START, end=START + 60 * DAY)
    assert {c["id"] for c in a.truth(a.start, a.end)}.isdisjoint(c["id"] for c in b.truth(b.start, b.end))


# The bytes are a pure function of the seed on every supported Python (Random's integer
# seeding, random() and randbytes() are specified). If you change the generator on purpose,
# print _fingerprint(...) for this store and update the value.
GOLDEN_FINGERPRINT = "04863f4acef8527baa706276ae5e172e2db685dc347925470bced78833f42527"


def test_golden_fingerprint_is_stable_across_python_versions() -> None:
    store = CustomerStore(seed=1, count=40, start=START, end=START + 30 * DAY)
    store.mutate(0.5, seed=1)
    store.add_unknown_fields(0.5, seed=2)
    store.add_customers(3, START, START + DAY, seed=3)
    assert _fingerprint(store) == GOLDEN_FINGERPRINT


def test_every_spec_field_appears_and_is_spec_typed(customer_schema: dict[str, Any]) -> None:
    store = CustomerStore(seed=11, count=300, start=START, end=START + 90 * DAY)
    walk = Walk()
    for customer in served(store):
        walk.check(customer, customer_schema)
    assert walk.errors == []
    expected = expected_paths(customer_schema)
    assert set(expected) - walk.seen == set(), "spec fields never generated"
    arrays = {path for path, kind in expected.items() if kind == "array"}
    assert arrays - walk.nonempty_arrays == set(), "array fields never non-empty"
    # The module's own field list is the spec's top level, in order.
    top_level = [p for p in expected if "." not in p and "[]" not in p]
    assert list(CUSTOMER_FIELDS) == top_level
    assert set(ID_ARRAY_FIELDS) == set(customer_schema["allOf"][1]["properties"])


def test_money_has_at_most_two_decimals_and_awkward_values(customer_schema: dict[str, Any]) -> None:
    store = CustomerStore(seed=11, count=300, start=START, end=START + 90 * DAY)
    walk = Walk()
    for customer in served(store):
        walk.check(customer, customer_schema)
    values = [v for numbers in walk.numbers.values() for v in numbers]
    assert values
    too_precise = [v for v in values if isinstance(v, Decimal) and int(v.as_tuple().exponent) < -2]
    assert too_precise == []
    wanted = {
        Decimal(0),
        Decimal("0.1"),
        Decimal("0.2"),
        Decimal("0.3"),
        Decimal("19.99"),
        Decimal("123456.78"),
    }
    assert wanted <= {Decimal(v) for v in values}
    assert any(isinstance(v, int) for v in values), "whole amounts are sent as JSON integers (like JS)"


def test_shapes_absent_empty_unicode(store: CustomerStore) -> None:
    customers = store.truth(store.start, store.end)
    assert any("company" not in c for c in customers)
    assert any(c.get("company") == "" for c in customers)
    assert any("address_line_2" not in c for c in customers)
    assert any(c.get("address_line_2") == "" for c in customers)
    assert any("customer_card" not in c for c in customers)
    assert any(c.get("customer_card") == [] for c in customers)
    assert any("last_sale_date" not in c["lifetime_value"] for c in customers)
    assert any("last_sale_date" in c["lifetime_value"] for c in customers)
    assert any(any(c.get(name) == [] for name in ID_ARRAY_FIELDS) for c in customers)
    assert any(any(name not in c for name in ID_ARRAY_FIELDS) for c in customers)
    text = json.dumps(customers, ensure_ascii=False)
    assert re.search(r"[\u4e00-\u9fff]", text), "CJK"
    assert re.search(r"[\U0001F300-\U0001FAFF]", text), "emoji"
    assert re.search(r"[éüøñ]", text), "accents"
    assert "\u2028" in text, "a line separator inside a note"
    assert any("\n" in n["text"] for c in customers for n in c.get("notes", []))


def test_customer_invariants(store: CustomerStore) -> None:
    customers = store.truth(store.start, store.end)
    assert len(customers) == len(store)
    ids = [c["id"] for c in customers]
    assert len(set(ids)) == len(ids)
    assert all(ID20.fullmatch(i) for i in ids)
    for c in customers:
        assert c["updated_date_unix"] >= c["created_date_unix"]
        assert c["status"] in ("Enabled", "Disabled", "Blocked")
        assert c["enabled"] == (c["status"] == "Enabled")
        assert c["blocked"] == (c["status"] == "Blocked")
        cards = c.get("customer_card") or []
        assert sum(card["is_default"] for card in cards) == (1 if cards else 0)
    assert {c["status"] for c in customers} == {"Enabled", "Disabled", "Blocked"}


def test_customer_is_exactly_what_is_served(store: CustomerStore) -> None:
    for index in (0, 1, 5, len(store) - 1):
        assert json.dumps(store.customer(index), ensure_ascii=False, separators=(",", ":")).encode() == (
            store.customer_bytes(index)
        )
        assert store.customer(index)["id"] == store.id_of(index)


# --- boundaries and ranges ---------------------------------------------------------------------


def test_boundary_customers_and_ties_are_included() -> None:
    end = START + 30 * DAY + 5 * 3600
    store = CustomerStore(seed=2, count=100, start=START + 3600, end=end)
    assert len(store) == 100 + 20 + 12  # documented extras for a range with >= 10 midnights
    created = Counter(c["created_date_unix"] for c in store.truth(store.start, store.end))
    first_midnight = START + DAY
    for k in range(10):
        midnight = first_midnight + k * DAY
        assert created[midnight] >= 1, f"no customer at midnight #{k}"
        assert created[midnight - 1] >= 1, f"no customer at 23:59:59 before midnight #{k}"
    assert created[store.start] >= 3
    assert created[store.end - 1] >= 3
    assert sum(1 for n in created.values() if n >= 3) >= 3


def test_edge_cases_stay_inside_a_short_range() -> None:
    store = CustomerStore(seed=2, count=5, start=START + 10, end=START + 20)
    assert len(store) == 5 + 12  # no midnight inside the range
    assert all(START + 10 <= c["created_date_unix"] < START + 20 for c in store.truth(0, 2 * START))


def test_truth_is_half_open(store: CustomerStore) -> None:
    midnight = store.start + 5 * DAY
    day = store.truth(midnight, midnight + DAY)
    assert day, "midnight customers exist"
    assert min(c["created_date_unix"] for c in day) == midnight
    assert max(c["created_date_unix"] for c in day) == midnight + DAY - 1
    assert all(c["created_date_unix"] != midnight + DAY for c in day)
    whole = store.truth(store.start, store.end)
    split = [c for lo in range(store.start, store.end, 7 * DAY) for c in store.truth(lo, min(lo + 7 * DAY, store.end))]
    assert split == whole
    assert [c["created_date_unix"] for c in whole] == sorted(c["created_date_unix"] for c in whole)


def test_query_orders_and_inclusive_end(store: CustomerStore) -> None:
    lo, hi = store.start + 5 * DAY, store.start + 6 * DAY  # both are midnights with customers
    asc = store.query(lo, hi, end_inclusive=True, order="asc")
    desc = store.query(lo, hi, end_inclusive=True, order="desc")
    assert desc == asc[::-1]
    keys = [(store.created_of(i), store.id_of(i)) for i in asc]
    assert keys == sorted(keys)
    assert store.created_of(asc[-1]) == hi
    exclusive = store.query(lo, hi, end_inclusive=False, order="asc")
    assert all(store.created_of(i) < hi for i in exclusive)
    assert len(asc) - len(exclusive) == sum(1 for i in asc if store.created_of(i) == hi) >= 1


def test_page_slices_match_query(store: CustomerStore) -> None:
    lo, hi = store.start, store.start + 40 * DAY
    for order in ("asc", "desc"):
        expected = [store.customer_bytes(i) for i in store.query(lo, hi, end_inclusive=True, order=order)]
        got: list[bytes] = []
        offset = 0
        while True:
            total, page = store.page(lo, hi, end_inclusive=True, order=order, offset=offset, limit=9)
            assert total == len(expected)
            if not page:
                break
            got.extend(page)
            offset += 9
        assert got == expected


# --- filters -----------------------------------------------------------------------------------


def test_filters_match_definitions(store: CustomerStore) -> None:
    customers = store.truth(store.start, store.end)
    campaign = store.campaigns[0][0]
    group = store.customer_groups[0][0]
    product = store.products[1][0]
    cases: list[tuple[CustomerFilter, Any]] = [
        (CustomerFilter(campaign_ids=frozenset({campaign})), lambda c: c["campaign_id"] == campaign),
        (
            CustomerFilter(customer_group_ids=frozenset({group})),
            lambda c: any(g["id"] == group for g in c.get("customer_group", [])),
        ),
        (
            CustomerFilter(product_ids=frozenset({product})),
            lambda c: any(p["id"] == product for p in c.get("products_purchased", [])),
        ),
        (
            CustomerFilter(statuses=frozenset({"disabled", "fraud"})),
            lambda c: c["status"] == "Disabled" or c["lifetime_value"]["fraud_detection"]["num"] > 0,
        ),
        (
            CustomerFilter(statuses=frozenset({"chargeback"})),
            lambda c: c["lifetime_value"]["chargeback"]["num"] > 0,
        ),
        (
            CustomerFilter(metadata=(("utm_source", "METADATA_NAME_EXISTS"),)),
            lambda c: any(m["name"] == "utm_source" for m in c.get("metadata", [])),
        ),
        (
            CustomerFilter(metadata=(("utm_source", "google"), ("affiliate_id", "METADATA_NAME_EXISTS"))),
            lambda c: (
                any(m == {"name": "utm_source", "value": "google"} for m in c.get("metadata", []))
                and any(m["name"] == "affiliate_id" for m in c.get("metadata", []))
            ),
        ),
    ]
    for flt, predicate in cases:
        expected = [c for c in customers if predicate(c)]
        assert expected, f"no customer for {flt}"
        assert len(expected) < len(customers), f"{flt} matches everything"
        assert store.truth(store.start, store.end, flt) == expected
        total, _ = store.page(store.start, store.end, end_inclusive=False, filters=flt, order="asc", offset=0, limit=25)
        assert total == len(expected)


def test_filter_rejects_unknown_status() -> None:
    with pytest.raises(ValueError, match="statuses"):
        CustomerFilter(statuses=frozenset({"gone"}))


# --- changes -----------------------------------------------------------------------------------


def test_add_customers_inside_range_and_ordered(store: CustomerStore) -> None:
    before = len(store)
    lo, hi = store.start + 10 * DAY, store.start + 10 * DAY + 5
    ids = store.add_customers(20, lo, hi, seed=1)
    assert len(ids) == len(set(ids)) == 20
    assert len(store) == before + 20
    window = {c["id"]: c for c in store.truth(lo, hi)}
    assert set(ids) <= set(window)
    assert all(lo <= window[i]["created_date_unix"] < hi for i in ids)
    order = store.query(store.start, store.end, end_inclusive=False, order="asc")
    keys = [(store.created_of(i), store.id_of(i)) for i in order]
    assert keys == sorted(keys)
    with pytest.raises(ValueError, match="date_end"):
        store.add_customers(1, hi, lo, seed=1)


def test_mutate_changes_only_the_returned_customers(store: CustomerStore) -> None:
    before = {c["id"]: c for c in store.truth(store.start, store.end)}
    changed = store.mutate(0.2, seed=3)
    assert len(changed) == round(0.2 * len(store))
    after = {c["id"]: c for c in store.truth(store.start, store.end)}
    assert set(after) == set(before)
    statuses = 0
    for cid, new in after.items():
        old = before[cid]
        if cid not in changed:
            assert new == old
            continue
        assert new["updated_date_unix"] > old["updated_date_unix"]
        assert new["created_date_unix"] == old["created_date_unix"]
        assert new["lifetime_value"] != old["lifetime_value"]
        assert new["lifetime_value"]["sale"]["num"] == old["lifetime_value"]["sale"]["num"] + 1
        assert len(new["notes"]) == len(old.get("notes", [])) + 1
        assert new["enabled"] == (new["status"] == "Enabled")
        statuses += new["status"] != old["status"]
    assert statuses > 0, "some mutations change the status"
    # Deterministic, and a second mutation moves the customer again.
    twin = CustomerStore(seed=7, count=300, start=store.start, end=store.end)
    assert twin.mutate(0.2, seed=3) == changed
    assert twin.truth_bytes(twin.start, twin.end) == store.truth_bytes(store.start, store.end)
    again = store.mutate(1.0, seed=4)
    assert len(again) == len(store)
    assert all(
        c["updated_date_unix"] > after[c["id"]]["updated_date_unix"] for c in store.truth(store.start, store.end)
    )


def test_mutate_validates_fraction(store: CustomerStore) -> None:
    assert store.mutate(0.0, seed=1) == []
    with pytest.raises(ValueError, match="fraction"):
        store.mutate(1.5, seed=1)


def test_add_unknown_fields(store: CustomerStore, customer_schema: dict[str, Any]) -> None:
    before = {c["id"]: c for c in store.truth(store.start, store.end)}
    chosen = set(store.add_unknown_fields(0.25, seed=9))
    assert len(chosen) == round(0.25 * len(store))
    for c in store.truth(store.start, store.end):
        walk = Walk()
        walk.check(json.loads(json.dumps(c), parse_float=Decimal), customer_schema)
        if c["id"] not in chosen:
            assert c == before[c["id"]]
            assert walk.errors == []
            continue
        assert c["loyalty_tier"] in ("bronze", "silver", "gold", "platinum")
        assert isinstance(c["consent"], dict)
        assert c["lifetime_value"]["all"]["amount_tax"] == 1.5
        assert all("network" in card for card in c.get("customer_card", []))
        assert c["updated_date_unix"] == before[c["id"]]["updated_date_unix"]
        unknown = {e.split(":")[0] for e in walk.errors}
        assert {"loyalty_tier", "consent", "lifetime_value.all.amount_tax"} <= unknown
    assert any(c.get("customer_card") for c in store.truth(store.start, store.end) if c["id"] in chosen)


def test_concurrent_reads_and_writes_are_safe(store: CustomerStore) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                total, page = store.page(store.start, store.end, end_inclusive=True, order="desc", offset=0, limit=25)
                assert total >= len(page) == 25
                for raw in page:
                    json.loads(raw)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(20):
        store.mutate(0.05, seed=i)
        store.add_customers(2, store.start, store.end, seed=i)
        store.add_unknown_fields(0.02, seed=i)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert errors == []
    order = store.query(store.start, store.end, end_inclusive=False, order="asc")
    # 31 extras: the range starts at a midnight, so one 23:59:59 customer falls outside it.
    assert len(order) == len(store) == 300 + 31 + 40


# --- scale -------------------------------------------------------------------------------------


def _count_builds(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """How many times each customer (by index) is generated from here on."""
    from revcent_sandbox import data

    built: Counter[int] = Counter()
    original = data._Generator.build

    def build(self: Any, index: int, *args: Any) -> Any:
        built[index] += 1
        return original(self, index, *args)

    monkeypatch.setattr(data._Generator, "build", build)
    return built


def test_large_store_is_cheap_and_pages_are_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    built = _count_builds(monkeypatch)
    tracemalloc.start()
    try:
        store = CustomerStore(seed=5, count=100_000, start=START, end=START + 365 * DAY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(store) == 100_031  # + 10 midnights, 9 previous-day 23:59:59, 12 ties
    assert peak < 40 * 1024 * 1024, f"building 100k customers peaked at {peak / 2**20:.1f} MiB"
    assert not built, "a store generates customers only when they are read"
    lo, hi = START + 100 * DAY, START + 190 * DAY
    # The first pass generates and caches its 25 customers; later passes only join cached bytes.
    store.page(lo, hi, end_inclusive=True, order="desc", offset=0, limit=25)
    assert sum(built.values()) == len(built) == 25
    for _ in range(200):
        total, page = store.page(lo, hi, end_inclusive=True, order="desc", offset=0, limit=25)
    assert total > 20_000
    assert len(page) == 25
    assert sum(built.values()) == 25


def test_each_customer_is_generated_once_while_it_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    built = _count_builds(monkeypatch)
    store = CustomerStore(seed=5, count=2_000, start=START, end=START + 90 * DAY)
    first = [store.customer_bytes(index) for index in range(1_000)]
    assert [store.customer_bytes(index) for index in range(1_000)] == first
    assert built == Counter(range(1_000))


def test_lru_is_bounded() -> None:
    store = CustomerStore(seed=5, count=500, start=START, end=START + 30 * DAY, cache_size=100)
    store.truth_bytes(store.start, store.end)
    assert store.cache_len() == 100
