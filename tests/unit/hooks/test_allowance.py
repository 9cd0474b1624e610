"""The pace one task takes from an account allowance shared through a pool."""

from __future__ import annotations

import pytest

from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.hooks.revcent import account_share


@pytest.mark.parametrize(("account", "slots", "own", "expected"),
                         [(20, 4, 10, 5), (20, 4, 2, 2), (20, 4, 0, 5), (None, None, 10, 10), (20, None, 0, 20)])
def test_the_pace_is_the_account_rate_divided_by_the_pool_slots(account, slots, own, expected):
    assert account_share(own, account, slots) == expected


@pytest.mark.parametrize(("account", "slots"), [(0, 2), ("x", 2), (10, 0), (10, 1.5)])
def test_a_bad_allowance_names_the_extra(account, slots):
    with pytest.raises(RevCentConfigError, match="account_"):
        account_share(10, account, slots)
