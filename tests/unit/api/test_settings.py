"""The connection's fields as settings: defaults, extras, options over extras, the key, the shared allowance."""

from __future__ import annotations

import logging

import pytest

from airflow_revcent.api.options import RequestOptions
from airflow_revcent.api.settings import HookSettings, account_share
from airflow_revcent.exceptions import RevCentConfigError

KEY = "rc-unit-key-0123456789"


def build(extra=None, *, host=None, port=None, password=KEY, options=None):
    return HookSettings.from_connection("revcent_default", host=host, port=port, password=password, extra=extra,
                                        options=options)


@pytest.mark.parametrize(("account", "slots", "own", "expected"),
                         [(20, 4, 10, 5), (20, 4, 2, 2), (20, 4, 0, 5), (None, None, 10, 10), (20, None, 0, 20)])
def test_the_pace_is_the_account_rate_divided_by_the_pool_slots(account, slots, own, expected):
    assert account_share(own, account, slots) == expected


@pytest.mark.parametrize(("account", "slots"), [(0, 2), ("x", 2), (10, 0), (10, 1.5)])
def test_a_bad_allowance_names_the_extra(account, slots):
    with pytest.raises(RevCentConfigError, match="account_"):
        account_share(10, account, slots)


def test_an_empty_connection_means_the_defaults_and_nothing_to_log():
    settings, notes = build()
    assert settings == HookSettings(
        base_url="https://api.revcent.com", api_key=KEY, max_concurrency=4, max_requests_per_second=10.0,
        connect_timeout=10.0, read_timeout=60.0, request_timeout=120.0, stall_timeout=None, retry_max_attempts=8,
        retry_max_seconds=600.0, retry_initial_backoff=1.0, verify=True,
    )
    assert notes == []
    assert settings.stall_seconds == 600 + 120 + 60 + 10 + 60


def test_extras_are_read_as_text_or_numbers_and_the_old_prefix_still_works():
    settings, _ = build({"max_concurrency": "6", "extra__revcent__read_timeout": 5, "stall_timeout": "30",
                         "verify": "no", "retry_max_attempts": 2.0}, host="http://127.0.0.1", port=8089)
    assert settings.base_url == "http://127.0.0.1:8089"
    assert (settings.max_concurrency, settings.read_timeout, settings.retry_max_attempts) == (6, 5.0, 2)
    assert settings.stall_timeout == settings.stall_seconds == 30.0
    assert settings.verify is False


def test_timeout_sets_both_timeouts_unless_one_is_given():
    settings, _ = build({"timeout": 7, "read_timeout": 3})
    assert (settings.connect_timeout, settings.read_timeout) == (7.0, 3.0)


def test_options_win_over_the_extras_of_the_same_name():
    settings, _ = build({"max_concurrency": 8, "read_timeout": 5, "retry_max_seconds": 9},
                        options=RequestOptions(max_concurrency=2, read_timeout=1.5))
    assert (settings.max_concurrency, settings.read_timeout, settings.retry_max_seconds) == (2, 1.5, 9.0)


def test_unknown_extras_tls_off_and_a_shared_allowance_are_reported_for_the_log():
    settings, notes = build({"X-Custom": "leak?", "verify": False, "account_requests_per_second": 20,
                             "account_pool_slots": 4})
    assert settings.max_requests_per_second == 5.0
    levels = [level for level, _, _ in notes]
    texts = [message % args for _, message, args in notes]
    assert levels == [logging.WARNING, logging.INFO, logging.WARNING]
    assert "does not use (ignored, never sent): X-Custom" in texts[0]
    assert "Pacing at 5 requests/s" in texts[1]
    assert "TLS certificate verification is OFF for connection 'revcent_default'" in texts[2]


@pytest.mark.parametrize(("password", "text"), [
    ("", "has no API key: put your RevCent API key in its password field"),
    (None, "has no API key"),
    ("abc def", "spaces, line breaks or other unprintable characters"),
    ("abc\ndef", "pasted across lines"),
])
def test_a_missing_or_mangled_key_is_a_clear_error_that_never_quotes_it(password, text):
    with pytest.raises(RevCentConfigError, match=text) as info:
        build(password=password)
    assert (password or "@@") not in str(info.value)


def test_the_key_is_stripped_and_never_shown_by_repr():
    settings, _ = build(password=f"  {KEY}\n")
    assert settings.api_key == KEY
    assert KEY not in repr(settings) and "api_key=***" in repr(settings)


@pytest.mark.parametrize(("extra", "name"), [
    ({"max_concurrency": 0}, "max_concurrency"), ({"max_concurrency": 1.5}, "max_concurrency"),
    ({"read_timeout": "soon"}, "read_timeout"), ({"connect_timeout": 0}, "connect_timeout"),
    ({"retry_max_attempts": 0}, "retry_max_attempts"), ({"max_requests_per_second": -1}, "max_requests_per_second"),
    ({"stall_timeout": float("nan")}, "stall_timeout"), ({"verify": "maybe"}, "verify"),
])
def test_a_bad_extra_is_refused_naming_it(extra, name):
    with pytest.raises(RevCentConfigError, match=f"^{name}="):
        build(extra)


def test_a_host_that_is_not_http_is_refused():
    with pytest.raises(RevCentConfigError, match="not an http"):
        build(host="ftp://api.revcent.com")


def test_a_login_is_reported_as_ignored_and_never_becomes_the_key():
    settings, notes = HookSettings.from_connection("revcent_default", host=None, port=None, password=KEY,
                                                   extra=None, login="someone")
    assert settings.api_key == KEY
    assert [(level, args) for level, _, args in notes] == [(logging.WARNING, ("revcent_default",))]
    assert "login" in notes[0][1] and "x-api-key" in notes[0][1]


def test_openapi_spec_is_read_from_the_extras_and_checked():
    assert build()[0].openapi_spec is None
    assert build({"openapi_spec": " /srv/openapi.json "})[0].openapi_spec == "/srv/openapi.json"
    assert build({"openapi_spec": "/srv/openapi.json"})[1] == []  # a known extra: no "unused extra" note
    for bad in ("", 3):
        with pytest.raises(RevCentConfigError, match="openapi_spec"):
            build({"openapi_spec": bad})
