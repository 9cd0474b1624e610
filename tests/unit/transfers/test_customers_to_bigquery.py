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
from airflow_revcent.rows.pii import PiiSettings
from airflow_revcent.transfers.customers_to_bigquery import CustomersToBigQueryOperator
from airflow_revcent.transfers.revcent_to_bigquery import PERMANENT_ERRORS, default_retry_policy


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
        ({"pii_policy_change": True}, "pii_policy_change=True must be one of 'refuse', 'allow'"),
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
    from airflow_revcent.transfers.revcent_to_bigquery import _project_id

    with pytest.raises(RevCentConfigError, match=f"project_id={project_id!r} must be a Google Cloud project id"):
        _project_id(project_id)


@pytest.mark.parametrize("project_id", [None, "", "None"])
def test_an_unset_billing_project_is_none(project_id):
    from airflow_revcent.transfers.revcent_to_bigquery import _project_id

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
        self.retries, self.throttled = 2, 1
        self.settings = type("S", (), {"base_url": "http://revcent.invalid"})()

    def check_connection(self):
        self.calls.append("check_connection")
        return self.settings

    def get_resource(self, name, **overrides):
        # The hook would fetch the document; the customers in RevCent's document are the packaged operation's.
        from airflow_revcent.resources import customers_resource

        self.calls.append(f"get_resource({name})")
        return customers_resource()

    def iter_pages(self, windows, *, filters, page_size, on_invalid_record, resource=None):
        self.calls.append(f"iter_pages({len(windows)} windows, page_size={page_size}, "
                          f"on_invalid_record={on_invalid_record})")
        for batch in self.batches(windows):
            self.requests_sent += 1
            yield batch

    def cancel(self):
        self.calls.append("cancel")


class FakeDestination:
    def __init__(self, calls: list[str], api_columns, table):
        self.calls, self.api_columns, self.table = calls, api_columns, table
        self.columns, self.location, self.current_job, self.history = api_columns, "US", None, None
        self.loads: list[tuple[Any, list[str]]] = []
        self.staging: FakeStaging | None = None

    def prepare(self):
        self.calls.append("prepare")

    def run_staging(self, run_key):
        self.staging = FakeStaging(self, run_key)
        return self.staging

    def apply(self, load):
        from airflow_revcent.bigquery.staging import ApplyResult

        self.loads.append((load, load.rows))
        self.calls.append(f"apply({len(load.rows)} rows, attempt={load.attempt})")
        return ApplyResult(job_ids=["job-1"], rows_loaded=len(load.rows), rows_inserted=len(load.rows),
                           rows_updated=0)


class FakeStaging:
    """The run's staging: records each window staged (its rows) and marked; apply hands the rows to the
    destination's ``apply``."""

    def __init__(self, destination: FakeDestination, run_key: str):
        from airflow_revcent.bigquery.tables import TableRef

        self.destination, self.run_key, self.epoch = destination, run_key, 1
        self.table = TableRef("p", "ds", f"_revcent_staging_t_{run_key}")
        self.facts: dict[int, Any] = {}
        self.rows: list[str] = []

    def open(self):
        self.destination.calls.append("open_staging")

    def attach(self):
        pass

    def marks(self, bounds=None):
        return dict(self.facts)

    def stage_window(self, files, facts, *, mark=True):
        rows = [line for path in files for line in path.read_text().splitlines()]
        self.rows += rows
        self.destination.calls.append(f"stage(window {facts.index}, {len(rows)} rows{'' if mark else ', unmarked'})")
        if mark:
            self.facts[facts.index] = facts
        return facts

    def apply(self, facts, *, attempt=1, run_id=None):
        from datetime import UTC, datetime
        from types import SimpleNamespace

        first = min((f.created_min for f in facts.values() if f.created_min is not None), default=0)
        return self.destination.apply(SimpleNamespace(rows=self.rows, attempt=attempt,
                                                      first_created=datetime.fromtimestamp(first, UTC)))

    def drop(self):
        self.destination.calls.append("drop_staging")


def _customer(n: int, created: int) -> dict:
    return {"id": f"{n:020d}", "created_date_unix": created, "email": f"c{n}@example.org"}


def test_execute_composes_read_convert_write_load_in_that_order(tmp_path, monkeypatch):
    from airflow_revcent.api.paging import WindowStats
    from airflow_revcent.api.reader import WindowBatch
    from airflow_revcent.bigquery.tables import TableRef

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

    def destination(api_columns, context, pii=None):
        calls.append("destination")
        destinations.append(FakeDestination(calls, api_columns, TableRef("p", "ds", "t")))
        return destinations[0]

    monkeypatch.setattr(op, "_destination", destination)
    summary = op.execute({"run_id": "manual__1"})
    # Each window is staged as soon as it is read; the run is applied once, then its staging dropped.
    assert calls == ["check_connection", "get_resource(customers)", "destination", "prepare", "open_staging",
                     "iter_pages(2 windows, page_size=25, on_invalid_record=fail)", "stage(window 0, 3 rows)",
                     "stage(window 1, 3 rows)", "apply(6 rows, attempt=1)", "drop_staging"]
    [(load, rows)] = destinations[0].loads
    assert all('"email"' not in row for row in rows)  # excluded before it left the worker
    assert load.first_created.isoformat() == "2026-01-01T00:00:00+00:00"
    assert summary["records_loaded"] == summary["rows_inserted"] == 6
    assert summary["windows"] == 2 and summary["requests"] == 4 and summary["count_mismatches"] == []
    assert summary["bigquery_job_ids"] == ["job-1"]
    assert not list(tmp_path.rglob("*.ndjson"))  # the files are gone once applied


def test_a_count_mismatch_with_fail_loads_nothing(tmp_path, monkeypatch):
    from airflow_revcent.api.paging import WindowStats
    from airflow_revcent.api.reader import WindowBatch
    from airflow_revcent.exceptions import RevCentCountMismatchError

    calls: list[str] = []

    def batches(windows):
        [window] = windows
        yield WindowBatch(0, window, [_customer(1, window.start)], total_count=2,
                          finished=WindowStats(window, requests=1, records=1, total_count=2, distinct=1))

    op = make(date_start="2026-01-01", date_end="2026-01-02", tmp_dir=str(tmp_path), on_count_mismatch="fail")
    op.__dict__["revcent_hook"] = FakeHook(calls, batches)
    fake = FakeDestination(calls, None, None)

    def destination(api_columns, context, pii=None):
        fake.api_columns = api_columns
        calls.append("destination")
        return fake

    monkeypatch.setattr(op, "_destination", destination)
    with pytest.raises(RevCentCountMismatchError, match="total_count is 2 but 1 distinct"):
        op.execute({"run_id": "r"})
    assert fake.loads == [] and not any(c.startswith("apply") for c in calls)
    # Its rows were staged, but the window is not marked done: a retry reads it again.
    assert "stage(window 0, 1 rows, unmarked)" in calls and fake.staging is not None and not fake.staging.facts


class LogRecorder:
    """Stands in for the operator's logger: the formatted messages, by level."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message, *args):
        self.lines.append(("info", message % args))

    def warning(self, message, *args):
        self.lines.append(("warning", message % args))


def _summary(**changes):
    summary = {"destination": "p.ds.customers", "windows": 2, "requests": 38, "retries": 3, "throttled": 1,
               "records_loaded": 893, "rows_inserted": 0, "rows_updated": 0, "rows_unchanged": 893,
               "already_applied": False, "skipped_records": 2,
               "bigquery_job_ids": ["revcent_load_a", "revcent_apply_b"],
               "extract_seconds": 12.25, "load_seconds": 4.5, "seconds": 16.75}
    return summary | changes


def test_the_closing_lines_say_what_was_read_what_changed_which_job_applied_it_and_how_long():
    from airflow_revcent.transfers.revcent_to_bigquery import closing_lines

    assert closing_lines(_summary()) == [
        "Read 893 customers from 2 windows (2 skipped as invalid) with 38 requests (3 retries, 1 answered 429) "
        "in 12.2 s",
        "Loaded 893 customers into p.ds.customers: 0 inserted, 0 updated, 893 unchanged; applied by BigQuery job "
        "revcent_apply_b (2 jobs in all: bigquery_job_ids in the summary) in 4.5 s",
        "Took 16.8 s: set-up and reading 12.2 s, loading and applying 4.5 s",
    ]
    again = closing_lines(_summary(already_applied=True, rows_inserted=None, rows_updated=None,
                                   rows_unchanged=None, bigquery_job_ids=["revcent_apply_b"], windows=1))
    assert again[0].startswith("Read 893 customers from 1 window (")
    assert again[1] == ("Loaded 893 customers into p.ds.customers: an earlier attempt's BigQuery job revcent_apply_b "
                        "already applied them; nothing was applied again in 4.5 s")
    empty = closing_lines(_summary(records_loaded=0, rows_inserted=0, rows_unchanged=0, bigquery_job_ids=[]))
    assert empty[1] == "Loaded 0 customers into p.ds.customers: nothing to apply in 4.5 s"


def test_a_run_logs_its_windows_and_closing_lines_with_the_hooks_counts(tmp_path, monkeypatch):
    from airflow_revcent.api.paging import WindowStats
    from airflow_revcent.api.reader import WindowBatch
    from airflow_revcent.bigquery.tables import TableRef

    def batches(windows):
        [window] = windows
        people = [_customer(i, window.start + i) for i in range(5)]
        yield WindowBatch(0, window, people, total_count=5, received_at=1_767_225_600.0,
                          finished=WindowStats(window, requests=1, records=5, total_count=5, distinct=5))

    op = make(date_start="2026-01-01", date_end="2026-01-02", tmp_dir=str(tmp_path))
    calls: list[str] = []
    op.__dict__["revcent_hook"] = FakeHook(calls, batches)
    fake = FakeDestination(calls, None, TableRef("p", "ds", "t"))

    def destination(api_columns, context, pii=None):
        fake.api_columns = fake.columns = api_columns
        return fake

    def apply(load):
        from airflow_revcent.bigquery.staging import ApplyResult

        return ApplyResult(job_ids=["revcent_load_1", "revcent_apply_2"], rows_loaded=5, rows_inserted=2,
                           rows_updated=1)

    monkeypatch.setattr(op, "_destination", destination)
    monkeypatch.setattr(fake, "apply", apply)
    recorder = LogRecorder()
    monkeypatch.setattr(CustomersToBigQueryOperator, "log", property(lambda self: recorder))
    summary = op.execute({"run_id": "r"})
    assert (summary["requests"], summary["retries"], summary["throttled"]) == (1, 2, 1)
    assert (summary["rows_inserted"], summary["rows_updated"], summary["rows_unchanged"]) == (2, 1, 2)
    infos = [line for level, line in recorder.lines if level == "info"]
    [window] = [line for line in infos if line.startswith("Window ")]
    assert " done: 5 customers from 1 pages in " in window and "Run so far: 1 of 1 windows done, 5 customers" in window
    read, loaded, took = infos[-3:]
    assert read.startswith("Read 5 customers from 1 window (0 skipped as invalid) with 1 request (2 retries, "
                           "1 answered 429) in ")
    assert loaded.startswith("Loaded 5 customers into p.ds.t: 2 inserted, 1 updated, 2 unchanged; applied by "
                             "BigQuery job revcent_apply_2 (2 jobs in all")
    assert took.startswith("Took ") and ", loading and applying " in took
