"""The operator without servers: construction reads nothing, static arguments are checked once, the
deprecated separate arguments still work, and bad input fails without a retry on every Airflow line."""

from __future__ import annotations

import warnings
from datetime import timedelta

import pytest
from airflow.exceptions import AirflowProviderDeprecationWarning

from airflow_revcent import compat
from airflow_revcent.api.options import RequestOptions
from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.pii import PiiSettings
from airflow_revcent.transfers.customers_to_bigquery import (
    PERMANENT_ERRORS,
    CustomersToBigQueryOperator,
    default_retry_policy,
)


def make(**kwargs):
    return CustomersToBigQueryOperator(task_id="t", destination_table="ds.t", **kwargs)


def test_construction_touches_no_connection(monkeypatch):
    from airflow.sdk import BaseHook

    def forbidden(*args, **kwargs):
        raise AssertionError("the constructor read a connection")

    monkeypatch.setattr(BaseHook, "get_connection", forbidden)
    op = make(request_options=RequestOptions(max_concurrency=2, connect_timeout=3),
              pii=PiiSettings(hash_fields=["email"], hash_key_conn_id="pepper"))
    assert "revcent_hook" not in op.__dict__
    assert op.request_options.given() == {"max_concurrency": 2, "connect_timeout": 3}


def test_request_options_reach_the_hook():
    op = make(request_options=RequestOptions(max_concurrency=2, connect_timeout=3, stall_timeout=9))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our own code never uses the deprecated hook arguments
        hook = op.revcent_hook
    assert hook.options == RequestOptions(max_concurrency=2, connect_timeout=3, stall_timeout=9)


def test_deprecated_separate_arguments_still_work_and_warn():
    with pytest.warns(AirflowProviderDeprecationWarning, match="max_concurrency, read_timeout are deprecated"):
        op = make(max_concurrency=3, read_timeout=7)
    assert op.request_options == RequestOptions(max_concurrency=3, read_timeout=7)
    with pytest.warns(AirflowProviderDeprecationWarning, match=r"pass pii=PiiSettings\(\.\.\.\)"):
        op = make(exclude_fields=["company"], hash_fields=["email"], hash_key_conn_id="pepper")
    assert op.pii == PiiSettings(exclude_fields=("company",), hash_fields=("email",), hash_key_conn_id="pepper")


def test_the_new_arguments_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make(request_options=RequestOptions(max_concurrency=3), pii=PiiSettings(exclude_fields=["company"]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"request_options": RequestOptions(), "max_concurrency": 2}, "Give request_options or max_concurrency"),
        ({"pii": PiiSettings(), "exclude_fields": ["company"]}, "Give pii or exclude_fields"),
        ({"request_options": {"max_concurrency": 2}}, "must be a RequestOptions"),
        ({"pii": {"exclude_fields": ["company"]}}, "must be a PiiSettings"),
        ({"max_concurrency": 0}, r"RequestOptions.max_concurrency=0 must be an integer >= 1"),
        ({"pii": PiiSettings(exclude_fields=["nope"])}, "names field 'nope'"),
        ({"hash_fields": ["email"]}, "hash_fields needs hash_key_conn_id"),
        ({"on_invalid_record": "skip"}, "on_invalid_record='skip' must be one of 'fail', 'keep'"),
        ({"on_count_mismatch": "ignore"}, "on_count_mismatch='ignore' must be one of 'warn', 'fail'"),
        ({"window_size": timedelta(days=91)}, "over the API's limit of 90 days"),
        ({"page_size": 26}, "page_size=26 must be an integer from 1 to 25"),
        ({"labels": {"Team": "x"}}, r"labels\['Team'\]='x' is not a BigQuery label"),
        ({"labels": {f"k{i}": "v" for i in range(63)}}, "at most 62"),
        ({"encryption_configuration": {"kmsKeyName": "key"}}, "encryption_configuration="),
    ],
)
def test_static_arguments_fail_when_the_dag_is_parsed(kwargs, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AirflowProviderDeprecationWarning)
        with pytest.raises(RevCentConfigError, match=message):
            make(**kwargs)


@pytest.mark.parametrize("project_id", ["Bad_Project", "ab", 12])
def test_a_bad_billing_project_fails_naming_it(project_id):
    from airflow_revcent.transfers.customers_to_bigquery import _project_id

    with pytest.raises(RevCentConfigError, match=f"project_id={project_id!r} must be a Google Cloud project id"):
        _project_id(project_id)


@pytest.mark.parametrize("project_id", [None, "", "None"])
def test_an_unset_billing_project_is_none(project_id):
    from airflow_revcent.transfers.customers_to_bigquery import _project_id

    assert _project_id(project_id) is None
    assert _project_id("my-billing-1") == "my-billing-1"


def test_permanent_errors_are_classes_and_the_policy_uses_them():
    assert all(isinstance(e, type) and issubclass(e, Exception) for e in PERMANENT_ERRORS)
    policy = default_retry_policy()
    if not compat.has_retry_policies():
        assert policy is None and make()._fail_fast
        return
    assert policy is not None and not make()._fail_fast
    [rule] = policy.rules
    assert rule.matches(RevCentConfigError("x")) and not rule.matches(ConnectionError("x"))


def test_bad_input_fails_without_a_retry_where_airflow_has_no_retry_policy():
    op = make(date_start="not a date", date_end="2026-01-02")
    op._fail_fast = True  # what Airflow 3.1 and 3.2 get
    with pytest.raises(RevCentConfigError, match="not a date") as info:
        op.execute({"run_id": "r"})
    assert isinstance(info.value, compat._fail_exception())
    op._fail_fast = False
    with pytest.raises(RevCentConfigError) as info:
        op.execute({"run_id": "r"})
    assert not isinstance(info.value, compat._fail_exception())
