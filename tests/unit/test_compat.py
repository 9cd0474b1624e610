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


class _Odd(Exception):
    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def test_failing_fast_raises_the_same_error_as_one_the_task_runner_does_not_retry():
    fail = compat._fail_exception()
    with pytest.raises(_Odd) as info, compat.failing_fast((_Odd,), enabled=True):
        raise _Odd("bad input: x", field="x")
    assert isinstance(info.value, fail)
    assert str(info.value) == "bad input: x" and info.value.field == "x"
    assert type(info.value).__name__ == "_Odd"


def test_failing_fast_leaves_errors_alone_where_a_retry_policy_decides_or_others():
    fail = compat._fail_exception()
    with pytest.raises(_Odd) as info, compat.failing_fast((_Odd,), enabled=False):
        raise _Odd("x", field="x")
    assert not isinstance(info.value, fail)
    with pytest.raises(KeyError) as other, compat.failing_fast((_Odd,), enabled=True):
        raise KeyError("k")
    assert not isinstance(other.value, fail)


def test_the_fail_exception_is_the_one_this_airflows_task_runner_catches():
    import inspect

    from airflow.sdk.execution_time import task_runner

    source = inspect.getsource(task_runner)
    module = "airflow.sdk.exceptions" if compat._sdk_version() >= (1, 2) else "airflow.exceptions"
    assert "except (AirflowFailException" in source
    imported = __import__(module, fromlist=["AirflowFailException"]).AirflowFailException
    assert compat._fail_exception() is imported


def test_retry_policies_are_detected_as_the_sdk_has_them():
    try:
        from airflow.sdk import ExceptionRetryPolicy  # noqa: F401 - only whether it imports
        expected = True
    except ImportError:
        expected = False
    assert compat.has_retry_policies() is expected


def test_failing_fast_keeps_a_permanent_bigquery_failures_reason_and_job():
    from airflow_revcent.exceptions import RevCentBigQueryPermanentError

    error = RevCentBigQueryPermanentError("BigQuery job j failed", reason="invalidQuery", job_id="j")
    with pytest.raises(RevCentBigQueryPermanentError) as info, compat.failing_fast((RevCentBigQueryPermanentError,),
                                                                                   enabled=True):
        raise error
    assert isinstance(info.value, compat._fail_exception())
    assert (str(info.value), info.value.reason, info.value.job_id) == ("BigQuery job j failed", "invalidQuery", "j")
