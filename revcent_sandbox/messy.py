"""Values a real API sends, for a few customers (``CustomerStore(messy=...)``, ``--messy-values``).

Mode ``"landing"`` sends values a correct pipeline must land (a run succeeds):

* ``surrogate``: lone surrogate escapes inside otherwise normal strings (``"Ana \\ud83d Lima"``,
  a JavaScript string cut inside an emoji), in a top-level field and in a note;
* ``dates``: year 1 and year 9999, offsets near both ends that stay in range once in UTC, leap
  seconds, a whitespace-only date string;
* ``money``: float artifacts (``33.333333333333336``, ``0.30000000000000004``), exponent forms
  (``1e-7``, ``2.5E+3``), very large decimals (``12345678901234567890.12``, 29 integer digits and 9
  places), integers at the INT64 bounds.

Mode ``"out-of-range"`` adds customers whose values no BigQuery column can hold (a pipeline must
report them as data errors naming customer and field): an integer beyond INT64, a money amount
with 30 integer digits, a date-time before 0001-01-01 UTC once its offset is applied.

Which customers carry which values is a function of the seed; :func:`encode` writes the exact JSON
text (numbers as given, surrogates as ``\\uXXXX`` escapes), and the truth endpoint returns the same
bytes.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any, Final

MESSY_MODES: Final = ("none", "landing", "out-of-range")
LANDING_VARIANTS: Final = ("surrogate", "dates", "dates1", "dates2", "dates3", "money")
OUT_OF_RANGE_VARIANTS: Final = ("big_integer", "big_numeric", "early_timestamp")


class Raw(str):
    """A JSON number written exactly as this text."""

    __slots__ = ()


def pick(seed: int, candidates: range, mode: str) -> dict[int, str]:
    """Which customer index carries which variant (deterministic by seed).

    :param seed: the store's seed.
    :param candidates: indices that may be chosen (the generated customers after the fixed profiles).
    :param mode: one of :data:`MESSY_MODES`.
    """
    if mode not in MESSY_MODES:
        raise ValueError(f"messy must be one of {', '.join(MESSY_MODES)}, got {mode!r}")
    variants = {"none": (), "landing": LANDING_VARIANTS,
                "out-of-range": LANDING_VARIANTS + OUT_OF_RANGE_VARIANTS}[mode]
    if len(candidates) < len(variants):
        return {}
    chosen = random.Random(seed * 7919 + 17).sample(candidates, len(variants))
    return dict(zip(chosen, variants, strict=True))


def apply(obj: dict[str, Any], variant: str) -> dict[str, Any]:
    """Put one variant's values into a built customer (in place; returns it).

    :param obj: the customer as built.
    :param variant: a name from :data:`LANDING_VARIANTS` or :data:`OUT_OF_RANGE_VARIANTS`.
    """
    if variant.startswith("dates"):
        sale, renewal = DATE_PAIRS[int(variant[5:] or 0)]
        lifetime = obj.setdefault("lifetime_value", {})
        lifetime["last_sale_date"] = sale
        lifetime["last_subscription_renewal_date"] = renewal
        return obj
    lifetime = obj.setdefault("lifetime_value", {})
    if variant == "surrogate":
        obj["first_name"] = "Ana \ud83d Lima"
        obj["last_name"] = "Zo\u00eb \ud83d\ude80 ok \ude80"  # a valid pair, then a lone low surrogate
        obj["notes"] = [*(obj.get("notes") or []), {"id": "N" * 20, "text": "cut \ud83d", "created_date_unix": 1,
                                                     "updated_date_unix": 1}]
    elif variant == "money":
        lifetime["sale"] = {**lifetime.get("sale", {}), "avg": Raw("33.333333333333336"),
                            "amount_gross": Raw("0.30000000000000004"),
                            "num": 9223372036854775807}
        lifetime["subscription_renewal"] = {**lifetime.get("subscription_renewal", {}), "avg": Raw("1e-7"),
                                            "amount_net": Raw("2.5E+3"), "num_overdue": -9223372036854775808}
        lifetime["chargeback"] = {**lifetime.get("chargeback", {}), "avg": Raw("0.0000000005")}
        lifetime["all"] = {**lifetime.get("all", {}), "amount_total": Raw("12345678901234567890.12"),
                           "amount_gross": Raw("99999999999999999999999999999.999999999")}
    elif variant == "big_integer":
        lifetime["sale"] = {**lifetime.get("sale", {}), "num": 9223372036854775808}
    elif variant == "big_numeric":
        lifetime["all"] = {**lifetime.get("all", {}), "amount_total": Raw("100000000000000000000000000000")}
    elif variant == "early_timestamp":
        lifetime["last_sale_date"] = "0001-01-01T00:00:00+01:00"
    else:
        raise ValueError(f"unknown messy variant {variant!r}")
    return obj


#: The date values, one pair per customer (``dates`` takes the first, ``datesN`` the others):
#: (last_sale_date, last_subscription_renewal_date).
DATE_PAIRS: Final = (
    ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"),
    ("0001-01-01T00:30:00-01:00", "9999-12-31T23:00:00+01:00"),  # near the ends, in range in UTC
    ("2016-12-31T23:59:60Z", "2016-12-31T23:59:60.500Z"),  # leap seconds
    ("   ", "0099-05-06T07:08:09.5Z"),  # whitespace-only; a 2-digit year padded
)


_PLACEHOLDER = re.compile(r'"\\u0000RAW(\d+)\\u0000"')


def encode(obj: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as a JavaScript API writes it, with :class:`Raw` numbers written as given and
    lone surrogates as ``\\uXXXX`` escapes (what ``JSON.stringify`` sends for them).

    :param obj: the customer.
    """
    raws: list[str] = []

    def mark(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(str(value))
            return f"\x00RAW{len(raws) - 1}\x00"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(obj), ensure_ascii=False, separators=(",", ":"))
    text = _PLACEHOLDER.sub(lambda m: raws[int(m.group(1))], text)
    return text.encode("utf-8", "backslashreplace")
