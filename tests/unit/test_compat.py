from __future__ import annotations

import pytest

from airflow_revcent import compat


@pytest.mark.parametrize(("sdk", "multiplier", "expected"), [
    ((1, 1), 2.0, True), ((1, 1), 0, False), ((1, 2), 2.0, 2.0), ((1, 3), 3.0, 3.0), ((2, 0), 0, 0),
])
def test_exponential_backoff_is_a_bool_on_airflow_3_1_and_a_multiplier_after(monkeypatch, sdk, multiplier, expected):
    monkeypatch.setattr(compat, "_sdk_version", lambda: sdk)
    value = compat.exponential_backoff(multiplier)
    assert value == expected and type(value) is type(expected)


def test_the_installed_task_sdk_version_is_read():
    major, minor = compat._sdk_version()
    assert major >= 1 and minor >= 1
