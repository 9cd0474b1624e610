"""JSON text in and out, without losing what the API sent (pure: no Airflow, no Google).

Reading: :func:`loads` is the standard library's parser with ``parse_float=Decimal``, so every
number with a fraction or an exponent is the exact decimal of its text (``12345678901234567890.12``
stays that, ``1e-7`` is ``Decimal('1E-7')``); integers are Python ints of any size. ``NaN`` and
``Infinity`` are not JSON and are refused. orjson is not used to read pages: it reads numbers as
binary floats and rejects a whole page for one lone surrogate escape (``"\\ud83d"``).

Lone surrogates: a valid pair of escapes becomes one character when parsed; a lone one cannot be
encoded as UTF-8 (BigQuery refuses it). :func:`repair_surrogates` replaces each by U+FFFD in
strings and in object keys, and says where it did (customer id, field path).

Writing: :func:`dumps` is orjson (sorted keys, no spaces, UTF-8) with a ``Decimal`` written as the
plain decimal text of its value (:func:`decimal_text`, never an exponent): as a JSON number when the
nearest double is the same value (``19.99``, ``0.0000001``: any reader gets it exactly, and such
rows hash as they did before decimals), otherwise as a JSON string of that text
(``"12345678901234567890.12"``), which BigQuery's NDJSON loader reads exactly for NUMERIC and
BIGNUMERIC, while a reader that parses numbers through a double would not. Integers beyond 64
bits (orjson refuses them, and BigQuery's JSON type holds none of them exactly) are written as JSON
strings of their digits too. An INTEGER column's value beyond +-(2**53 - 1) is a JSON string of its
digits (:func:`int64_value`): BigQuery's JSON loader asks for that, since a reader that parses
numbers as doubles would corrupt it; values in a JSON column stay numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

#: Every surrogate code point. After parsing, paired escapes are already one character, so any match
#: is a lone surrogate.
_SURROGATE = re.compile("[\ud800-\udfff]")
#: An escape that may be a surrogate (``\\uD800``..``\\uDFFF``): found in the raw bytes at C speed,
#: so pages without one are never walked.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
REPLACEMENT = "\ufffd"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decoder = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse_constant)


def loads(content: bytes | str) -> Any:
    """Parse JSON text exactly: decimals as ``Decimal``, integers as ``int``.

    :param content: UTF-8 bytes (a body that is not valid UTF-8 is refused) or text.
    :raises ValueError: the text is not JSON (``json.JSONDecodeError`` and ``UnicodeDecodeError`` are
        both ``ValueError``).
    """
    text = content.decode("utf-8") if isinstance(content, bytes | bytearray) else content
    return _decoder.decode(text)


def may_have_surrogates(content: bytes) -> bool:
    """Whether raw JSON bytes contain an escape that can be a surrogate (cheap pre-check).

    :param content: the raw body.
    """
    return _SURROGATE_ESCAPE.search(content) is not None


def repair_surrogates(value: Any, path: str, found: Callable[[str], None]) -> Any:
    """``value`` with every lone surrogate replaced by U+FFFD, in strings and object keys, in place
    where it can be; ``found(path)`` is called once per repaired string or key.

    :param value: a parsed JSON value.
    :param path: its dotted path (array positions written ``[]``).
    :param found: called with the path of each repaired value.
    """
    kind = type(value)
    if kind is str:
        if _SURROGATE.search(value) is None:
            return value
        found(path)
        return _SURROGATE.sub(REPLACEMENT, value)
    if kind is list:
        for i, item in enumerate(value):
            value[i] = repair_surrogates(item, f"{path}[]", found)
        return value
    if kind is dict:
        renamed = [k for k in value if _SURROGATE.search(k) is not None]
        for key in renamed:
            fixed = _SURROGATE.sub(REPLACEMENT, key)
            found(f"{path}.{fixed}" if path else fixed)
            value[fixed] = value.pop(key)
        for key, item in value.items():
            value[key] = repair_surrogates(item, f"{path}.{key}" if path else key, found)
        return value
    return value


#: The largest integer below which a double holds every integer (``2**53 - 1``, JavaScript's
#: ``Number.MAX_SAFE_INTEGER``): BigQuery's JSON loader asks for INT64 values beyond +-this as strings.
MAX_EXACT_JSON_INT = (1 << 53) - 1


def int64_value(value: int) -> int | str:
    """An INTEGER column's value as its NDJSON text needs it: the int itself within +-(2**53 - 1), else the
    string of its digits, which BigQuery's loader reads exactly for INT64.

    :param value: an integer (within INT64: the caller checks the range).
    """
    return value if -MAX_EXACT_JSON_INT <= value <= MAX_EXACT_JSON_INT else str(value)


def decimal_text(value: Decimal) -> str:
    """The plain decimal text of a finite ``Decimal``: no exponent, the places it has
    (``Decimal('1E-7')`` -> ``0.0000001``, ``Decimal('20.0')`` -> ``20.0``, ``Decimal('1E+2')`` -> ``100``).

    :param value: a finite decimal.
    """
    return format(value, "f")


def _default(value: Any) -> Any:
    if type(value) is Decimal:
        text = decimal_text(value)
        return orjson.Fragment(text) if _exact_double(value) else text
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_SORTED = orjson.OPT_SORT_KEYS


def _exact_double(value: Decimal) -> bool:
    """Whether the double nearest ``value`` has the same value (so a JSON number loses nothing)."""
    number = float(value)
    return number not in (float("inf"), float("-inf")) and Decimal(repr(number)) == value


def dumps(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8, decimals exact, floats in shortest form.

    :param value: a JSON value (Decimals and ints of any size allowed).
    """
    try:
        return orjson.dumps(value, default=_default, option=_SORTED)
    except orjson.JSONEncodeError:
        # An integer beyond 64 bits (orjson refuses them): write such integers as strings of their digits.
        return orjson.dumps(_big_ints(value), default=_default, option=_SORTED)


def _big_ints(value: Any) -> Any:
    kind = type(value)
    if kind is int and not -(1 << 63) <= value < (1 << 64):
        return str(value)
    if kind is list:
        return [_big_ints(v) for v in value]
    if kind is dict:
        return {k: _big_ints(v) for k, v in value.items()}
    return value
