"""Job labels, job ids that name their task, and cancelling the job a killed task waits on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_revcent.bigquery.destination import CustomersDestination, job_labels, job_prefix
from airflow_revcent.bigquery.tables import TableRef
from airflow_revcent.exceptions import RevCentConfigError


def test_dag_and_task_labels_follow_bigquerys_label_rules():
    labels = job_labels("RevCent.Customers To BQ", "load/customers" + "x" * 80, {"team": "data-eng"})
    assert labels["airflow-dag"] == "revcent_customers_to_bq"
    assert labels["airflow-task"].startswith("load_customers") and len(labels["airflow-task"]) == 63
    assert labels["team"] == "data-eng"


@pytest.mark.parametrize("labels", [{"Team": "x"}, {"team": "Data"}, {"1team": "x"}, {"team": "x" * 64},
                                    {f"k{i}": "v" for i in range(63)}])
def test_labels_bigquery_would_refuse_are_an_error_naming_them(labels):
    with pytest.raises(RevCentConfigError, match="label"):
        job_labels("d", "t", labels)


def test_job_ids_say_which_dag_and_task_ran_them():
    assert job_prefix("revcent.customers", "to_bq[0]") == "revcent_customers__to_bq_0__"
    assert job_prefix(None, None) == ""


class _Client:
    def __init__(self) -> None:
        self.cancelled: list[str] = []

    def cancel_job(self, job_id: str, **kwargs: object) -> None:
        self.cancelled.append(job_id)


def test_cancel_stops_the_running_job_and_leaves_a_finished_one():
    client = _Client()
    destination = CustomersDestination(client, TableRef("p", "d", "t"), ())  # type: ignore[arg-type]  # a fake client
    destination.cancel()  # nothing running: nothing to do
    destination.current_job = SimpleNamespace(job_id="revcent_apply_x", state="DONE")
    destination.cancel()
    destination.current_job = SimpleNamespace(job_id="revcent_apply_y", state="RUNNING")
    destination.cancel()
    assert client.cancelled == ["revcent_apply_y"]
