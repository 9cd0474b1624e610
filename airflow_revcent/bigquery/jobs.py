"""BigQuery jobs: one runner that submits under a deterministic id, reattaches, classifies and retries.

Every job the pipeline runs (a staging load, the applying transaction) goes through
:meth:`JobRunner.run`:

* **Deterministic ids.** A job is submitted under ``<base>``, then ``<base>_r1``, ``<base>_r2``, ...:
  the first id not taken by a job that failed. A submission whose answer was lost (409 for an id
  already taken, a 5xx, a dropped connection) looks the job up and reattaches to it instead of
  running it twice.
* **Classified failures.** What a failure means is kept as data (:data:`TRANSIENT_REASONS`,
  :data:`TERMINAL_REASONS`, :data:`CONCURRENCY_MESSAGES`, :data:`TRANSPORT_ERRORS`) and read by
  one function (:func:`classify`), not as ``if``s in the loop.
* **Retries.** A job that failed transiently, or lost to a concurrent writer of the same table, is
  run again as a new job after a jittered exponential backoff; a failure to reach BigQuery tries the
  same id again (reattaching if the job exists); both within :data:`JOB_ATTEMPTS` and
  :data:`JOB_BUDGET_SECONDS`, then :class:`~airflow_revcent.exceptions.RevCentBigQueryError`, which
  Airflow retries. A job BigQuery refuses for good fails at once as
  :class:`~airflow_revcent.exceptions.RevCentBigQueryPermanentError` (never retried); any other
  failure fails at once as :class:`~airflow_revcent.exceptions.RevCentBigQueryError`. Both name the
  job and the table.
* **API calls** (jobs.insert, jobs.get, uploads) are retried by the client on BigQuery's transient
  errors and any 5xx (:data:`API_RETRY`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

import requests
from google.api_core import exceptions as google_exceptions
from google.cloud.bigquery.retry import DEFAULT_RETRY

from airflow_revcent.exceptions import RevCentBigQueryError, RevCentBigQueryPermanentError

log = logging.getLogger(__name__)

#: Job failure reasons worth another job (BigQuery's own transient failures).
TRANSIENT_REASONS = frozenset({"backendError", "internalError", "jobBackendError", "jobInternalError",
                               "rateLimitExceeded", "jobRateLimitExceeded", "backendErrorRetry"})
#: Job failure reasons another job or task attempt cannot fix (cloud.google.com/bigquery/docs/error-messages):
#: the task fails at once. Reasons in neither set (``notFound``: a retry's set-up recreates what is missing;
#: ``quotaExceeded``, ``resourcesExceeded``, ``stopped``) fail the task and leave the retry to Airflow.
TERMINAL_REASONS = frozenset({"invalid", "invalidQuery", "accessDenied", "billingNotEnabled",
                              "billingTierLimitExceeded", "notImplemented", "tableUnavailable"})
#: Messages of a job that lost to a concurrent writer of the same table: another job will succeed.
CONCURRENCY_MESSAGES = ("could not serialize access", "concurrent update", "too many dml statements outstanding",
                        "failed to commit")
#: How many jobs, and for how long, one step (a load, the transaction) may try.
JOB_ATTEMPTS = 8
JOB_BUDGET_SECONDS = 900.0
#: A job that was accepted (409) may take a moment to be visible to jobs.get.
JOB_VISIBLE_SECONDS = 30.0
#: Every API call is retried on BigQuery's transient errors, and on any 5xx.
API_RETRY = DEFAULT_RETRY.with_predicate(
    lambda exc: DEFAULT_RETRY._predicate(exc) or isinstance(exc, google_exceptions.ServerError)
).with_deadline(300.0)

#: Failures to reach BigQuery, after the client's own retries (API_RETRY raises RetryError when its deadline
#: passes): the job may or may not exist, so it is looked up under the same id before anything is sent again.
#: requests' ConnectionError is not the built-in one; both are caught.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    google_exceptions.ServerError, google_exceptions.TooManyRequests, google_exceptions.RetryError,
    ConnectionError, requests.exceptions.ConnectionError, requests.exceptions.Timeout,
)

#: What the loop catches from the client: the API's errors (a failed job's among them) and transport failures.
_CAUGHT: tuple[type[Exception], ...] = (google_exceptions.GoogleAPICallError, *TRANSPORT_ERRORS)

Submit = Callable[[str], Any]


class JobRunner:
    """Runs BigQuery jobs for one destination table (see the module docstring).

    :param client: a ``google.cloud.bigquery.Client`` (anything with ``get_job`` and ``cancel_job``).
    :param table: the destination, named in error messages.
    :param location: returns the location jobs run in (it is settled after the runner is made).
    :param sleep: waits between tries (default ``time.sleep``; tests pass a fake).
    :param clock: a monotonic clock in seconds, for the budgets (default ``time.monotonic``).
    """

    def __init__(
        self,
        client: Any,
        table: object,
        *,
        location: Callable[[], str | None] = lambda: None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.client = client
        self.table = table
        self._location = location
        self._sleep_with = sleep
        self._clock_with = clock
        #: The job being waited on, for on_kill to cancel (also the last one, for the job link).
        self.current: Any = None

    @property
    def location(self) -> str | None:
        return self._location()

    def _sleep(self, seconds: float) -> None:
        # time.sleep looked up at each call, not bound at construction: a test that patches it patches the waits.
        (self._sleep_with or time.sleep)(seconds)

    def _clock(self) -> float:
        return (self._clock_with or time.monotonic)()

    def get(self, job_id: str) -> Any | None:
        """The job under ``job_id``, or ``None`` when there is none.

        :param job_id: the job's id.
        """
        try:
            return self.client.get_job(job_id, location=self.location, retry=API_RETRY)
        except google_exceptions.NotFound:
            return None

    def find_applied(self, base: str, attempt: int) -> Any | None:
        """A job of this or an earlier attempt (``<base>_t<n>``) that succeeded, waiting for one still running.

        :param base: the ids' stem, without the attempt suffix.
        :param attempt: the task's try number.
        """
        for tried in range(1, attempt + 1):
            for n in range(JOB_ATTEMPTS):
                job = self.get(suffixed(f"{base}_t{tried}", n))
                if job is None:
                    break
                if job.state != "DONE":
                    log.info("An earlier attempt's job %s is still %s; waiting for it", job.job_id, job.state)
                    try:
                        job.result(retry=API_RETRY)
                    except TRANSPORT_ERRORS as exc:
                        if not getattr(job, "error_result", None):
                            # Whether it applied is unknown: running another could apply the load twice.
                            raise RevCentBigQueryError(
                                f"Could not learn whether BigQuery job {job.job_id} (an earlier attempt's) applied "
                                f"this load: {type(exc).__name__}: {exc}. The destination {self.table} was not "
                                "changed by this attempt; retry the task.", job_id=job.job_id) from exc
                        continue
                    except google_exceptions.GoogleAPICallError:
                        continue
                if not job.error_result:
                    return job
        return None

    def submit(self, job_id: str, submit: Submit) -> Any:
        """Submit a job under an id, or reattach to the one that id already names.

        :param job_id: the id.
        :param submit: sends the job under the id it is given.
        """
        try:
            return submit(job_id)
        except google_exceptions.Conflict:
            pass  # submitted before (a retried request, a resumed attempt): take that job
        except TRANSPORT_ERRORS as exc:
            # The request may have reached BigQuery before the error: look before submitting again.
            job = self.get(job_id)
            if job is not None:
                log.info("Reattaching to BigQuery job %s after %s", job_id, type(exc).__name__)
                return job
            raise _Retry(f"submitting {job_id}: {exc}") from exc
        deadline = self._clock() + JOB_VISIBLE_SECONDS
        while True:
            job = self.get(job_id)
            if job is not None:
                log.info("Reattaching to BigQuery job %s (state %s)", job_id, job.state)
                return job
            if self._clock() > deadline:
                raise _Retry(f"job {job_id} was reported as existing but never became visible")
            self._sleep(1.0)

    def run(self, base: str, submit: Submit) -> Any:
        """Run a job under the first free deterministic id; run it again as a new job after a transient
        failure or a lost race with a concurrent writer, with jittered backoff, within a budget.

        A failure to reach BigQuery (a dropped connection, the client's retries given up) tries the same
        id again: the job may exist, and is then reattached to, never run twice.

        :param base: the ids' stem (``<base>``, ``<base>_r1``, ...).
        :param submit: sends the job under the id it is given and returns it.
        :raises RevCentBigQueryPermanentError: BigQuery refused the job for good (:data:`TERMINAL_REASONS`).
        :raises RevCentBigQueryError: another failure, or the attempts or the time budget spent.
        """
        started = self._clock()
        last_error = "no job ran"
        n = 0  # the id's index: moves on only when the job under it failed
        for tried in range(JOB_ATTEMPTS):
            job_id = suffixed(base, n)
            job = None
            try:
                job = self.get(job_id)
                if job is not None and job.state == "DONE" and job.error_result:
                    # An earlier call's job failed under this id (ids cannot be reused): judge it, then move on
                    # at once (it failed before this call: nothing to wait for).
                    last_error, n = _failed(job, job_id, self.table, None).errors, n + 1
                    continue
                if job is None:
                    job = self.submit(job_id, submit)
                else:
                    log.info("Reattaching to BigQuery job %s (state %s)", job_id, job.state)
                self.current = job
                job.result(retry=API_RETRY)
                return job
            except _Retry as retry:
                last_error = str(retry)
            except _CAUGHT as exc:
                # The client raises a failed job's error as an HTTP error (backendError as a 500): the job's own
                # errorResult tells a failed job from a failure to reach BigQuery.
                if getattr(job, "error_result", None) or not isinstance(exc, TRANSPORT_ERRORS):
                    last_error, n = _failed(job, job_id, self.table, exc).errors, n + 1
                else:
                    last_error = f"{type(exc).__name__}: {exc}"
            if tried + 1 == JOB_ATTEMPTS or self._clock() - started > JOB_BUDGET_SECONDS:
                break
            wait = random.uniform(0, min(60.0, 2.0 ** tried))  # noqa: S311 - jitter, not security
            log.warning("BigQuery job %s failed transiently (%s); trying again in %.1f s", job_id, last_error, wait)
            self._sleep(wait)
        raise RevCentBigQueryError(
            f"BigQuery jobs {base}* failed {JOB_ATTEMPTS} times or for {JOB_BUDGET_SECONDS:.0f} s; last error: "
            f"{last_error}. The destination {self.table} was not changed. Retry the task once the cause is fixed "
            "(for concurrent writers: let the other run finish, or lower max_active_runs).", job_id=job_id,
        )

    def cancel(self) -> None:
        """Cancel the job being waited on (on_kill: a killed task must not commit later)."""
        job = self.current
        if job is None or getattr(job, "state", None) == "DONE":
            return
        try:
            self.client.cancel_job(job.job_id, location=self.location, retry=API_RETRY)
            log.warning("Cancelled BigQuery job %s", job.job_id)
        except google_exceptions.GoogleAPICallError as exc:
            log.warning("Could not cancel BigQuery job %s: %s", job.job_id, exc)


class _Retry(Exception):
    """A job step that failed in a way another try may fix (internal)."""


class _JobFailed:
    """A job failed in a way a new job may fix: transient, or lost to a concurrent writer (internal)."""

    def __init__(self, errors: str) -> None:
        self.errors = errors


def _failed(job: Any, job_id: str, table: object, exc: Exception | None) -> _JobFailed:
    """What a failed job (or a refused submission) means: returned when a new job may succeed, raised
    as the provider's error when not."""
    errors = job_errors(job, exc)
    reason = (getattr(job, "error_result", None) or {}).get("reason") or _api_reason(exc)
    kind = classify(reason, errors)
    if kind in ("race", "transient"):
        return _JobFailed(errors)
    message = f"BigQuery job {job_id} failed: {errors}. The destination {table} was not changed."
    if kind == "terminal":
        raise RevCentBigQueryPermanentError(
            f"{message} BigQuery refused it ({reason}): another try would fail the same way; fix the cause (the "
            "message says what), then clear the task.", reason=reason, job_id=job_id)
    raise RevCentBigQueryError(message, reason=reason, job_id=job_id)


def _api_reason(exc: Exception | None) -> str | None:
    """The reason of an API error (``exc.errors[0]["reason"]``), if it has one."""
    errors = getattr(exc, "errors", None) or []
    first = errors[0] if errors else None
    return first.get("reason") if isinstance(first, dict) else None


def lost_race(errors: str) -> bool:
    """A DML job aborted because another one wrote the same table at the same time; a new job succeeds.

    BigQuery says "concurrent update" or "Too many DML statements outstanding"; the local
    BigQuery-API server (DuckLake) says "failed to commit".

    :param errors: the job's error messages.
    """
    lowered = errors.lower()
    return any(message in lowered for message in CONCURRENCY_MESSAGES)


def classify(reason: str | None, errors: str) -> str:
    """What a failure means: ``"race"`` (lost to a concurrent writer) and ``"transient"`` run a new job;
    ``"terminal"`` fails at once and for good; ``"failed"`` fails the task, which Airflow may retry.

    :param reason: BigQuery's reason for the failure (the job's, else the API call's).
    :param errors: its messages.
    """
    if lost_race(errors):  # before the reason: BigQuery reports some of these as invalidQuery
        return "race"
    if reason in TRANSIENT_REASONS:
        return "transient"
    if reason in TERMINAL_REASONS:
        return "terminal"
    return "failed"


def suffixed(base: str, n: int) -> str:
    """The ``n``-th id of a job stem: ``base``, ``base_r1``, ...

    :param base: the stem.
    :param n: which try.
    """
    return base if n == 0 else f"{base}_r{n}"


def job_errors(job: Any, exc: Exception | None) -> str:
    """The first five error messages of a failed job, else the exception's text.

    :param job: the job, or ``None`` when it was never created.
    :param exc: what the client raised.
    """
    errors = getattr(job, "errors", None) or []
    messages = [str(e.get("message", e)) for e in errors[:5]] or [str(exc)]
    return "; ".join(messages)
