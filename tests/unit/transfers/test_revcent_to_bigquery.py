"""RevCentToBigQueryOperator with fakes: the resource from a document, its window limit, filters checked before
any request, the resource's name in the summary and log lines (the customers preset: test_customers_to_bigquery)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.resources import OpenAPIDocument, find_resource
from airflow_revcent.transfers.revcent_to_bigquery import RevCentToBigQueryOperator, closing_lines
from revcent_sandbox.openapi import build_document
from tests.unit.transfers.test_customers_to_bigquery import FakeDestination, FakeHook, LogRecorder

DOCUMENT = OpenAPIDocument(build_document("http://revcent.invalid"), source="the sandbox document")


class DocumentHook(FakeHook):
    """The customers fake, plus get_resource from the sandbox's document; records the resource it read."""

    def get_resource(self, name, **overrides):
        self.calls.append(f"get_resource({name})")
        return find_resource(DOCUMENT, name, **overrides)

    def iter_pages(self, windows, *, filters, page_size, on_invalid_record, resource=None):
        self.calls.append(f"iter_pages({resource.path}, {len(windows)} windows, {filters.to_params()})")
        self.windows = list(windows)
        yield from self.batches(windows)


def _empty(windows):
    """Every window read and empty (the reader ends each window with a finished batch)."""
    from airflow_revcent.api.paging import WindowStats
    from airflow_revcent.api.reader import WindowBatch

    for index, window in enumerate(windows):
        yield WindowBatch(index, window, [], finished=WindowStats(window, requests=1, total_count=0))


def _run(tmp_path, monkeypatch, resource, *, batches=_empty, **kwargs):
    from airflow_revcent.bigquery.tables import TableRef

    calls: list[str] = []
    op = RevCentToBigQueryOperator(task_id="t", resource=resource, destination_table="ds.t",
                                   tmp_dir=str(tmp_path), **kwargs)
    hook = op.__dict__["revcent_hook"] = DocumentHook(calls, batches)
    recorder = LogRecorder()
    monkeypatch.setattr(RevCentToBigQueryOperator, "log", property(lambda self: recorder))
    fakes: list[FakeDestination] = []

    def destination(api_columns, context, pii=None):
        calls.append("destination")
        fakes.append(FakeDestination(calls, api_columns, TableRef("p", "ds", "t")))
        return fakes[0]

    monkeypatch.setattr(op, "_destination", destination)
    return op, hook, calls, recorder, fakes


def test_a_resource_without_a_known_shape_fails_when_the_dag_is_parsed():
    with pytest.raises(RevCentConfigError, match=r"resource='/v2/sales' must name a RevCent list resource"):
        RevCentToBigQueryOperator(task_id="t", resource="/v2/sales", destination_table="ds.t")


def test_the_two_day_resource_is_read_in_windows_of_at_most_two_days(tmp_path, monkeypatch):
    op, hook, calls, _, _ = _run(tmp_path, monkeypatch, "GetAPICalls", date_start="2026-01-01",
                                 date_end="2026-01-08")
    summary = op.execute({"run_id": "r"})
    assert calls[:2] == ["check_connection", "get_resource(GetAPICalls)"]
    assert all(w.date_end - w.date_start <= 2 * 86400 for w in hook.windows)  # guards included
    assert len(hook.windows) == 4 and summary["resource"] == "api_calls" and summary["windows"] == 4


def test_window_size_may_only_lower_the_operations_range(tmp_path, monkeypatch):
    op, hook, _, _, _ = _run(tmp_path, monkeypatch, "api_calls", date_start="2026-01-01", date_end="2026-01-02",
                             window_size=timedelta(hours=6))
    op.execute({"run_id": "r"})
    assert len(hook.windows) == 4


@pytest.mark.parametrize(("filters", "message"), [
    ({"status_filter": ["x"]}, r"sales \(GetSales\) has no filter 'status_filter'\. It accepts: campaign_filter"),
    ({"currency_filter": ["US"]}, r"currency_filter.*'US'"),
    ("USD", r"filters='USD' must be a mapping"),
])
def test_bad_filters_fail_before_any_page_or_table(filters, message, tmp_path, monkeypatch):
    op, _, calls, _, _ = _run(tmp_path, monkeypatch, "sales", filters=filters, date_start="2026-01-01",
                              date_end="2026-01-02")
    with pytest.raises(RevCentConfigError, match=message):
        op.execute({"run_id": "r"})
    assert calls == ["check_connection", "get_resource(sales)"]  # no destination, no page


def test_filters_reach_the_hook_encoded_and_the_lines_name_the_resource(tmp_path, monkeypatch):
    from airflow_revcent.api.paging import WindowStats
    from airflow_revcent.api.reader import WindowBatch

    def batches(windows):
        [window] = windows
        sale = {"id": "s" * 20, "created_date_unix": window.start, "currency": "USD", "amount_total": Decimal("10.20")}
        yield WindowBatch(0, window, [sale], total_count=1, received_at=1_767_225_600.0,
                          finished=WindowStats(window, requests=1, records=1, total_count=1, distinct=1))

    op, _, calls, recorder, fakes = _run(tmp_path, monkeypatch, "sales", batches=batches,
                                         filters={"currency_filter": ["USD"]}, date_start="2026-01-01",
                                         date_end="2026-01-02")
    summary = op.execute({"run_id": "r"})
    assert "iter_pages(/v2/sales, 1 windows, [('currency_filter', 'USD')])" in calls
    [(_, rows)] = fakes[0].loads
    assert '"amount_total":10.20' in rows[0] and '"_created_at":"2026-01-01' in rows[0]  # exact, as sent
    assert summary["resource"] == "sales" and summary["records_loaded"] == 1
    assert any(line.startswith("Loaded 1 sales into p.ds.t") for _, line in recorder.lines)
    assert any("Window 1/1" in line and "1 sales from 1 pages" in line for _, line in recorder.lines)
    assert closing_lines({**summary, "resource": "customers"})[1].startswith("Loaded 1 customers into")
    assert op._lineage["resource"] == "/v2/sales"  # OpenLineage's input is the resource's endpoint
