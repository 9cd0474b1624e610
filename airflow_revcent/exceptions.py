"""The provider's exceptions: a small hierarchy, each a name and a docstring.

Every message names what failed, the offending value, and how to fix it. None of them ever
carries the API key: the hook builds messages from status codes, envelopes and query
parameters, and the key travels only in a request header.
"""

from __future__ import annotations


class RevCentError(Exception):
    """Base class of every error raised by this provider."""


class RevCentConfigError(RevCentError, ValueError):
    """A setting is invalid: an argument, a connection field or a template that rendered to a bad value."""


class RevCentPiiPolicyError(RevCentConfigError):
    """A run's PII settings differ from the policy recorded with its table (or that policy is unreadable).

    Never retried: another try with the same settings would be refused the same way."""


class RevCentAPIError(RevCentError):
    """The RevCent API answered with something that is not a page of customers.

    :param message: what failed and how to fix it.
    :param status: the HTTP status, or ``None`` when no response arrived.
    :param error_code: the ``error_code`` of RevCent's error envelope, when there was one.
    :param api_message: the ``message`` of RevCent's error envelope, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        api_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.api_message = api_message
        self.retry_after = retry_after


class RevCentTransientError(RevCentAPIError):
    """A failure worth retrying: 429, 5xx, a reset or timed-out connection, a cut or unreadable body."""


class RevCentAuthError(RevCentAPIError):
    """The API key was missing or rejected (401/403). Never retried."""


class RevCentRequestError(RevCentAPIError):
    """The API rejected the request itself (400 or another 4xx). Never retried."""


class RevCentRetryBudgetExceeded(RevCentAPIError):
    """A request kept failing transiently until its retry budget (attempts or seconds) was spent."""


class RevCentCancelled(RevCentError):
    """A request was not sent because the read it belonged to had been stopped."""


class RevCentStalledError(RevCentError):
    """No page arrived for longer than ``stall_timeout``: the server or network holds requests open."""


class RevCentWindowUnsettledError(RevCentError):
    """A window's result kept changing while it was paged, for more passes than allowed."""


class RevCentDataError(RevCentError):
    """A customer returned by the API does not match the spec (missing id, a field of the wrong type)."""


class RevCentCountMismatchError(RevCentError):
    """A window's distinct customers differ from the API's total_count (``on_count_mismatch="fail"``).

    Retried by Airflow: a customer deleted while the window was read causes it, and passes."""


class RevCentBigQueryError(RevCentError):
    """A BigQuery step failed. This class itself is retried by Airflow: BigQuery's transient failures that
    outlasted the pipeline's own retries, and failures whose reason says neither transient nor permanent.

    :param message: what failed and how to fix it.
    :param reason: BigQuery's error reason (``invalidQuery``, ``backendError``, ...), when there was one.
    :param job_id: the job that failed, when a job did.
    """

    def __init__(self, message: str, *, reason: str | None = None, job_id: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.job_id = job_id


class RevCentBigQueryPermanentError(RevCentBigQueryError):
    """A BigQuery failure another try cannot fix: an invalid statement or load, access denied, a table whose
    schema conflicts, a dataset in another location. Never retried."""


class RevCentDiskSpaceError(RevCentError):
    """The worker's disk cannot hold the run's files."""


class RevCentStagingIncompleteError(RevCentError):
    """The run cannot be applied yet: some windows have no valid marker in its staging (not read yet, read by an
    attempt whose staging table was dropped since, or withheld after a count mismatch). Retried by Airflow: the
    retry reads those windows."""


class RevCentStagingLostError(RevCentBigQueryError):
    """The run's staging table vanished while this attempt used it (a finished sibling attempt dropped it after
    applying, or it expired). The attempt opens it again and reads its windows again."""
