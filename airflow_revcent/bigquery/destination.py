"""The customers table in BigQuery: dataset and table set-up, staging load jobs, the applying transaction.

Nothing here touches the destination until the one transaction at the end
(:func:`~airflow_revcent.bigquery.statements.apply_script`), so a run that fails anywhere before it
(extraction, upload, load job) or inside it leaves the destination as it was.

What follows BigQuery's documented rules rather than the local server's leniency:

* **STRUCTs by position.** Each staging table is created with the schema of the table it feeds
  (same nested fields in the same order, the fields this run does not write included), so every
  ``SET rec = S.rec`` copies like onto like. NDJSON loads match fields by name, so the files need
  not know that order. The columns the pipeline writes are those the pipeline and the table both
  have; a value the table has no column for goes to ``_unknown_fields``.
* **Attempts.** Every task attempt loads into its own staging table, under load job ids named by
  the file's content: a retry never reattaches to an earlier attempt's loads (whose files held
  other pages). The applying job's id is derived from the load's content and the destination's
  creation time; a retry first looks for an earlier attempt's job (waits for it if still running,
  and does not apply the load again if it succeeded), then runs its own under ids of its own, so
  a run whose earlier attempts failed can always be retried once the cause is fixed.
* **Transient failures** of any API call (5xx, ``backendError``, ``rateLimitExceeded``, dropped
  connections) are retried with backoff by the client (:data:`API_RETRY`); a failed job whose
  reason is transient, or that lost to a concurrent writer ("Could not serialize access",
  "Transaction is aborted due to concurrent update", "Too many DML statements outstanding"), is
  run again as a new job after a jittered backoff, within :data:`JOB_ATTEMPTS` and
  :data:`JOB_BUDGET_SECONDS`. Any other job failure fails at once, naming the job and table.
* **Expiration.** A dataset's default table and partition expirations would apply to a new table
  and delete customers silently: the pipeline clears them on every table it creates (staging
  tables excepted, which expire on purpose) and says so in the log.
* **Clustering** uses only the columns the new table has.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.api_core import exceptions as google_exceptions
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField
from google.cloud.bigquery.retry import DEFAULT_RETRY

from airflow_revcent.bigquery.fields import (
    add_missing,
    diff_schema,
    from_schema_fields,
    same_shape,
    staging_schema,
    to_schema_fields,
    written_columns,
)
from airflow_revcent.bigquery.statements import (
    apply_script,
    lock_init_statement,
    partition_steps,
)
from airflow_revcent.bigquery.tables import STAGING_PREFIX, TableRef
from airflow_revcent.columns import (
    HISTORY_COLUMNS,
    METADATA_COLUMNS,
    PARTITION_COLUMN,
    Column,
    find_column,
    table_columns,
)
from airflow_revcent.drift import Promotion, add_columns, with_promoted
from airflow_revcent.exceptions import RevCentBigQueryError, RevCentConfigError

log = logging.getLogger(__name__)

DEFAULT_LOCATION = "US"
DEFAULT_STAGING_EXPIRATION = timedelta(days=1)
#: Preferred clustering of a new table; only the columns the table has are used.
CLUSTERING_FIELDS = ("campaign_id", "status", "id")
TABLE_DESCRIPTION = (
    "RevCent customers (GET /v2/customers), one row per customer id, loaded by airflow-provider-revcent. "
    "Columns starting with '_' are added by the pipeline."
)
HISTORY_DESCRIPTION = (
    "Every version of every RevCent customer (type 2): _valid_from/_valid_to/_is_current, written by "
    "airflow-provider-revcent in the same transaction as the customers table."
)
LOCK_DESCRIPTION = (
    "One row that every airflow-provider-revcent write to the customers table updates first, so BigQuery "
    "never runs two writes to it at once. Do not delete."
)
LOCK_SCHEMA = [
    SchemaField("revision", "INTEGER", description="How many writes have been applied."),
    SchemaField("run_id", "STRING", description="The Airflow run that wrote last."),
    SchemaField("updated_at", "TIMESTAMP", description="When."),
]
#: Job failure reasons worth another job (BigQuery's own transient failures).
TRANSIENT_REASONS = frozenset({"backendError", "internalError", "jobBackendError", "jobInternalError",
                               "rateLimitExceeded", "jobRateLimitExceeded", "backendErrorRetry"})
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


@dataclass
class ApplyResult:
    """What loading one extraction into the destination did."""

    job_ids: list[str] = field(default_factory=list)
    rows_loaded: int = 0
    rows_inserted: int | None = None
    rows_updated: int | None = None
    already_applied: bool = False
    #: Statements of the transaction (one per step and table), for the summary.
    steps: int = 0


@dataclass(frozen=True)
class Load:
    """One extraction to apply.

    :param files: newline-delimited JSON files whose rows match the written columns.
    :param key: names the content (same content, run and destination: same key).
    :param first_created: the earliest ``_created_at`` among the rows.
    :param last_created: the latest.
    :param attempt: the task's try number; each attempt stages its own rows.
    :param run_id: the Airflow run, recorded on the lock row.
    """

    files: Sequence[Path]
    key: str
    first_created: datetime
    last_created: datetime
    attempt: int = 1
    run_id: str | None = None


class CustomersDestination:
    """The destination table and everything BigQuery does for one run.

    :param client: a ``google.cloud.bigquery.Client``.
    :param table: the destination table.
    :param api_columns: the API's columns as the table holds them (after PII settings); the pipeline's
        metadata columns are added here.
    :param location: the dataset's location; ``None`` takes the existing dataset's, or US for a new one.
    :param staging_expiration: how long a staging table survives if a run dies before dropping it.
    :param history: a type-2 history table to maintain in the same transaction, or ``None``.
    :param labels: labels for every job (see :func:`job_labels`).
    :param job_prefix: put in every job id after ``revcent_<kind>_`` (the DAG and task, sanitised).
    :param kms_key_name: a Cloud KMS key for every table the pipeline creates (staging tables included).
    """

    def __init__(
        self,
        client: bigquery.Client,
        table: TableRef,
        api_columns: Sequence[Column],
        *,
        location: str | None = None,
        staging_expiration: timedelta = DEFAULT_STAGING_EXPIRATION,
        history: TableRef | None = None,
        labels: dict[str, str] | None = None,
        job_prefix: str = "",
        kms_key_name: str | None = None,
    ) -> None:
        self.client = client
        self.labels = dict(labels or {})
        self.job_prefix = job_prefix
        self.kms_key_name = kms_key_name
        #: The job this destination is waiting on, for on_kill to cancel.
        self.current_job: Any = None
        self.table = table
        self.wanted_columns = tuple(api_columns)
        self._set_api_columns(api_columns)
        self.requested_location = location
        self.location: str | None = location
        self.staging_expiration = staging_expiration
        self.history = history
        self._dataset_defaults: list[str] = []
        self._schemas: dict[TableRef, list[SchemaField]] = {}

    # -- set-up -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Make sure the dataset, table, lock and history exist with compatible schemas; clear expired
        staging tables; settle the columns this run writes."""
        self._ensure_dataset()
        existing = self._ensure_table(self.table, self.schema, PARTITION_COLUMN, TABLE_DESCRIPTION)
        if existing:
            # Fields promoted by earlier runs are API columns now: write them, or values would flip
            # between the column and _unknown_fields from run to run.
            self.wanted_columns = with_promoted(self.wanted_columns, from_schema_fields(existing))
        self._ensure_history()
        self._ensure_lock()
        self._settle_columns()
        self._drop_stale_staging()

    def add_api_columns(self, promotions: Sequence[Promotion]) -> list[Promotion]:
        """Add promoted fields as nullable columns to the destination (and history) table; return those the
        table really has afterwards (a server that cannot add a field inside a RECORD leaves it out, and
        its values then stay in _unknown_fields rather than being lost)."""
        wanted = add_columns(self.wanted_columns, promotions)
        self._ensure_table(self.table, to_schema_fields(table_columns(wanted)), PARTITION_COLUMN, TABLE_DESCRIPTION)
        self.wanted_columns = wanted
        self._ensure_history()
        self._settle_columns()
        return [p for p in promotions if find_column(self.api_columns, p.path.replace("[]", "")) is not None]

    def _settle_columns(self) -> None:
        """Write what the pipeline wants and the table (and history) really has, in the pipeline's terms."""
        self._schemas = {self.table: self._get_table(self.table).schema}
        if self.history is not None:
            self._schemas[self.history] = self._get_table(self.history).schema
        self._set_api_columns(written_columns(self.wanted_columns, self._schemas[self.table],
                                              self._schemas.get(self.history) if self.history else None))
        have = from_schema_fields(self._schemas[self.table])
        lost = [c.name for c in METADATA_COLUMNS if find_column(have, c.name) is None]
        if lost:
            raise RevCentBigQueryError(
                f"Table {self.table} lacks columns the pipeline needs and could not add them: {', '.join(lost)}. "
                "Add them (see docs/reference.md for their types) or load into a new table."
            )

    def _set_api_columns(self, api_columns: Sequence[Column]) -> None:
        self.api_columns = tuple(api_columns)
        self.columns = table_columns(self.api_columns)
        self.schema = to_schema_fields(self.columns)

    def _ensure_history(self) -> None:
        if self.history is not None:
            if self.history.dataset_id != self.table.dataset_id:
                self._check_location(self.history.dataset_id)
            self._ensure_table(self.history, to_schema_fields((*table_columns(self.wanted_columns),
                                                               *HISTORY_COLUMNS)),
                               "_valid_from", HISTORY_DESCRIPTION)

    def _ensure_lock(self) -> None:
        lock = self.table.lock()
        try:
            self.client.get_table(str(lock), retry=API_RETRY)
        except google_exceptions.NotFound:
            table = bigquery.Table(str(lock), schema=LOCK_SCHEMA)
            table.description = LOCK_DESCRIPTION
            self._encrypt(table)
            self._create(lambda: self.client.create_table(table, exists_ok=True, retry=API_RETRY),
                         lambda: self.client.get_table(str(lock), retry=API_RETRY))
            self._clear_inherited_expiration(lock)
        # The lock only serializes writers while it has a row to update (tabledata.list costs nothing).
        if not list(self.client.list_rows(str(lock), max_results=1, selected_fields=LOCK_SCHEMA[:1],
                                          retry=API_RETRY)):
            # Ids of this set-up alone: the statement inserts only into an empty table, so repeating it is
            # safe, while one id for the table's life would reattach to its first success (and insert
            # nothing) once the row is deleted, and fail for good once that id's tries had failed.
            self._run_job(f"revcent_lock_init_{self.job_prefix}{self._epoch(lock)}_{uuid.uuid4().hex[:12]}",
                          lambda job_id: self._query(lock_init_statement(lock), job_id))

    def _ensure_dataset(self) -> None:
        try:
            dataset = self.client.get_dataset(self.table.dataset_id, retry=API_RETRY)
        except google_exceptions.NotFound:
            new = bigquery.Dataset(self.table.dataset_id)
            new.location = self.requested_location or self.client.location or DEFAULT_LOCATION
            dataset = self._create(lambda: self.client.create_dataset(new, exists_ok=True, retry=API_RETRY),
                                   lambda: self.client.get_dataset(self.table.dataset_id, retry=API_RETRY))
            log.info("Created dataset %s in %s", self.table.dataset_id, dataset.location)
        actual = dataset.location or DEFAULT_LOCATION
        if self.requested_location and actual.lower() != self.requested_location.lower():
            raise RevCentBigQueryError(
                f"Dataset {self.table.dataset_id} is in location {actual!r}, but location="
                f"{self.requested_location!r} was asked for. Set location={actual!r} (or leave it unset to use "
                "the dataset's), or choose a destination_table in a dataset of that location."
            )
        self.location = actual
        self._dataset_defaults = _expiration_defaults(dataset)

    @staticmethod
    def _create(create: Callable[[], Any], get: Callable[[], Any]) -> Any:
        """Create an object; if that fails because a concurrent run created it first (a conflict, or a
        server that reports the collision another way), use theirs."""
        try:
            return create()
        except google_exceptions.GoogleAPICallError as error:
            try:
                return get()
            except google_exceptions.GoogleAPICallError:
                raise error from None

    def _check_location(self, dataset_id: str) -> None:
        try:
            dataset = self.client.get_dataset(dataset_id, retry=API_RETRY)
        except google_exceptions.NotFound:
            new = bigquery.Dataset(dataset_id)
            new.location = self.location
            self.client.create_dataset(new, exists_ok=True, retry=API_RETRY)
            return
        if (dataset.location or DEFAULT_LOCATION).lower() != (self.location or DEFAULT_LOCATION).lower():
            raise RevCentBigQueryError(
                f"Dataset {dataset_id} is in location {dataset.location!r} but the destination's dataset is in "
                f"{self.location!r}; one transaction cannot span locations. Put the history table beside the "
                "destination."
            )

    def _get_table(self, ref: TableRef) -> Any:
        return self.client.get_table(str(ref), retry=API_RETRY)

    def _ensure_table(
        self, ref: TableRef, schema: list[SchemaField], partition: str, description: str
    ) -> list[SchemaField]:
        """Create the table, or check and extend an existing one; return the existing schema ([] if new)."""
        for _ in range(JOB_ATTEMPTS):
            try:
                existing = self._get_table(ref)
            except google_exceptions.NotFound:
                self._create_table(ref, schema, partition, description)
                return []
            diff = diff_schema(schema, existing.schema)
            if diff.conflicts:
                raise RevCentBigQueryError(
                    f"Table {ref} exists with a schema that conflicts with the customers schema: "
                    f"{'; '.join(diff.conflicts)}. Load into another table, or fix or drop those columns (the "
                    "expected schema is in docs/reference.md)."
                )
            if not diff.missing:
                return list(existing.schema)
            existing.schema = add_missing(existing.schema, schema)
            try:
                # The etag makes this a compare-and-set: a concurrent change answers 412 and we look again.
                self.client.update_table(existing, ["schema"], retry=API_RETRY)
            except google_exceptions.PreconditionFailed:
                log.info("Table %s changed while its schema was being extended; reading it again", ref)
                time.sleep(random.uniform(0.1, 1.0))  # noqa: S311 - jitter, not security
                continue
            log.info("Added columns to %s: %s", ref, ", ".join(diff.missing))
            return list(existing.schema)
        raise RevCentBigQueryError(
            f"Could not extend the schema of {ref}: it kept changing concurrently ({JOB_ATTEMPTS} tries). "
            "Retry the task once other writers of the table are done."
        )

    def _create_table(self, ref: TableRef, schema: list[SchemaField], partition: str, description: str) -> None:
        table = bigquery.Table(str(ref), schema=schema)
        table.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY,
                                                            field=partition)
        names = {f.name for f in schema if f.mode != "REPEATED" and f.field_type not in ("RECORD", "STRUCT", "JSON")}
        # BigQuery clusters on at most 4 existing top-level, non-repeated columns.
        clustering = [c for c in CLUSTERING_FIELDS if c in names][:4]
        table.clustering_fields = clustering or None
        table.description = description
        self._encrypt(table)
        self._create(lambda: self.client.create_table(table, exists_ok=True, retry=API_RETRY),
                     lambda: self._get_table(ref))
        log.info("Created table %s (partitioned by DAY on %s, clustered by %s)", ref, partition,
                 ", ".join(clustering) or "nothing")
        self._clear_inherited_expiration(ref)

    def _encrypt(self, table: Any) -> None:
        if self.kms_key_name:
            table.encryption_configuration = bigquery.EncryptionConfiguration(kms_key_name=self.kms_key_name)

    def _query(self, sql: str, job_id: str | None = None) -> Any:
        """Every query the pipeline runs: labelled, in the dataset's location, retried on transient errors."""
        config = bigquery.QueryJobConfig(labels=self.labels)
        return self.client.query(sql, job_id=job_id, job_config=config, location=self.location, job_retry=None,
                                 retry=API_RETRY)

    def cancel(self) -> None:
        """Cancel the job this destination waits on (on_kill: a killed task must not commit later)."""
        job = self.current_job
        if job is None or getattr(job, "state", None) == "DONE":
            return
        try:
            self.client.cancel_job(job.job_id, location=self.location, retry=API_RETRY)
            log.warning("Cancelled BigQuery job %s", job.job_id)
        except google_exceptions.GoogleAPICallError as exc:
            log.warning("Could not cancel BigQuery job %s: %s", job.job_id, exc)

    def _clear_inherited_expiration(self, ref: TableRef) -> None:
        """A dataset's default expirations apply to every new table; customers must never expire silently."""
        table = self._get_table(ref)
        partitioning = table.time_partitioning
        inherited = bool(table.expires or (partitioning and partitioning.expiration_ms))
        if not (inherited or self._dataset_defaults):
            return
        fields = ["expires"]
        table.expires = None
        if partitioning is not None:
            partitioning.expiration_ms = None
            table.time_partitioning = partitioning
            fields.append("time_partitioning")
        self.client.update_table(table, fields, retry=API_RETRY)
        log.warning(
            "Dataset %s has %s; cleared them on the new table %s so its rows never expire. To expire data on "
            "purpose, set an expiration on the table itself (ALTER TABLE ... SET OPTIONS), which the pipeline "
            "keeps.", ref.dataset_id, " and ".join(self._dataset_defaults) or "a default expiration", ref,
        )

    def _drop_stale_staging(self) -> None:
        # BigQuery removes expired tables by itself; this also clears what a killed run left in
        # servers that only hide them, without touching a concurrent run's live staging table.
        prefix = f"{STAGING_PREFIX}{self.table.table}_"
        cutoff = datetime.now(UTC) - self.staging_expiration
        for item in self.client.list_tables(self.table.dataset_id, retry=API_RETRY):
            if not item.table_id.startswith(prefix):
                continue
            expires, created = item.expires, item.created
            if (expires and expires <= datetime.now(UTC)) or (created and created < cutoff):
                self.client.delete_table(item.reference, not_found_ok=True, retry=API_RETRY)
                log.info("Dropped stale staging table %s", item.table_id)

    # -- load and apply -----------------------------------------------------------------------
    def apply(self, load: Load) -> ApplyResult:
        """Load NDJSON files into this attempt's staging table(s) and apply them in one transaction.

        :param load: the files and what names them.
        """
        result = ApplyResult()
        # The destination's creation time is part of the job's id: a table dropped and recreated since
        # (a repair) gets the load again, while a retry against the same table is not applied twice.
        apply_base = f"revcent_apply_{self.job_prefix}{load.key}_{self._epoch(self.table)}"
        done = self._find_applied(apply_base, load.attempt)
        if done is not None:
            log.info("BigQuery job %s already applied this load; not applying it again", done.job_id)
            result.job_ids.append(done.job_id)
            result.already_applied = True
            return result
        steps = partition_steps(load.first_created, load.last_created)
        names = [c.name for c in self.columns]
        staging = self._stage(self.table, load, names, result)
        history_staging = None
        if self.history is not None:
            history_schema = self._schemas[self.history]
            history_staging = (staging if same_shape(self._schemas[self.table], history_schema, names)
                               else self._stage(self.history, load, names, result))
        try:
            sql = apply_script(self.table, staging, names, steps, run_id=load.run_id, history=self.history,
                               history_staging=history_staging)
            job = self._run_job(f"{apply_base}_t{load.attempt}", lambda job_id: self._query(sql, job_id))
            result.job_ids.append(job.job_id)
            result.steps = len(steps)
            # The script's result: counted inside the transaction, so exact whatever ran beside it.
            counts = next(iter(job.result(retry=API_RETRY)), None)
            if counts is not None:
                result.rows_inserted, result.rows_updated = int(counts["inserted"] or 0), int(counts["updated"] or 0)
        finally:
            for table in {staging, history_staging} - {None}:
                assert table is not None
                self._drop(table)
        return result

    def _stage(self, target: TableRef, load: Load, names: Sequence[str], result: ApplyResult) -> TableRef:
        """This attempt's staging table, shaped like ``target``, filled with the load's files."""
        staging = target.staging(f"{load.key}_a{load.attempt}")
        schema = staging_schema(self._schemas[target], names)
        table = bigquery.Table(str(staging), schema=schema)
        table.expires = datetime.now(UTC) + self.staging_expiration
        self._encrypt(table)
        self.client.delete_table(str(staging), not_found_ok=True, retry=API_RETRY)
        self.client.create_table(table, retry=API_RETRY)
        staged = self._epoch(staging)
        for path in load.files:
            # Named by what the file holds: the same attempt resubmitting a file reattaches; nothing else does.
            digest = _file_digest(path)
            job = self._run_job(f"revcent_load_{self.job_prefix}{staged}_{digest}",
                                functools.partial(self._load, path, staging=staging, schema=schema))
            result.job_ids.append(job.job_id)
            result.rows_loaded += int(job.output_rows or 0) if target == self.table else 0
        return staging

    def _epoch(self, ref: TableRef) -> int:
        """The table's creation time in milliseconds (distinguishes a recreated table)."""
        created = self._get_table(ref).created
        return int(created.timestamp() * 1000) if created else 0

    def _load(self, path: Path, job_id: str, *, staging: TableRef, schema: list[SchemaField]) -> Any:
        config = bigquery.LoadJobConfig(
            schema=schema,
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            write_disposition="WRITE_APPEND",
            create_disposition="CREATE_NEVER",
            max_bad_records=0,
            labels=self.labels,
        )
        with path.open("rb") as handle:
            return self.client.load_table_from_file(
                handle, str(staging), job_id=job_id, job_config=config, location=self.location
            )

    def _drop(self, staging: TableRef) -> None:
        try:
            self.client.delete_table(str(staging), not_found_ok=True, retry=API_RETRY)
        except google_exceptions.GoogleAPICallError as exc:
            log.warning("Could not drop staging table %s (it expires by itself): %s", staging, exc)

    def _get_job(self, job_id: str) -> Any | None:
        try:
            return self.client.get_job(job_id, location=self.location, retry=API_RETRY)
        except google_exceptions.NotFound:
            return None

    def _find_applied(self, base: str, attempt: int) -> Any | None:
        """An applying job of this or an earlier attempt that succeeded (waiting for one still running)."""
        for tried in range(1, attempt + 1):
            for n in range(JOB_ATTEMPTS):
                job = self._get_job(_suffixed(f"{base}_t{tried}", n))
                if job is None:
                    break
                if job.state != "DONE":
                    log.info("An earlier attempt's job %s is still %s; waiting for it", job.job_id, job.state)
                    try:
                        job.result(retry=API_RETRY)
                    except google_exceptions.GoogleAPICallError:
                        continue
                if not job.error_result:
                    return job
        return None

    def _submit(self, job_id: str, submit: Callable[[str], Any]) -> Any:
        """Submit a job under an id, or reattach to the one that id already names."""
        try:
            return submit(job_id)
        except google_exceptions.Conflict:
            pass  # submitted before (a retried request, a resumed attempt): take that job
        except (google_exceptions.ServerError, google_exceptions.TooManyRequests, ConnectionError) as exc:
            # The request may have reached BigQuery before the error: look before submitting again.
            job = self._get_job(job_id)
            if job is not None:
                return job
            raise _Retry(f"submitting {job_id}: {exc}") from exc
        deadline = time.monotonic() + JOB_VISIBLE_SECONDS
        while True:
            job = self._get_job(job_id)
            if job is not None:
                log.info("Reattaching to BigQuery job %s (state %s)", job_id, job.state)
                return job
            if time.monotonic() > deadline:
                raise _Retry(f"job {job_id} was reported as existing but never became visible")
            time.sleep(1.0)

    def _run_job(self, base: str, submit: Callable[[str], Any]) -> Any:
        """Run a job under the first free deterministic id; run it again as a new job after a transient
        failure or a lost race with a concurrent writer, with jittered backoff, within a budget."""
        started = time.monotonic()
        last_error = "no job ran"
        for n in range(JOB_ATTEMPTS):
            job_id = _suffixed(base, n)
            job = self._get_job(job_id)
            if job is not None and job.state == "DONE" and job.error_result:
                last_error = str(job.error_result.get("message", job.error_result))
                continue  # an earlier try failed under this id; ids cannot be reused
            try:
                if job is None:
                    job = self._submit(job_id, submit)
                else:
                    log.info("Reattaching to BigQuery job %s (state %s)", job_id, job.state)
                self.current_job = job
                job.result(retry=API_RETRY)
                return job
            except _Retry as retry:
                last_error = str(retry)
            except google_exceptions.GoogleAPICallError as exc:
                errors = _job_errors(job, exc)
                reason = (getattr(job, "error_result", None) or {}).get("reason")
                if not (reason in TRANSIENT_REASONS or _lost_race(errors)):
                    raise RevCentBigQueryError(
                        f"BigQuery job {job_id} failed: {errors}. The destination {self.table} was not changed."
                    ) from None
                last_error = errors
            if time.monotonic() - started > JOB_BUDGET_SECONDS:
                break
            wait = random.uniform(0, min(60.0, 2.0 ** n))  # noqa: S311 - jitter, not security
            log.warning("BigQuery job %s failed transiently (%s); a new job in %.1f s", job_id, last_error, wait)
            time.sleep(wait)
        raise RevCentBigQueryError(
            f"BigQuery jobs {base}* failed {JOB_ATTEMPTS} times or for {JOB_BUDGET_SECONDS:.0f} s; last error: "
            f"{last_error}. The destination {self.table} was not changed. Retry the task once the cause is fixed "
            "(for concurrent writers: let the other run finish, or lower max_active_runs)."
        )


class _Retry(Exception):
    """A job step that failed in a way another try may fix (internal)."""


_LABEL_INVALID = re.compile(r"[^a-z0-9_-]")
_ID_INVALID = re.compile(r"[^A-Za-z0-9_-]")


def label_value(text: str) -> str:
    """A BigQuery label value: lowercase letters, digits, ``_`` and ``-``, at most 63 characters."""
    return _LABEL_INVALID.sub("_", text.lower())[:63]


#: BigQuery takes at most 64 labels on a job; the operator adds two.
MAX_USER_LABELS = 62


def validate_labels(labels: dict[str, str] | None) -> dict[str, str]:
    """The user's job labels, checked against BigQuery's label rules (never rewritten).

    :param labels: the operator's ``labels``.
    """
    if labels is not None and not isinstance(labels, dict):
        raise RevCentConfigError(f"labels={labels!r} must be a dict of label keys to values.")
    for key, value in (labels or {}).items():
        if (not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key)
                or not isinstance(value, str) or not re.fullmatch(r"[a-z0-9_-]{0,63}", value)):
            raise RevCentConfigError(
                f"labels[{key!r}]={value!r} is not a BigQuery label: keys start with a lowercase letter, keys and "
                "values hold lowercase letters, digits, '_' and '-', at most 63 characters."
            )
    if len(labels or {}) > MAX_USER_LABELS:
        raise RevCentConfigError(f"labels: {len(labels or {})} labels; a BigQuery job takes at most 64, "
                                 f"two of them airflow-dag and airflow-task, so at most {MAX_USER_LABELS}.")
    return dict(labels or {})


def job_labels(dag_id: str | None, task_id: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """``airflow-dag`` and ``airflow-task`` (sanitised to BigQuery's label rules, as the google operators
    label their jobs) plus the user's labels, which are checked, not rewritten.

    :param dag_id: the task's DAG.
    :param task_id: the task.
    :param extra: the operator's ``labels``.
    """
    labels = {}
    if dag_id:
        labels["airflow-dag"] = label_value(dag_id)
    if task_id:
        labels["airflow-task"] = label_value(task_id)
    labels.update(validate_labels(extra))
    return labels


def job_prefix(dag_id: str | None, task_id: str | None) -> str:
    """``<dag>__<task>_`` for job ids, so a job says which task ran it (ids allow letters, digits, _ and -)."""
    if not dag_id and not task_id:
        return ""
    return f"{_ID_INVALID.sub('_', dag_id or '')[:100]}__{_ID_INVALID.sub('_', task_id or '')[:100]}_"


def _expiration_defaults(dataset: Any) -> list[str]:
    defaults = []
    if getattr(dataset, "default_table_expiration_ms", None):
        defaults.append(f"default_table_expiration_ms={dataset.default_table_expiration_ms}")
    if getattr(dataset, "default_partition_expiration_ms", None):
        defaults.append(f"default_partition_expiration_ms={dataset.default_partition_expiration_ms}")
    return defaults


def _lost_race(errors: str) -> bool:
    """A DML job aborted because another one wrote the same table at the same time; a new job succeeds.

    BigQuery says "concurrent update" or "Too many DML statements outstanding"; the local
    BigQuery-API server (DuckLake) says "failed to commit".
    """
    lowered = errors.lower()
    return any(message in lowered for message in CONCURRENCY_MESSAGES)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:32]


def _suffixed(base: str, n: int) -> str:
    return base if n == 0 else f"{base}_r{n}"


def _job_errors(job: Any, exc: Exception) -> str:
    errors = getattr(job, "errors", None) or []
    messages = [str(e.get("message", e)) for e in errors[:5]] or [str(exc)]
    return "; ".join(messages)

