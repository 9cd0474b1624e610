"""The operator without servers: construction reads nothing, static arguments are checked once, the
deprecated separate arguments still work, and bad input fails without a retry on every Airflow line."""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import Any

import pytest
from airflow.exceptions import AirflowProviderDeprecationWarning

from airflow_revcent import compat
from airflow_revcent.api.options import RequestOptions
from airflow_revcent.exceptions import RevCentBigQueryError, RevCentBigQueryPermanentError, RevCentConfigError
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
    # A BigQuery failure another try cannot fix fails at once; a spent budget of transient ones is retried.
    assert rule.matches(RevCentBigQueryPermanentError("x")) and not rule.matches(RevCentBigQueryError("x"))


def test_permanent_bigquery_failures_are_permanent_errors_and_spent_budgets_are_not():
    assert issubclass(RevCentBigQueryPermanentError, PERMANENT_ERRORS)
    assert not issubclass(RevCentBigQueryError, PERMANENT_ERRORS)


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


class FakeHook:
    """Pages as the hook's reader yields them; records what the operator asked for, and when."""

    def __init__(self, calls: list[str], batches):
        self.calls, self.batches, self.requests_sent = calls, batches, 0
        self.settings = type("S", (), {"base_url": "http://revcent.invalid"})()

    def check_connection(self):
        self.calls.append("check_connection")
        return self.settings

    def iter_pages(self, windows, *, filters, page_size, skip_invalid):
        self.calls.append(f"iter_pages({len(windows)} windows, page_size={page_size}, skip_invalid={skip_invalid})")
        for batch in self.batches(windows):
            self.requests_sent += 1
            yield batch

    def cancel(self):
        self.calls.append("cancel")


class FakeDestination:
    def __init__(self, calls: list[str], api_columns, table):
        self.calls, self.api_columns, self.table = calls, api_columns, table
        self.columns, self.location, self.current_job = api_columns, "US", None
        self.loads: list[tuple[Any, list[str]]] = []

    def prepare(self):
        self.calls.append("prepare")

    def apply(self, load):
        from airflow_revcent.bigquery.destination import ApplyResult

        rows = [line for path in load.files for line in path.read_text().splitlines()]
        self.loads.append((load, rows))
        self.calls.append(f"apply({len(rows)} rows, attempt={load.attempt})")
        return ApplyResult(job_ids=["job-1"], rows_loaded=len(rows), rows_inserted=len(rows), rows_updated=0)


def _customer(n: int, created: int) -> dict:
    return {"id": f"{n:020d}", "created_date_unix": created, "email": f"c{n}@example.org"}


def test_execute_composes_read_convert_write_load_in_that_order(tmp_path, monkeypatch):
    from airflow_revcent.api.reader import WindowBatch
    from airflow_revcent.bigquery.tables import TableRef
    from airflow_revcent.paging import WindowStats

    calls: list[str] = []

    def batches(windows):
        assert len(windows) == 2  # 120 days in windows of at most 89
        for index, window in enumerate(windows):
            people = [_customer(index * 10 + i, window.start + 60 * i) for i in range(3)]
            yield WindowBatch(index, window, people[:2], total_count=3, received_at=1_767_225_600.0)
            yield WindowBatch(index, window, people[2:], finished=WindowStats(window, requests=2, records=3,
                                                                              total_count=3, distinct=3))

    op = make(date_start="2026-01-01", date_end="2026-05-01", tmp_dir=str(tmp_path),
              pii=PiiSettings(exclude_fields=["email"]))
    op.__dict__["revcent_hook"] = FakeHook(calls, batches)
    destinations: list[FakeDestination] = []

    def destination(api_columns, context):
        calls.append("destination")
        destinations.append(FakeDestination(calls, api_columns, TableRef("p", "ds", "t")))
        return destinations[0]

    monkeypatch.setattr(op, "_destination", destination)
    summary = op.execute({"run_id": "manual__1"})
    assert calls == ["check_connection", "destination", "prepare",
                     "iter_pages(2 windows, page_size=25, skip_invalid=False)", "apply(6 rows, attempt=1)"]
    [(load, rows)] = destinations[0].loads
    assert all('"email"' not in row for row in rows)  # excluded before it left the worker
    assert load.first_created.isoformat() == "2026-01-01T00:00:00+00:00"
    assert summary["records_loaded"] == summary["rows_inserted"] == 6
    assert summary["windows"] == 2 and summary["requests"] == 4 and summary["count_mismatches"] == []
    assert summary["bigquery_job_ids"] == ["job-1"]
    assert not list(tmp_path.rglob("*.ndjson"))  # the files are gone once applied


def test_a_count_mismatch_with_fail_loads_nothing(tmp_path, monkeypatch):
    from airflow_revcent.api.reader import WindowBatch
    from airflow_revcent.exceptions import RevCentCountMismatchError
    from airflow_revcent.paging import WindowStats

    calls: list[str] = []

    def batches(windows):
        [window] = windows
        yield WindowBatch(0, window, [_customer(1, window.start)], total_count=2,
                          finished=WindowStats(window, requests=1, records=1, total_count=2, distinct=1))

    op = make(date_start="2026-01-01", date_end="2026-01-02", tmp_dir=str(tmp_path), on_count_mismatch="fail")
    op.__dict__["revcent_hook"] = FakeHook(calls, batches)
    fake = FakeDestination(calls, None, None)

    def destination(api_columns, context):
        fake.api_columns = api_columns
        calls.append("destination")
        return fake

    monkeypatch.setattr(op, "_destination", destination)
    with pytest.raises(RevCentCountMismatchError, match="total_count is 2 but 1 distinct"):
        op.execute({"run_id": "r"})
    assert fake.loads == [] and not any(c.startswith("apply") for c in calls)
