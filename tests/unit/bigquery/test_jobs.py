"""Job labels, job ids that name their task, cancelling the job a killed task waits on, and the job runner
(submit under a deterministic id, reattach, classify, retry) against a fake client."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import requests
from google.api_core import exceptions as google_exceptions

from airflow_revcent.bigquery.destination import CustomersDestination, job_labels, job_prefix
from airflow_revcent.bigquery.jobs import (
    JOB_ATTEMPTS,
    JOB_BUDGET_SECONDS,
    TERMINAL_REASONS,
    TRANSIENT_REASONS,
    JobRunner,
    classify,
)
from airflow_revcent.bigquery.tables import TableRef
from airflow_revcent.exceptions import RevCentBigQueryError, RevCentBigQueryPermanentError, RevCentConfigError


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


# -- the job runner, against a fake client ------------------------------------------------------


class FakeJob:
    """A job as the client returns it: ``result()`` raises what the client raises for its error."""

    def __init__(self, job_id: str, error: dict[str, str] | None = None, state: str = "DONE") -> None:
        self.job_id, self.state, self.error_result = job_id, state, error
        self.errors = [error] if error else None
        self.project = "p"

    def result(self, **kwargs: object) -> FakeJob:
        if self.error_result:
            raise google_exceptions.BadRequest(self.error_result["message"], errors=[self.error_result])
        self.state = "DONE"
        return self


class FakeClient:
    """Jobs by id; ``outcomes`` says what each submission does (a job's error, or an exception)."""

    def __init__(self, *outcomes: dict[str, str] | Exception | None) -> None:
        self.jobs: dict[str, FakeJob] = {}
        self.outcomes = list(outcomes)
        self.submitted: list[str] = []

    def get_job(self, job_id: str, **kwargs: object) -> FakeJob:
        if job_id not in self.jobs:
            raise google_exceptions.NotFound(f"Not found: Job {job_id}")
        return self.jobs[job_id]

    def submit(self, job_id: str) -> FakeJob:
        self.submitted.append(job_id)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, Exception):
            raise outcome
        self.jobs[job_id] = FakeJob(job_id, outcome)
        return self.jobs[job_id]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def runner(client: FakeClient) -> tuple[JobRunner, FakeClock]:
    clock = FakeClock()
    return JobRunner(client, "p.d.t", sleep=clock.sleep, clock=clock), clock


BACKEND = {"reason": "backendError", "message": "Error encountered during execution. Retrying may solve the problem."}
SERIALIZE = {"reason": "invalidQuery", "message": "Could not serialize access to table p:d.t due to concurrent update"}
INVALID = {"reason": "invalid", "message": "Error while reading data, error message: JSON parsing error"}


def test_a_job_runs_under_its_base_id_and_is_the_current_job():
    client = FakeClient(None)
    jobs, clock = runner(client)
    job = jobs.run("revcent_load_x", client.submit)
    assert (job.job_id, client.submitted, jobs.current) == ("revcent_load_x", ["revcent_load_x"], job)
    assert clock.waits == []


@pytest.mark.parametrize("error", [BACKEND, SERIALIZE], ids=["transient", "lost-race"])
def test_a_transient_or_lost_race_failure_runs_a_new_job_under_the_next_id(error):
    client = FakeClient(error, error, None)
    jobs, clock = runner(client)
    assert jobs.run("b", client.submit).job_id == "b_r2"
    assert client.submitted == ["b", "b_r1", "b_r2"]
    assert len(clock.waits) == 2 and all(0 <= w <= 60 for w in clock.waits)


def test_an_id_whose_job_failed_in_an_earlier_attempt_is_not_reused():
    client = FakeClient(None)
    client.jobs["b"] = FakeJob("b", BACKEND)
    jobs, clock = runner(client)
    assert jobs.run("b", client.submit).job_id == "b_r1"
    assert client.submitted == ["b_r1"] and clock.waits == []  # it failed before this call: no wait


def test_an_earlier_job_bigquery_refused_for_good_is_not_tried_again():
    client = FakeClient()
    client.jobs["b"] = FakeJob("b", INVALID)
    jobs, _ = runner(client)
    with pytest.raises(RevCentBigQueryPermanentError, match="JSON parsing error"):
        jobs.run("b", client.submit)
    assert client.submitted == []


def test_a_running_job_under_the_id_is_reattached_not_submitted_again():
    client = FakeClient()
    client.jobs["b"] = FakeJob("b", state="RUNNING")
    jobs, _ = runner(client)
    assert jobs.run("b", client.submit) is client.jobs["b"]
    assert client.submitted == []


def test_a_409_for_a_submission_reattaches_to_the_job_it_names():
    client = FakeClient()

    def submit(job_id: str) -> FakeJob:
        client.jobs[job_id] = FakeJob(job_id)  # the first request landed; its answer was lost
        raise google_exceptions.Conflict(f"Already Exists: Job {job_id}")

    jobs, _ = runner(client)
    assert jobs.run("b", submit).job_id == "b"


def test_a_5xx_on_submission_whose_job_exists_reattaches():
    client = FakeClient()

    def submit(job_id: str) -> FakeJob:
        client.jobs[job_id] = FakeJob(job_id)
        raise google_exceptions.ServiceUnavailable("backendError")

    jobs, _ = runner(client)
    assert jobs.run("b", submit).job_id == "b"


def test_transient_failures_past_the_attempts_fail_naming_the_jobs_and_the_last_error():
    client = FakeClient(*[BACKEND] * JOB_ATTEMPTS)
    jobs, _ = runner(client)
    with pytest.raises(RevCentBigQueryError, match=rf"jobs b\* failed {JOB_ATTEMPTS} times.*Retrying may solve"):
        jobs.run("b", client.submit)
    assert len(client.submitted) == JOB_ATTEMPTS


def test_transient_failures_stop_at_the_time_budget():
    client = FakeClient(*[BACKEND] * JOB_ATTEMPTS)
    jobs, clock = runner(client)

    def slow_submit(job_id: str) -> FakeJob:
        clock.now += JOB_BUDGET_SECONDS + 1  # each job takes more than the whole budget
        return client.submit(job_id)

    with pytest.raises(RevCentBigQueryError, match="failed"):
        jobs.run("b", slow_submit)
    assert client.submitted == ["b"]


def test_a_job_that_failed_for_another_reason_fails_at_once_naming_job_and_table():
    client = FakeClient(INVALID)
    jobs, clock = runner(client)
    with pytest.raises(RevCentBigQueryError, match=r"BigQuery job b failed: Error while reading.*p\.d\.t was not"):
        jobs.run("b", client.submit)
    assert client.submitted == ["b"] and clock.waits == []


def test_find_applied_finds_an_earlier_attempts_successful_job_past_its_failed_ones():
    client = FakeClient()
    client.jobs["a_t1"] = FakeJob("a_t1", BACKEND)
    client.jobs["a_t1_r1"] = FakeJob("a_t1_r1")
    jobs, _ = runner(client)
    assert jobs.find_applied("a", 2).job_id == "a_t1_r1"
    assert jobs.find_applied("other", 2) is None


def test_the_destination_delegates_to_its_runner():
    client = FakeClient(None)
    destination = CustomersDestination(client, TableRef("p", "d", "t"), ())  # type: ignore[arg-type]  # a fake client
    job = destination.run_job("b", client.submit)
    assert destination.current_job is job and destination.jobs.current is job
    assert destination._find_applied("x", 1) is None


# -- failure classes: permanent failures fail at once, transient ones are retried in the task -----


@pytest.mark.parametrize("error", [
    {"reason": "invalidQuery", "message": "Syntax error: Unexpected keyword MERGE at [3:1]"},
    {"reason": "accessDenied", "message": "Access Denied: Table p:d.t: permission bigquery.tables.updateData denied"},
    INVALID,
], ids=["invalidQuery", "accessDenied", "invalid"])
def test_a_job_bigquery_refuses_for_good_is_a_permanent_failure_without_another_job(error):
    client = FakeClient(error)
    jobs, clock = runner(client)
    refused = r"BigQuery job b failed: .*p\.d\.t was not changed"
    with pytest.raises(RevCentBigQueryPermanentError, match=refused) as info:
        jobs.run("b", client.submit)
    assert (info.value.reason, info.value.job_id) == (error["reason"], "b")
    assert client.submitted == ["b"] and clock.waits == []


def test_access_denied_when_submitting_is_a_permanent_failure():
    client = FakeClient(google_exceptions.Forbidden(
        "Access Denied: Project p: User does not have bigquery.jobs.create permission",
        errors=[{"reason": "accessDenied", "message": "Access Denied"}]))
    jobs, _ = runner(client)
    with pytest.raises(RevCentBigQueryPermanentError, match=r"bigquery\.jobs\.create") as info:
        jobs.run("b", client.submit)
    assert info.value.reason == "accessDenied"


@pytest.mark.parametrize("reason", ["quotaExceeded", "notFound", "stopped"])
def test_a_failure_neither_transient_nor_permanent_fails_the_task_and_leaves_the_retry_to_airflow(reason):
    client = FakeClient({"reason": reason, "message": f"a {reason} failure"})
    jobs, _ = runner(client)
    with pytest.raises(RevCentBigQueryError, match=f"a {reason} failure") as info:
        jobs.run("b", client.submit)
    assert not isinstance(info.value, RevCentBigQueryPermanentError)
    assert client.submitted == ["b"]


def test_a_spent_budget_is_not_permanent_so_airflow_retries_the_task():
    client = FakeClient(*[SERIALIZE] * JOB_ATTEMPTS)
    jobs, _ = runner(client)
    with pytest.raises(RevCentBigQueryError, match="max_active_runs") as info:
        jobs.run("b", client.submit)
    assert not isinstance(info.value, RevCentBigQueryPermanentError)


def test_the_reason_sets_are_disjoint_and_a_lost_race_wins_over_its_invalidquery_reason():
    assert not TRANSIENT_REASONS & TERMINAL_REASONS
    assert classify("invalidQuery", SERIALIZE["message"]) == "race"
    assert classify("invalidQuery", "Syntax error") == "terminal"
    assert classify("backendError", "x") == "transient"
    assert classify(None, "x") == "failed"


def _lost_answers() -> list[Exception]:
    cause = requests.exceptions.ConnectionError("Connection aborted: RemoteDisconnected")
    return [cause, ConnectionError("reset by peer"), google_exceptions.RetryError("Deadline of 300.0s exceeded", cause)]


@pytest.mark.parametrize("lost", _lost_answers(), ids=["requests", "builtin", "RetryError"])
def test_a_submission_whose_answer_was_lost_reattaches_to_the_job_that_landed(lost):
    client = FakeClient()

    def submit(job_id: str) -> FakeJob:
        client.submitted.append(job_id)
        client.jobs[job_id] = FakeJob(job_id)  # the request reached BigQuery
        raise lost

    jobs, _ = runner(client)
    assert jobs.run("b", submit).job_id == "b"
    assert client.submitted == ["b"]


@pytest.mark.parametrize("lost", _lost_answers(), ids=["requests", "builtin", "RetryError"])
def test_a_submission_that_never_landed_is_sent_again_under_the_same_id(lost):
    client = FakeClient(lost, None)
    jobs, clock = runner(client)
    assert jobs.run("b", client.submit).job_id == "b"
    assert client.submitted == ["b", "b"] and len(clock.waits) == 1


def test_waiting_on_a_job_that_the_client_gave_up_polling_reattaches_to_it_never_runs_it_twice():
    client = FakeClient(None)
    jobs, _ = runner(client)
    polls = []

    def flaky_result(**kwargs: object) -> FakeJob:
        polls.append(1)
        if len(polls) == 1:
            raise google_exceptions.RetryError("Deadline of 300.0s exceeded", ConnectionError("reset"))
        return client.jobs["b"]

    def submit(job_id: str) -> FakeJob:
        job = client.submit(job_id)
        job.state = "RUNNING"
        job.result = flaky_result  # type: ignore[method-assign]  # the first poll gives up
        return job

    assert jobs.run("b", submit).job_id == "b"
    assert client.submitted == ["b"] and len(polls) == 2


def test_transport_failures_past_the_attempts_fail_the_task_retryably():
    client = FakeClient(*[requests.exceptions.ConnectionError("refused")] * JOB_ATTEMPTS)
    jobs, _ = runner(client)
    with pytest.raises(RevCentBigQueryError, match="refused") as info:
        jobs.run("b", client.submit)
    assert not isinstance(info.value, RevCentBigQueryPermanentError)


def test_a_conflicting_table_schema_is_a_permanent_failure():
    from google.cloud.bigquery import SchemaField

    class Client:
        def get_table(self, ref: str, **kwargs: object) -> SimpleNamespace:
            return SimpleNamespace(schema=[SchemaField("id", "INTEGER")])

    destination = CustomersDestination(Client(), TableRef("p", "d", "t"), ())  # type: ignore[arg-type]  # a fake
    with pytest.raises(RevCentBigQueryPermanentError, match="id"):
        destination._ensure_table(TableRef("p", "d", "t"), [SchemaField("id", "STRING")], "_created_at", "")


def test_a_dataset_in_another_location_is_a_permanent_failure():
    class Client:
        def get_dataset(self, dataset_id: str, **kwargs: object) -> SimpleNamespace:
            return SimpleNamespace(location="EU")

    destination = CustomersDestination(Client(), TableRef("p", "d", "t"), (), location="US")  # type: ignore[arg-type]  # a fake
    with pytest.raises(RevCentBigQueryPermanentError, match="location 'EU'"):
        destination._ensure_dataset()


def test_an_earlier_attempts_job_that_cannot_be_polled_fails_the_task_retryably_and_runs_nothing():
    client = FakeClient()
    running = FakeJob("a_t1", state="RUNNING")

    def unreachable(**kwargs: object) -> FakeJob:
        raise google_exceptions.RetryError("Deadline of 300.0s exceeded", ConnectionError("reset"))

    running.result = unreachable  # type: ignore[method-assign]  # polling gives up
    client.jobs["a_t1"] = running
    jobs, _ = runner(client)
    with pytest.raises(RevCentBigQueryError, match="Could not learn whether BigQuery job a_t1") as info:
        jobs.find_applied("a", 2)
    assert not isinstance(info.value, RevCentBigQueryPermanentError) and client.submitted == []
