"""The lock table's set-up: a job of its own each time, named by DAG and task (a fake client, no server)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest

from airflow_revcent.bigquery.destination import CustomersDestination
from airflow_revcent.bigquery.tables import TableRef


class _Client:
    """A lock table that exists and has no row."""

    def get_table(self, ref: str, **kwargs: Any) -> Any:
        return SimpleNamespace(created=datetime(2026, 1, 1, tzinfo=UTC))

    def list_rows(self, ref: str, **kwargs: Any) -> list[Any]:
        return []


def test_each_set_up_of_an_empty_lock_table_runs_a_job_of_its_own_named_by_dag_and_task(
        monkeypatch: pytest.MonkeyPatch) -> None:
    destination = CustomersDestination(cast("Any", _Client()), TableRef("p", "d", "t"), (), job_prefix="dag__task_")
    bases: list[str] = []
    monkeypatch.setattr(destination, "run_job", lambda base, submit: bases.append(base))
    destination._ensure_lock()
    destination._ensure_lock()
    # One id for the table's life would reattach to its first success (inserting nothing once the row
    # was deleted) or, once its tries had failed, fail every later run without submitting anything.
    assert len(bases) == 2 and bases[0] != bases[1]
    assert all(b.startswith("revcent_lock_init_dag__task_1767225600000_") for b in bases), bases
