"""The sandbox's messy-values mode: deterministic by seed, sent as exact JSON text, in the truth."""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.request import Request, urlopen

import pytest

from revcent_sandbox import CustomerStore, SandboxServer
from revcent_sandbox.messy import LANDING_VARIANTS, OUT_OF_RANGE_VARIANTS

START, END = 1_767_225_600, 1_767_225_600 + 30 * 86_400


def store(mode: str, seed: int = 3) -> CustomerStore:
    return CustomerStore(seed=seed, count=60, start=START, end=END, messy=mode)


def test_default_mode_sends_no_messy_values():
    assert store("none").messy == {}
    assert CustomerStore(seed=3, count=60, start=START, end=END).messy == {}


def test_each_variant_has_its_own_customer_chosen_by_seed():
    landing = store("landing")
    assert sorted(landing.messy.values()) == sorted(LANDING_VARIANTS)
    assert landing.messy == store("landing").messy  # same seed, same customers
    assert landing.messy != store("landing", seed=4).messy
    every = store("out-of-range").messy
    assert sorted(every.values()) == sorted(LANDING_VARIANTS + OUT_OF_RANGE_VARIANTS)
    with pytest.raises(ValueError, match="messy must be one of"):
        store("chaos")


def test_values_are_sent_as_exact_text_and_lone_surrogates_as_escapes():
    s = store("out-of-range")
    by_variant = {v: s.customer_bytes(i) for i, v in s.messy.items()}
    assert b'"first_name":"Ana \\ud83d Lima"' in by_variant["surrogate"]
    by_variant["surrogate"].decode("utf-8")  # the bytes are valid UTF-8; the escape is the problem
    money = by_variant["money"]
    for text in (b"33.333333333333336", b"0.30000000000000004", b"1e-7", b"2.5E+3", b"12345678901234567890.12",
                 b"99999999999999999999999999999.999999999", b"9223372036854775807", b"-9223372036854775808"):
        assert text in money
    assert b'"last_sale_date":"0001-01-01T00:00:00Z"' in by_variant["dates"]
    assert b'"2016-12-31T23:59:60Z"' in by_variant["dates2"] and b'"last_sale_date":"   "' in by_variant["dates3"]
    assert b"9223372036854775808" in by_variant["big_integer"]
    assert b'"0001-01-01T00:00:00+01:00"' in by_variant["early_timestamp"]


@pytest.mark.integration
def test_the_truth_endpoint_returns_the_bytes_the_api_sent():
    s = store("landing")
    with SandboxServer(s, api_key="k") as server:
        request = Request(f"{server.url}/v2/customers?date_start={START}&date_end={END}&page=1&limit=25",
                          headers={"x-api-key": "k"})
        served: dict[str, bytes] = {}
        page = 1
        while True:
            with urlopen(request) as response:
                body = json.loads(response.read(), parse_float=Decimal)
            served.update({c["id"]: json.dumps(c, default=str).encode() for c in body["results"]})
            if page >= body["total_pages"]:
                break
            page += 1
            request = Request(request.full_url.replace(f"page={page - 1}", f"page={page}"), headers={"x-api-key": "k"})
        with urlopen(f"{server.url}/_sandbox/truth?date_start={START}&date_end={END + 1}") as response:
            truth = response.read().splitlines()
    assert set(truth) == {s.customer_bytes(i) for i in range(len(s))}
    exact = {c["id"]: c for c in s.truth(START, END + 1, exact=True)}
    money = exact[s.id_of(next(i for i, v in s.messy.items() if v == "money"))]
    assert money["lifetime_value"]["all"]["amount_total"] == Decimal("12345678901234567890.12")
    assert set(served) == set(exact)
