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


class _Tables:
    """A client that only reads tables: any other call (a change) fails the test."""

    def __init__(self, tables: dict[str, object]) -> None:
        self.tables = tables
        self.calls: list[str] = []

    def get_table(self, ref: str, **kwargs: object) -> object:
        from google.api_core.exceptions import NotFound

        self.calls.append(f"get_table {ref}")
        if ref not in self.tables:
            raise NotFound(ref)
        return self.tables[ref]

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"prepare() called {name}")


@pytest.mark.parametrize("with_history", [False, True])
def test_a_run_that_would_weaken_a_tables_pii_policy_fails_before_any_call_that_changes_something(with_history):
    from airflow_revcent.exceptions import RevCentPiiPolicyError
    from airflow_revcent.pii import PiiPolicy, PiiSettings, description_with_policy

    hashed = description_with_policy("RevCent customers.", PiiPolicy(hash_fields=frozenset({"email"})))
    plain = description_with_policy("History.", PiiPolicy())
    # The history table says plaintext, the destination hashes: either one refuses the run.
    client = _Tables({"p.d.t": SimpleNamespace(description=hashed if not with_history else plain, schema=[]),
                      "p.d.h": SimpleNamespace(description=hashed, schema=[])})
    destination = CustomersDestination(client, TableRef("p", "d", "t"), (),  # type: ignore[arg-type]  # a fake client
                                       history=TableRef("p", "d", "h") if with_history else None, pii=PiiSettings())
    with pytest.raises(RevCentPiiPolicyError, match=r"table p\.d\.[th]: .*email \(hashed in the table, plaintext"):
        destination.prepare()
    assert all(call.startswith("get_table") for call in client.calls)
    # Allowed on purpose, the same check passes (and the run goes on to change things).
    allowed = CustomersDestination(client, TableRef("p", "d", "t"), (),  # type: ignore[arg-type]  # a fake client
                                   pii=PiiSettings(), pii_policy_change="allow")
    with pytest.raises(AssertionError, match="prepare\\(\\) called get_dataset"):
        allowed.prepare()
