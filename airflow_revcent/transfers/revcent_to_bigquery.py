"""RevCentToBigQueryOperator: any RevCent list resource's items of a run's interval into a BigQuery table.

The operator only composes: the resource comes from RevCent's OpenAPI document
(:meth:`~airflow_revcent.hooks.revcent.RevCentHook.get_resource`), :mod:`~airflow_revcent.api.windows` plans
the windows, :func:`~airflow_revcent.pipeline.extract` reads them through the hook and shapes each item
(:mod:`~airflow_revcent.rows.records`) into each window's NDJSON files,
:class:`~airflow_revcent.bigquery.destination.CustomersDestination` sets the tables up and
:class:`~airflow_revcent.bigquery.staging.RunStaging` stages each window as it finishes and applies the run.
:class:`~airflow_revcent.transfers.customers_to_bigquery.CustomersToBigQueryOperator` is its customers preset.

A run is three phases (``execute`` runs them in one task; a task group runs them as tasks):
:meth:`RevCentToBigQueryOperator.plan_run` (everything before reading), ``stage_windows`` (read and stage
the windows no attempt staged yet) and ``apply_run`` (one transaction, then the staging is dropped).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, get_args

from airflow.sdk import BaseOperator

from airflow_revcent.api.documents import is_customers, spec_location
from airflow_revcent.api.filters import CustomerFilters, Filters, validate_filters
from airflow_revcent.api.options import REQUEST_OPTION_NAMES, RequestOptions
from airflow_revcent.api.paging import WindowStats
from airflow_revcent.api.responses import MAX_PAGE_SIZE
from airflow_revcent.api.windows import (
    DEFAULT_WINDOW,
    GUARD_SECONDS,
    Interval,
    Window,
    parse_duration,
    parse_instant,
    resolve_interval,
    split_windows,
    validate_window_size,
    with_lookback,
)
from airflow_revcent.bigquery.connection import DEFAULT_GCP_CONN_ID, make_client, read_settings
from airflow_revcent.bigquery.destination import (
    DEFAULT_STAGING_EXPIRATION,
    CustomersDestination,
    job_labels,
    job_prefix,
    validate_labels,
)
from airflow_revcent.bigquery.links import BigQueryJobLink, BigQueryTableLink
from airflow_revcent.bigquery.staging import ApplyResult, RunStaging, WindowFacts
from airflow_revcent.bigquery.tables import TableRef
from airflow_revcent.compat import failing_fast, has_retry_policies
from airflow_revcent.exceptions import (
    RevCentAuthError,
    RevCentBigQueryPermanentError,
    RevCentConfigError,
    RevCentDataError,
    RevCentRequestError,
    RevCentStagingIncompleteError,
    RevCentStagingLostError,
)
from airflow_revcent.hooks.revcent import RevCentHook
from airflow_revcent.lineage import no_lineage, openlineage_facets, report_asset, static_asset
from airflow_revcent.pipeline import Extraction, WindowTally, extract, item_noun
from airflow_revcent.resources import Resource
from airflow_revcent.resources.descriptor import customers_resource
from airflow_revcent.rows.columns import Column
from airflow_revcent.rows.drift import Promotion, column_type, plan_promotions, promote
from airflow_revcent.rows.ndjson import (
    DEFAULT_MAX_FILE_BYTES,
    NdjsonWriter,
    WindowFiles,
    metadata_suffix,
    sweep_stale_dirs,
)
from airflow_revcent.rows.pii import PiiSettings, apply_pii, check_paths
from airflow_revcent.rows.records import InvalidPolicy, RecordConverter

if TYPE_CHECKING:
    from airflow.sdk import Context, ExceptionRetryPolicy

#: Failures that another try cannot fix: the task fails at once instead of retrying. Classes, not
#: dotted paths: a renamed class is an import error here, never a rule that silently stops matching.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (
    RevCentConfigError, RevCentAuthError, RevCentRequestError, RevCentDataError, RevCentBigQueryPermanentError,
)
_UNSET = (None, "", "None")

CountMismatchPolicy = Literal["warn", "fail"]
PiiPolicyChange = Literal["refuse", "allow"]
#: The keyword arguments ``request_options`` and ``pii`` replace (still accepted, with a warning).
_DEPRECATED_REQUEST_ARGS = tuple(n for n in REQUEST_OPTION_NAMES if n != "connect_timeout")
_DEPRECATED_PII_ARGS = ("exclude_fields", "hash_fields", "hash_key_conn_id")
#: How many times one attempt opens its run's staging again after a sibling attempt dropped it.
_STAGING_REOPENS = 2
#: "now" for the run's key: the interval as asked for, before an end in the future is clipped.
_NO_CLIP = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass
class RunPlan:
    """One run as the phases share it: what it reads and where it stages.

    The fields up to ``resource`` are small and JSON-able (:meth:`to_xcom`); the rest is what
    :meth:`RevCentToBigQueryOperator.plan_run` or :meth:`~RevCentToBigQueryOperator.resume_plan` built in
    this task (never passed between tasks).

    :param run_key: names the run's staging (see :meth:`RevCentToBigQueryOperator.plan_run`).
    :param interval: the run's interval.
    :param read: the interval read (the lookback included).
    :param windows: the windows of ``read``, by index.
    :param destination: the destination table.
    :param history: the history table, or ``None``.
    :param staging: the run's staging table.
    :param resource: the resource's name.
    """

    run_key: str
    interval: Interval
    read: Interval
    windows: tuple[Window, ...]
    destination: str
    history: str | None
    staging: str
    resource: str
    resolved: Resource | None = field(default=None, repr=False, compare=False)
    filters: Any = field(default=None, repr=False, compare=False)
    pii: PiiSettings | None = field(default=None, repr=False, compare=False)
    target: CustomersDestination | None = field(default=None, repr=False, compare=False)
    run_staging: RunStaging | None = field(default=None, repr=False, compare=False)
    started: float = field(default=0.0, repr=False, compare=False)
    extracted_at: datetime | None = field(default=None, repr=False, compare=False)

    def to_xcom(self) -> dict[str, Any]:
        """A small JSON-able dict: the run key, interval, read and window bounds, table names (no secrets)."""
        return {
            "run_key": self.run_key,
            "interval": [self.interval.start, self.interval.end],
            "read": [self.read.start, self.read.end],
            "windows": [[w.start, w.end] for w in self.windows],
            "destination": self.destination,
            "history": self.history,
            "staging": self.staging,
            "resource": self.resource,
        }

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> RunPlan:
        """The plan :meth:`to_xcom` describes (nothing resolved yet).

        :param data: what :meth:`to_xcom` returned.
        """
        try:
            return cls(run_key=str(data["run_key"]), interval=Interval(*map(int, data["interval"])),
                       read=Interval(*map(int, data["read"])),
                       windows=tuple(Window(int(a), int(b)) for a, b in data["windows"]),
                       destination=str(data["destination"]), history=data.get("history"),
                       staging=str(data["staging"]), resource=str(data["resource"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise RevCentConfigError(f"Not a run plan (RunPlan.to_xcom()): {data!r} ({exc}).") from None

    @property
    def bounds(self) -> list[tuple[int, int]]:
        return [(w.start, w.end) for w in self.windows]


def _check_resource_args(resource: Any, openapi_spec: Any, key_field: Any, created_field: Any) -> None:
    """The static arguments that name the resource and its key fields, checked when the DAG file is parsed."""
    if not isinstance(resource, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", resource.strip()):
        raise RevCentConfigError(
            f"resource={resource!r} must name a RevCent list resource: its path's last segment (\"sales\", "
            "\"tax\", \"api_calls\") or its operationId (\"GetSales\"). python -m airflow_revcent resources "
            "lists those a document offers."
        )
    if openapi_spec is not None:
        spec_location(openapi_spec)  # a static argument: an empty value or another scheme fails now
    for name, value in (("key_field", key_field), ("created_field", created_field)):
        if value is not None and (not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value)):
            raise RevCentConfigError(
                f"{name}={value!r} must name a top-level field of the resource's items (letters, digits and "
                "underscores), or be None for the resource's own.")


def _choice(value: Any, name: str, policy: Any) -> Any:
    """``value`` if it is one of the ``Literal`` ``policy``'s values, else an error naming them."""
    choices = get_args(policy)
    if value not in choices:
        raise RevCentConfigError(f"{name}={value!r} must be one of {', '.join(map(repr, choices))}.")
    return value


def _deprecated(kwargs: dict[str, Any], names: Sequence[str], replacement: str,
                operator: str = "CustomersToBigQueryOperator") -> dict[str, Any]:
    """Pop the deprecated keyword arguments among ``names`` from ``kwargs``, warning once for them."""
    given = {name: kwargs.pop(name) for name in names if name in kwargs}
    if given:
        from airflow.exceptions import AirflowProviderDeprecationWarning

        warnings.warn(
            f"{operator}: {', '.join(given)} are deprecated; pass {replacement} instead.",
            AirflowProviderDeprecationWarning, stacklevel=4,
        )
    return given


def closing_lines(summary: Mapping[str, Any]) -> list[str]:
    """The run's closing log lines, from its summary: what was read and what it cost, what the load did and
    which job applied it, and how long each phase took. Each line stands alone in a log viewer.

    :param summary: what :meth:`RevCentToBigQueryOperator.execute` returns (its ``resource`` names the items;
        customers when absent).
    """
    def count(n: int, one: str, many: str) -> str:
        return f"{n} {one if n == 1 else many}"

    items = summary.get("resource") or "customers"
    read = (f"Read {summary['records_loaded']} {items} from {count(summary['windows'], 'window', 'windows')} "
            f"({summary['skipped_records']} skipped as invalid) with "
            f"{count(summary['requests'], 'request', 'requests')} ({count(summary['retries'], 'retry', 'retries')}, "
            f"{summary['throttled']} answered 429) in {summary['extract_seconds']:.1f} s")
    loaded = f"Loaded {summary['records_loaded']} {items} into {summary['destination']}: "
    jobs = summary["bigquery_job_ids"]
    if summary["already_applied"]:
        loaded += f"an earlier attempt's BigQuery job {jobs[-1]} already applied them; nothing was applied again"
    elif not jobs:
        loaded += "nothing to apply"
    else:
        # The applying transaction is the last job; the load jobs into the staging table come before it.
        loaded += (f"{summary['rows_inserted']} inserted, {summary['rows_updated']} updated, "
                   f"{summary['rows_unchanged']} unchanged; applied by BigQuery job {jobs[-1]} "
                   f"({len(jobs)} jobs in all: bigquery_job_ids in the summary)")
    took = (f"Took {summary['seconds']:.1f} s: set-up and reading {summary['extract_seconds']:.1f} s, loading "
            f"and applying {summary['load_seconds']:.1f} s")
    return [read, loaded + f" in {summary['load_seconds']:.1f} s", took]


def _project_id(project_id: Any) -> str | None:
    """The rendered ``project_id``, checked (a project id, or unset)."""
    if project_id in _UNSET:
        return None
    if not isinstance(project_id, str) or not re.fullmatch(r"[a-z][a-z0-9.:-]{4,62}", project_id):
        raise RevCentConfigError(
            f"project_id={project_id!r} must be a Google Cloud project id (lowercase letters, digits and hyphens, "
            "starting with a letter; 'domain.com:project' for domain-scoped projects)."
        )
    return project_id


def _kms_key(encryption_configuration: dict[str, Any] | None) -> str | None:
    if encryption_configuration is None:
        return None
    key = encryption_configuration.get("kmsKeyName") if isinstance(encryption_configuration, dict) else None
    if not isinstance(key, str) or not key.startswith("projects/") or "/cryptoKeys/" not in key:
        raise RevCentConfigError(
            f"encryption_configuration={encryption_configuration!r} must be {{'kmsKeyName': "
            "'projects/P/locations/L/keyRings/R/cryptoKeys/K'}}, as BigQuery's encryption configuration is."
        )
    return key


def default_retry_policy() -> ExceptionRetryPolicy | None:
    """Retry transient failures as the task says; fail bad input, rejected keys and permanent BigQuery failures
    (an invalid statement or load, access denied, a conflicting schema) at once.

    ``None`` on Airflow 3.1 and 3.2, which have no task retry policies: there ``execute`` raises these
    errors as ``AirflowFailException`` too (:func:`airflow_revcent.compat.failing_fast`), with the same effect.
    """
    try:
        from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule
    except ImportError:
        return None
    return ExceptionRetryPolicy(
        rules=[RetryRule(exception=list(PERMANENT_ERRORS), action=RetryAction.FAIL,
                         reason="Bad input, a rejected API key or a job BigQuery refused: another try would fail the "
                                "same way.")]
    )


class RevCentToBigQueryOperator(BaseOperator):
    """Copy the items of a RevCent list resource created in an interval into a BigQuery table, exactly once.

    The resource (``"sales"``, ``"tax"``, ``"api_calls"`` or an operationId such as ``"GetSales"``) comes from
    RevCent's OpenAPI document: its path, filters, maximum range, and the item schema that types the table's
    columns. The interval is the run's data interval unless ``date_start``/``date_end`` are given; it is
    half-open (``date_start <= created < date_end``), split into windows of at most the operation's range
    (90 days unless its description states less) and read page by page. Items stream to NDJSON files, a
    load job puts them in a staging table and one MERGE applies them to the destination: re-runs and
    overlapping runs never duplicate an item, changed items are updated, and a failed run leaves the table
    as it was.

    :param resource: the list resource: its path's last segment (``"sales"``) or its operationId
        (``"GetSales"``); case does not matter.
    :param destination_table: ``[project.]dataset.table`` (templated).
    :param filters: the operation's optional query parameters, e.g. ``{"currency_filter": ["USD"],
        "metadata_filter": [{"name": "source", "value": "fb"}]}`` (templated); validated once rendered
        against the operation's parameters (names, enums, lengths, list or single value, deepObject keys),
        before any request.
    :param openapi_spec: RevCent's OpenAPI document as a local file (path or ``file://``) or a URL, for a
        worker without access to ``/v2/openapi.json`` or to pin a version; default: the connection's
        ``openapi_spec`` extra, else ``/v2/openapi.json`` from the connection's host (fetched once per task,
        parsed once per worker for the same content). Customers works without any document: when none can be
        had, or it has no usable customers list, the packaged GetCustomers operation is used, with a warning;
        another resource without one fails, saying why.
    :param key_field: the item's field that identifies it, when the resource's is not ``id``: items are
        de-duplicated on it and the table is merged on its column. A top-level string or integer field of
        the item schema; checked once the document is read (an error lists the fields that could serve).
    :param created_field: the item's creation time in unix seconds, when the resource's is not
        ``created_date_unix``: it places each item in its window and its partition (``_created_at``). A
        top-level integer or number field of the item schema; checked like ``key_field``.
    :param revcent_conn_id: the RevCent connection (templated).
    :param gcp_conn_id: the Google Cloud connection (templated).
    :param project_id: the project that runs and pays for the BigQuery jobs (templated); default: the
        connection's ``project``, else the destination's. The destination's project is where the tables are:
        a ``destination_table`` without one is in the connection's ``project``, else in this one.
    :param impersonation_chain: a service account to impersonate with short-lived credentials, or a chain
        of them (a list, or comma-separated) where each grants the one before it the Service Account Token
        Creator role and the first grants it to the connection's identity (templated); wins over the
        connection's ``impersonation_chain`` extra, as in the google provider's operators.
    :param date_start: interval start, ISO-8601 date or date-time with offset (templated); default: the
        run's ``data_interval_start``. ``None``, ``""`` and ``"None"`` mean unset.
    :param date_end: interval end, exclusive (templated); default: the run's ``data_interval_end``.
        An end in the future is clipped to now.
    :param page_size: items per request, 1..25 (default 25).
    :param location: BigQuery location of the dataset (templated); default: the existing dataset's, else the
        connection's ``location`` extra, else US.
    :param window_size: the longest span one request covers (default 89 days, at most 90); the operation's
        own maximum (2 days for ``api_calls``) lowers it, never the other way round.
    :param request_options: how requests are sent (:class:`~airflow_revcent.api.options.RequestOptions`:
        concurrency, pace, connect/read/request timeouts, stall timeout, retry budget); every option left
        ``None`` comes from the connection's extra of the same name, else its default. Replaces the separate
        ``max_concurrency``, ``max_requests_per_second``, ``read_timeout``, ``request_timeout``,
        ``stall_timeout`` and ``retry_*`` arguments, which still work with a deprecation warning.
    :param on_invalid_record: ``"fail"`` (default): an item (a customer) that does not match the spec fails the
        run, naming the item and field; ``"keep"``: such values go to ``_unknown_fields`` and items
        without a usable id are skipped and counted.
    :param staging_expiration: how long a run's staging table and window markers survive (default 1 day): a
        retry within it resumes from the windows staged; one left by a killed run expires by itself.
    :param max_file_bytes: size at which the local NDJSON file rolls over (one load job per file).
    :param lookback: also re-read items created this long before the interval, and update those that
        changed (a ``timedelta`` or an ISO-8601 duration such as ``"P35D"``; templated). Default 0: the
        operator reads exactly its interval, so explicit ranges and backfills cost what they cover.
    :param pii: which fields never leave the worker as sent (:class:`~airflow_revcent.rows.pii.PiiSettings`):
        ``exclude_fields`` dropped before they leave the worker and absent from the table,
        ``hash_fields`` replaced by ``HMAC-SHA256(key, value)`` hex with the secret key in the password of
        ``hash_key_conn_id``. Replaces the separate ``exclude_fields``, ``hash_fields`` and
        ``hash_key_conn_id`` arguments, which still work with a deprecation warning. The settings are recorded
        with the destination and history tables (their PII policy) on the first run.
    :param pii_policy_change: ``"refuse"`` (default): a run whose ``pii`` differs from the PII policy recorded
        with its table (a field plaintext where the table hashes it, present where it excludes it, newly hashed
        or excluded, or hashed under another key) fails before any change, naming the fields; ``"allow"``: the
        run records its settings as the table's new policy (values already in the table are not rewritten).
        Set it for the one run that changes a policy on purpose, not for good.
    :param history_table: ``[project.]dataset.table`` of an optional type-2 change history (templated;
        default ``None``, off): every change to an item appends a version (``_valid_from``, ``_valid_to``,
        ``_is_current``) in the same transaction that updates the destination.
    :param promote_unknown_fields: when a field the table has no column for has one unambiguous type in a
        run, add it as a nullable column where its path says and load it there instead of ``_unknown_fields``
        (default ``False``: such fields stay in the JSON column). Objects, arrays and mixed types stay there.
    :param on_count_mismatch: ``"warn"`` (default) or ``"fail"`` when a window's distinct items differ from
        the API's ``total_count``; ``"fail"`` fails before anything is loaded.
    :param labels: labels for every BigQuery job, besides ``airflow-dag`` and ``airflow-task`` (which the
        operator adds, sanitised to BigQuery's label rules).
    :param encryption_configuration: ``{"kmsKeyName": "projects/.../cryptoKeys/..."}``: every table the pipeline
        creates (destination, history, lock and staging tables) is encrypted with that Cloud KMS key.
    :param tmp_dir: where the NDJSON files are written (default: the system's temp folder). The run fails
        with a clear message as soon as the windows' ``total_count`` says the disk cannot hold it.
    """

    template_fields: Sequence[str] = (
        "destination_table", "revcent_conn_id", "gcp_conn_id", "date_start", "date_end", "filters", "location",
        "lookback", "history_table", "impersonation_chain", "project_id",
    )
    ui_color = "#e8f0fe"
    operator_extra_links = (BigQueryTableLink(), BigQueryJobLink())
    #: Who owns the run's staging: this task unless set (a task group sets its group_id, so that its plan,
    #: window and apply tasks share one run).
    run_owner: str | None = None

    def __init__(
        self,
        *,
        resource: str,
        destination_table: str,
        filters: Any = None,
        openapi_spec: str | None = None,
        key_field: str | None = None,
        created_field: str | None = None,
        revcent_conn_id: str = RevCentHook.default_conn_name,
        gcp_conn_id: str = DEFAULT_GCP_CONN_ID,
        impersonation_chain: str | Sequence[str] | None = None,
        project_id: str | None = None,
        date_start: Any = None,
        date_end: Any = None,
        page_size: int = MAX_PAGE_SIZE,
        location: str | None = None,
        window_size: timedelta = DEFAULT_WINDOW,
        request_options: RequestOptions | None = None,
        on_invalid_record: InvalidPolicy = "fail",
        staging_expiration: timedelta = DEFAULT_STAGING_EXPIRATION,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        lookback: Any = None,
        pii: PiiSettings | None = None,
        pii_policy_change: PiiPolicyChange = "refuse",
        on_count_mismatch: CountMismatchPolicy = "warn",
        history_table: str | None = None,
        promote_unknown_fields: bool = False,
        labels: dict[str, str] | None = None,
        encryption_configuration: dict[str, Any] | None = None,
        tmp_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        _check_resource_args(resource, openapi_spec, key_field, created_field)
        operator = type(self).__name__
        request_options = self._request_options(request_options, kwargs, operator)
        pii = self._pii_settings(pii, kwargs, operator, check=is_customers(resource))
        if "retry_policy" not in kwargs and (policy := default_retry_policy()) is not None:
            kwargs["retry_policy"] = policy
        if "outlets" not in kwargs and (asset := static_asset(destination_table)) is not None:
            # A fixed, fully qualified destination is declared at parse time, so downstream DAGs can
            # be scheduled on it; a templated one is reported through an AssetAlias in `outlets`.
            kwargs["outlets"] = [asset]
        super().__init__(**kwargs)
        self.resource = resource.strip()
        self.openapi_spec = openapi_spec
        self.key_field = key_field
        self.created_field = created_field
        # Templated arguments: kept as given, checked in execute() once rendered.
        self.destination_table = destination_table
        self.filters = filters
        self.revcent_conn_id = revcent_conn_id
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain
        self.project_id = project_id
        self.date_start = date_start
        self.date_end = date_end
        self.location = location
        self.lookback = lookback
        self.history_table = history_table
        # Static arguments: checked here, once, when the DAG file is parsed.
        if type(page_size) is not int or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise RevCentConfigError(f"page_size={page_size!r} must be an integer from 1 to {MAX_PAGE_SIZE}.")
        self.page_size = page_size
        self.window_size = validate_window_size(window_size)
        self.request_options = request_options
        self.on_invalid_record: InvalidPolicy = _choice(on_invalid_record, "on_invalid_record", InvalidPolicy)
        self.on_count_mismatch: CountMismatchPolicy = _choice(on_count_mismatch, "on_count_mismatch",
                                                              CountMismatchPolicy)
        self.staging_expiration = staging_expiration
        self.max_file_bytes = max_file_bytes
        self.pii = pii
        self.pii_policy_change: PiiPolicyChange = _choice(pii_policy_change, "pii_policy_change", PiiPolicyChange)
        self.promote_unknown_fields = promote_unknown_fields
        self.labels = validate_labels(labels)
        self.tmp_dir = tmp_dir
        self.kms_key_name = _kms_key(encryption_configuration)
        # Where Airflow has no retry policy (3.1, 3.2), execute() fails PERMANENT_ERRORS without retrying.
        self._fail_fast = not has_retry_policies()
        self._active_destination: CustomersDestination | None = None
        #: (project, location, job id) of the last job the run waited on, for the job link.
        self.last_job: tuple[str, str, str] | None = None
        #: The destination once resolved (project from the connection when the name has none).
        self.resolved_destination: TableRef | None = None
        #: The resource once resolved from its document (execute).
        self.resolved_resource: Resource | None = None
        self._lineage: dict[str, Any] = {}
        #: This attempt's read (for the summary): the windows' files, what the read found, the converter.
        self._files: WindowFiles | None = None
        self._extraction: Extraction | None = None
        #: Set by on_kill: the staging thread stops (created when first needed: an Event does not deep-copy).
        self._stopped: threading.Event | None = None
        self._converter: RecordConverter | None = None

    @staticmethod
    def _request_options(options: RequestOptions | None, kwargs: dict[str, Any], operator: str) -> RequestOptions:
        """``request_options``, or one built from the deprecated separate arguments (never both)."""
        if options is not None and not isinstance(options, RequestOptions):
            raise RevCentConfigError(f"request_options={options!r} must be a RequestOptions.")
        legacy = _deprecated(kwargs, _DEPRECATED_REQUEST_ARGS, "request_options=RequestOptions(...)", operator)
        if legacy and options is not None:
            raise RevCentConfigError(
                f"Give request_options or {', '.join(legacy)}, not both: put them in RequestOptions(...)."
            )
        return options if options is not None else RequestOptions(**legacy)

    @staticmethod
    def _pii_settings(pii: PiiSettings | None, kwargs: dict[str, Any], operator: str, *,
                      check: bool) -> PiiSettings:
        """``pii``, or settings built from the deprecated separate arguments (never both); for customers, paths
        checked now against the packaged operation (another resource's once its document is read)."""
        if pii is not None and not isinstance(pii, PiiSettings):
            raise RevCentConfigError(f"pii={pii!r} must be a PiiSettings.")
        legacy = _deprecated(kwargs, _DEPRECATED_PII_ARGS, "pii=PiiSettings(...)", operator)
        if legacy and pii is not None:
            raise RevCentConfigError(f"Give pii or {', '.join(legacy)}, not both: put them in PiiSettings(...).")
        settings = pii if pii is not None else PiiSettings(
            exclude_fields=tuple(legacy.get("exclude_fields") or ()),
            hash_fields=tuple(legacy.get("hash_fields") or ()), hash_key_conn_id=legacy.get("hash_key_conn_id"))
        if check:
            check_paths(settings)
        return settings

    @cached_property
    def revcent_hook(self) -> RevCentHook:
        """The RevCent hook, created on first use (never in the constructor)."""
        return RevCentHook(self.revcent_conn_id, options=self.request_options, openapi_spec=self.openapi_spec)

    def execute(self, context: Context) -> dict[str, Any]:
        with failing_fast(PERMANENT_ERRORS, enabled=self._fail_fast):
            plan = self.plan_run(context)
            self.stage_windows(context, plan)
            return self.apply_run(context, plan)

    # -- the phases -------------------------------------------------------------------------------
    def plan_run(self, context: Context) -> RunPlan:
        """Everything before reading: the interval and lookback, the resource, filters and PII settings, the
        destination set up, the windows, and the run's staging table opened.

        :param context: the task's context.
        """
        started = time.monotonic()
        extracted_at = datetime.now(UTC)
        interval = self.resolve_interval(context, now=extracted_at)
        read = with_lookback(interval, self._lookback())
        self.revcent_hook.check_connection()  # the RevCent connection is read and checked before BigQuery
        resource = self.resolved_resource = self._resource()
        windows = split_windows(read, self._window_size(resource))
        filters, pii = self._filters(resource), self._pii()
        destination = self._destination(
            apply_pii(resource.columns, pii, keep=(resource.key_field, resource.created_field)), context, pii=pii)
        destination.prepare()
        run_key = self._run_key(context, destination.table, resource, filters)
        staging = destination.run_staging(run_key)
        staging.open()
        self.log.info("Reading RevCent %s created in %s (read from %s): %d window(s) into %s", resource.name,
                      interval, read.start_iso, len(windows), destination.table)
        return RunPlan(run_key=run_key, interval=interval, read=read, windows=tuple(windows),
                       destination=str(destination.table),
                       history=None if destination.history is None else str(destination.history),
                       staging=str(staging.table), resource=resource.name, resolved=resource, filters=filters,
                       pii=pii, target=destination, run_staging=staging, started=started,
                       extracted_at=extracted_at)

    def resume_plan(self, context: Context, xcom: Mapping[str, Any]) -> RunPlan:
        """Another task's plan (:meth:`RunPlan.to_xcom`), made usable here: the resource resolved again and the
        destination's schema read, without changing anything in BigQuery.

        :param context: the task's context.
        :param xcom: what the planning task returned.
        """
        started = time.monotonic()
        plan = RunPlan.from_xcom(xcom)
        self.revcent_hook.check_connection()
        resource = self.resolved_resource = self._resource()
        filters, pii = self._filters(resource), self._pii()
        destination = self._destination(
            apply_pii(resource.columns, pii, keep=(resource.key_field, resource.created_field)), context, pii=pii)
        if str(destination.table) != plan.destination:
            raise RevCentConfigError(
                f"destination_table={self.destination_table!r} is {destination.table}, but the run was planned for "
                f"{plan.destination}: give the tasks of one run the same destination_table.")
        destination.inspect()
        staging = destination.run_staging(plan.run_key)
        staging.attach()
        plan.resolved, plan.filters, plan.pii, plan.target, plan.run_staging = (resource, filters, pii, destination,
                                                                                staging)
        plan.started, plan.extracted_at = started, datetime.now(UTC)
        return plan

    def stage_windows(self, context: Context, plan: RunPlan, indexes: Sequence[int] | None = None) -> dict[str, Any]:
        """Read and stage the windows among ``indexes`` (all when ``None``) that no attempt staged yet.

        :param context: the task's context.
        :param plan: from :meth:`plan_run` or :meth:`resume_plan`.
        :param indexes: window indexes of the run.
        :return: ``{"windows_read", "windows_skipped", "rows", "requests"}``.
        """
        staging, wanted = self._staging(plan), self._indexes(plan, indexes)
        if not staging.epoch:  # absent (expired, or dropped once another attempt applied the run)
            staging.open()
        for reopened in range(_STAGING_REOPENS + 1):
            done = staging.marks(plan.bounds)
            todo = [i for i in wanted if i not in done]
            if len(todo) < len(wanted):
                self.log.info("%d of %d window(s) were staged by an earlier attempt of this run; reading the "
                              "other %d", len(wanted) - len(todo), len(wanted), len(todo))
            if not todo:
                break
            try:
                self._read_windows(context, plan, todo)
                break
            except RevCentStagingLostError:
                if reopened == _STAGING_REOPENS:
                    raise
                self.log.warning("The staging table %s was dropped while this attempt loaded into it; opening it "
                                 "again and reading the run's windows again", staging.table)
                staging.open()
        files = self._files
        return {"windows_read": len(todo), "windows_skipped": len(wanted) - len(todo),
                "rows": files.rows if files is not None else 0, "requests": self.revcent_hook.requests_sent}

    def apply_run(self, context: Context, plan: RunPlan) -> dict[str, Any]:
        """Apply the run in one transaction once every window is staged, drop its staging, and summarise.

        :param context: the task's context.
        :param plan: from :meth:`plan_run` or :meth:`resume_plan`.
        :return: the XCom summary.
        :raises RevCentStagingIncompleteError: windows without a valid marker (retried: the retry reads them).
        """
        staging, destination = self._staging(plan), plan.target
        assert destination is not None
        if not staging.epoch:
            staging.attach()
        facts = staging.marks(plan.bounds)
        missing = [i for i in range(len(plan.windows)) if i not in facts]
        if missing:
            shown = ", ".join(f"{i} {plan.windows[i]}" for i in missing[:5])
            raise RevCentStagingIncompleteError(
                f"{len(missing)} of {len(plan.windows)} window(s) of this run are not staged in {staging.table}: "
                f"{shown}{' and more' if len(missing) > 5 else ''}. Nothing was applied to {destination.table}. "
                "Retry: the retry reads those windows (and only those).")
        resource = plan.resolved or customers_resource()
        ti = context.get("ti")
        applied_from = time.monotonic()
        rows = sum(f.rows for f in facts.values())
        if not rows:
            self.log.info("No %s were created in %s: nothing to load.", resource.name, plan.read)
        try:
            applied = staging.apply(facts, attempt=int(getattr(ti, "try_number", None) or 1),
                                    run_id=context.get("run_id"))
        finally:
            job = destination.current_job
            if job is not None:  # for the job link, also when the job failed
                self.last_job = (job.project, destination.location or "US", job.job_id)
        staging.drop()
        summary = self._summary(plan, facts, applied, applied_from=applied_from)
        self._report_asset(context, destination.table, summary)
        return summary

    def _staging(self, plan: RunPlan) -> RunStaging:
        if plan.run_staging is None or plan.target is None:
            raise RevCentConfigError("The run plan is not resolved in this task: pass it through plan_run or "
                                     "resume_plan first.")
        return plan.run_staging

    @staticmethod
    def _indexes(plan: RunPlan, indexes: Sequence[int] | None) -> list[int]:
        if indexes is None:
            return list(range(len(plan.windows)))
        bad = [i for i in indexes if not isinstance(i, int) or not 0 <= i < len(plan.windows)]
        if bad:
            raise RevCentConfigError(f"indexes={list(indexes)!r}: {bad!r} are not windows of this run (it has "
                                     f"{len(plan.windows)}, indexes 0 to {len(plan.windows) - 1}).")
        return sorted(set(indexes))

    def _read_windows(self, context: Context, plan: RunPlan, todo: Sequence[int]) -> None:
        """Read the windows ``todo``, staging each as it finishes (its files removed at once)."""
        destination, staging = plan.target, self._staging(plan)
        assert destination is not None
        assert plan.resolved is not None
        assert plan.extracted_at is not None
        resource = plan.resolved
        converter = self._converter = RecordConverter(
            destination.api_columns, on_invalid_record=self.on_invalid_record, pii=plan.pii,
            item=item_noun(resource).capitalize(), key_field=resource.key_field)
        suffix = metadata_suffix(extracted_at=plan.extracted_at, interval_start=plan.interval.start,
                                 interval_end=plan.interval.end, run_id=context.get("run_id"))
        promoted: dict[str, Promotion] = {}
        fail = self.on_count_mismatch == "fail"

        def before_stage(writer: NdjsonWriter, kinds: Mapping[str, set[str]]) -> None:
            self._promote(kinds, destination, staging, writer, promoted)

        def stage(index: int, files: Sequence[Any], tally: WindowTally, stats: WindowStats, reconciled: bool) -> None:
            window = plan.windows[index]
            staging.stage_window(files, WindowFacts(
                index=index, start=window.start, end=window.end, rows=tally.rows, skipped=stats.skipped,
                distinct=stats.distinct, total_count=stats.total_count, created_min=tally.created_min,
                created_max=tally.created_max, digest=tally.hexdigest[:32]), mark=reconciled)

        sweep_stale_dirs(self.tmp_dir)
        if self._stopped is None:
            self._stopped = threading.Event()
        with WindowFiles(suffix, max_file_bytes=self.max_file_bytes, directory=self.tmp_dir,
                         created_field=resource.created_field, name=resource.name) as files:
            self._files = files
            self._extraction = extract(
                self.revcent_hook, resource, [plan.windows[i] for i in todo], filters=plan.filters,
                converter=converter, files=files, stage=stage, before_stage=before_stage, indexes=todo,
                total=len(plan.windows), page_size=self.page_size, on_invalid_record=self.on_invalid_record,
                fail_on_count_mismatch=fail, started=plan.started, log=self.log, stopped=self._stopped)
        self._extraction.promoted = {p.path: p.type for p in promoted.values()}

    def _run_key(self, context: Context, table: TableRef, resource: Resource, filters: Any) -> str:
        """Names the run's staging: the destination, DAG, run, owner (this task, or the task group), map index,
        resource, the interval read as asked for (an end in the future not yet clipped, so a retry later in the
        day finds it) and the filters. Anything else (another run, other filters) stages apart."""
        ti = context.get("ti")
        requested = with_lookback(self.resolve_interval(context, now=_NO_CLIP), self._lookback())
        owner = self.run_owner or getattr(ti, "task_id", None) or self.task_id
        parts = [str(table), str(getattr(ti, "dag_id", "") or ""), str(context.get("run_id")), str(owner),
                 str(getattr(ti, "map_index", -1)), resource.path, str(requested), repr(filters.to_params())]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]

    def _resource(self) -> Resource:
        """The resource to land, from RevCent's OpenAPI document (:meth:`RevCentHook.get_resource`): fetched
        once per task from the connection's host unless ``openapi_spec`` points elsewhere. Customers falls back
        to the packaged GetCustomers operation, with a warning, when no document can be had."""
        resource: Resource = self.revcent_hook.get_resource(self.resource, key_field=self.key_field,
                                                            created_field=self.created_field)
        self.log.info("Resource %s (%s, %s): at most %s per request, %d filters, %d columns", resource.name,
                      resource.operation_id, resource.path, resource.max_window, len(resource.filters),
                      len(resource.columns))
        return resource

    def _window_size(self, resource: Resource) -> timedelta:
        """``window_size``, lowered to the operation's maximum range (its request, guards included, within it)."""
        return min(self.window_size, resource.max_window - timedelta(seconds=2 * GUARD_SECONDS))

    def _summary(self, plan: RunPlan, facts: Mapping[int, WindowFacts], applied: ApplyResult, *,
                 applied_from: float) -> dict[str, Any]:
        """The XCom summary (small, no secrets), and the run's closing log lines. What the run read comes from
        the windows' markers, so an attempt that resumed reports the whole run; requests, repairs and unknown
        fields are this attempt's."""
        destination = plan.target
        assert destination is not None
        resource = plan.resolved or customers_resource()
        extraction = self._extraction or Extraction()
        converter = self._converter
        unknown_paths = converter.unknown_paths if converter is not None else {}
        unknown = {p: n for p, n in sorted(unknown_paths.items()) if p not in extraction.promoted}
        if unknown:
            self.log.warning("Fields the spec does not describe were kept in _unknown_fields: %s",
                             ", ".join(f"{p} ({n})" for p, n in unknown.items()))
        now = time.monotonic()
        seconds = now - plan.started
        rows = sum(f.rows for f in facts.values())
        self._lineage = {"base_url": self.revcent_hook.settings.base_url, "table": destination.table,
                         "rows": rows, "columns": destination.columns, "resource": resource.path}
        hook = self.revcent_hook
        changed = (None if applied.rows_inserted is None or applied.rows_updated is None
                   else applied.rows_inserted + applied.rows_updated)
        mismatches = [
            f"window {Window(f.start, f.end)}: the API's total_count is {f.total_count} but {f.distinct} distinct "
            f"{resource.name} were read" for _, f in sorted(facts.items())
            if f.total_count is not None and f.distinct != f.total_count]
        extract_seconds = max(0.0, applied_from - plan.started)
        summary = {
            "resource": resource.name,
            "destination": str(destination.table),
            "interval_start": plan.interval.start_iso,
            "interval_end": plan.interval.end_iso,
            "read_start": plan.read.start_iso,
            "windows": len(plan.windows),
            "requests": hook.requests_sent,
            "retries": hook.retries,
            "throttled": hook.throttled,
            "records_loaded": rows,
            "rows_inserted": applied.rows_inserted,
            "rows_updated": applied.rows_updated,
            # Read but not written: the same content as stored, or a stored version read later than this one.
            "rows_unchanged": None if changed is None else max(0, rows - changed),
            "already_applied": applied.already_applied,
            "bigquery_job_ids": applied.job_ids,
            "skipped_records": sum(f.skipped for f in facts.values()),
            "count_mismatches": mismatches,
            "unknown_fields": unknown,
            "replaced_surrogates": len(extraction.replaced_surrogates),
            "rounded_numbers": converter.rounded_numbers if converter is not None else 0,
            "promoted_fields": extraction.promoted,
            "extract_seconds": round(extract_seconds, 3),
            "load_seconds": round(seconds - extract_seconds, 3),
            "seconds": round(seconds, 3),
            "peak_disk_bytes": self._files.peak_bytes if self._files is not None else 0,
        }
        for line in closing_lines(summary):
            self.log.info("%s", line)
        return summary

    # -- the steps ----------------------------------------------------------------------------
    def resolve_interval(self, context: Context, *, now: datetime) -> Interval:
        """The run's half-open interval: explicit dates, else the data interval (validated)."""
        bounds = []
        for name, given, fallback in (
            ("date_start", self.date_start, "data_interval_start"),
            ("date_end", self.date_end, "data_interval_end"),
        ):
            if given not in _UNSET:
                bounds.append(parse_instant(given, name=name))
                continue
            value = context.get(fallback)
            if value is None:
                raise RevCentConfigError(
                    f"{name} is not set and this run has no {fallback} (a manual run without a logical "
                    f"date). Trigger the run with a logical date, or pass date_start and date_end."
                )
            bounds.append(parse_instant(value, name=fallback))
        return resolve_interval(bounds[0], bounds[1], now=now)

    def _lookback(self) -> timedelta:
        return timedelta(0) if self.lookback in _UNSET else parse_duration(self.lookback, name="lookback")

    def _filters(self, resource: Resource) -> Filters | CustomerFilters:
        """The rendered ``filters``, validated against the operation's parameters (before any list request)."""
        return validate_filters(resource, self.filters)

    def _pii(self) -> PiiSettings:
        """The PII settings with the secret key read from its connection (only when hashing)."""
        if not self.pii.needs_key:
            return self.pii
        from airflow.sdk import BaseHook

        return self.pii.with_key((BaseHook.get_connection(str(self.pii.hash_key_conn_id)).password or "").encode())

    def on_kill(self) -> None:
        """Stop reading and staging and cancel the running BigQuery job: a task marked failed or timed out must
        not let its transaction commit later."""
        if self._stopped is None:
            self._stopped = threading.Event()
        self._stopped.set()  # the staging thread drops the windows waiting (no lock taken: a signal handler)
        if "revcent_hook" in self.__dict__:
            self.revcent_hook.cancel()
        if self._active_destination is not None:
            self._active_destination.cancel()

    def _destination(self, api_columns: Sequence[Column], context: Context,
                     pii: PiiSettings | None = None) -> CustomersDestination:
        project, _, _ = TableRef.split(self.destination_table)  # a malformed name fails before any I/O
        if self.history_table not in _UNSET:
            TableRef.split(self.history_table, name="history_table")
        settings = read_settings(self.gcp_conn_id, impersonation_chain=self.impersonation_chain or None)
        billing = _project_id(self.project_id)
        client = make_client(settings, project=project, location=self.location or settings.location,
                             billing_project=billing)
        # Tables without a project are in the connection's project; the billing project only runs the jobs.
        home = settings.project or client.project
        table = TableRef.parse(self.destination_table, default_project=home)
        history = (None if self.history_table in _UNSET
                   else TableRef.parse(self.history_table, default_project=home, name="history_table"))
        self.resolved_destination = table  # for the extra link
        resource = self.resolved_resource or customers_resource()
        ti = context.get("ti")
        dag_id, task_id = getattr(ti, "dag_id", None), getattr(ti, "task_id", None) or self.task_id
        self._active_destination = CustomersDestination(
            client, table, api_columns, location=self.location or None, staging_expiration=self.staging_expiration,
            history=history, labels=job_labels(dag_id, task_id, self.labels), job_prefix=job_prefix(dag_id, task_id),
            kms_key_name=self.kms_key_name, pii=pii, pii_policy_change=self.pii_policy_change,
            resource_name=resource.name, resource_path=resource.path, key_field=resource.key_field,
            created_field=resource.created_field)
        return self._active_destination

    def _promote(self, unknown_kinds: Mapping[str, set[str]], destination: CustomersDestination,
                 staging: RunStaging, writer: NdjsonWriter, promoted: dict[str, Promotion]) -> None:
        """Before a window is staged (on the staging thread, so no load runs meanwhile): promote the unknown
        fields seen so far (cumulatively: the destination and the run's staging table get the new columns), and
        rewrite the window's files with every promotion whose type still fits what was seen (a path that turned
        out mixed stays in ``_unknown_fields``).

        :param unknown_kinds: path -> kinds of value seen when the window finished (a copy: the reader goes on).
        """
        if not self.promote_unknown_fields or not unknown_kinds:
            return
        planned = [p for p in plan_promotions(unknown_kinds, destination.api_columns) if p.path not in promoted]
        if planned:
            added = destination.add_api_columns(planned)
            if added:
                staging.extend()
                self.log.warning("Promoted fields the spec does not describe to columns of %s: %s",
                                 destination.table, ", ".join(f"{p.path} {p.type}" for p in added))
            promoted.update({p.path: p for p in added})
        active = [p for p in promoted.values() if column_type(unknown_kinds.get(p.path, ())) == p.type]
        if active and writer.rows:
            writer.rewrite(lambda row: promote(row, active))

    # -- Airflow integration --------------------------------------------------------------------
    def _report_asset(self, context: Context, table: TableRef, summary: dict[str, Any]) -> None:
        """Attach the destination's asset to every AssetAlias outlet, with what this run wrote."""
        report_asset(context.get("outlet_events"), self.outlets, table, summary)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the resource's RevCent endpoint in, the BigQuery table (schema, rows) out."""
        if not self._lineage:
            return no_lineage()
        return openlineage_facets(**self._lineage)


if TYPE_CHECKING:
    # For type checkers; at run time __getattr__ below imports it.
    from airflow_revcent.transfers.task_group import (
        RevCentToBigQueryTaskGroup as RevCentToBigQueryTaskGroup,  # noqa: PLC0414 - an explicit re-export
    )


def __getattr__(name: str) -> Any:
    """``RevCentToBigQueryTaskGroup``, from :mod:`airflow_revcent.transfers.task_group` on first use (that
    module builds on this one, so importing it here at load time would be circular)."""
    if name == "RevCentToBigQueryTaskGroup":
        from airflow_revcent.transfers.task_group import RevCentToBigQueryTaskGroup

        return RevCentToBigQueryTaskGroup
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
