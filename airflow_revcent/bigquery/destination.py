"""The customers table in BigQuery: dataset and table set-up, staging load jobs, the final MERGE.

Nothing here touches the destination until the single MERGE at the end, so a run that fails
anywhere before it (extraction, upload, load job) leaves the destination as it was.

Jobs get deterministic ids derived from the load's content key: a retried task that finds its
load or MERGE job already submitted waits for it (or takes its result) instead of running it
again, and a MERGE that already succeeded is never applied a second time. A job id that failed
in an earlier attempt is never reused: the next free suffix is taken.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.api_core import exceptions as google_exceptions
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField

from airflow_revcent.bigquery.schema import add_missing, diff_schema, from_schema_fields, to_schema_fields
from airflow_revcent.bigquery.statements import (
    STAGING_PREFIX,
    TableRef,
    change_counts_query,
    history_script,
    merge_statement,
)
from airflow_revcent.drift import Promotion, add_columns, with_promoted
from airflow_revcent.exceptions import RevCentBigQueryError
from airflow_revcent.schema import HISTORY_COLUMNS, PARTITION_COLUMN, Column, find_column, table_columns

log = logging.getLogger(__name__)

DEFAULT_LOCATION = "US"
DEFAULT_STAGING_EXPIRATION = timedelta(days=1)
CLUSTERING_FIELDS = ("campaign_id", "status", "id")
TABLE_DESCRIPTION = (
    "RevCent customers (GET /v2/customers), one row per customer id, loaded by airflow-provider-revcent. "
    "Columns starting with '_' are added by the pipeline."
)
HISTORY_DESCRIPTION = (
    "Every version of every RevCent customer (type 2): _valid_from/_valid_to/_is_current, written by "
    "airflow-provider-revcent in the same transaction as the customers table."
)
#: Job failure reasons worth another job (BigQuery's own transient failures, and a DML job aborted by
#: a concurrent update of the same table); any other reason (invalid data, schema, permissions) fails
#: the task with BigQuery's message.
TRANSIENT_REASONS = frozenset({"backendError", "internalError", "jobBackendError", "jobInternalError",
                               "rateLimitExceeded"})
MAX_JOB_SUFFIXES = 5


@dataclass
class ApplyResult:
    """What loading one extraction into the destination did."""

    job_ids: list[str] = field(default_factory=list)
    rows_loaded: int = 0
    rows_inserted: int | None = None
    rows_updated: int | None = None
    already_applied: bool = False


class CustomersDestination:
    """The destination table and everything BigQuery does for one run.

    :param client: a ``google.cloud.bigquery.Client``.
    :param table: the destination table.
    :param api_columns: the API's columns as the table holds them (after PII settings); the pipeline's
        metadata columns are added here.
    :param location: the dataset's location; ``None`` takes the existing dataset's, or US for a new one.
    :param staging_expiration: how long a staging table survives if a run dies before dropping it.
    :param history: a type-2 history table to maintain in the same transaction, or ``None``.
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
    ) -> None:
        self.client = client
        self.table = table
        self._set_api_columns(api_columns)
        self.requested_location = location
        self.location: str | None = location
        self.staging_expiration = staging_expiration
        self.history = history

    # -- set-up -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Make sure the dataset and table exist with a compatible schema; clear expired staging tables."""
        self._ensure_dataset()
        existing = self._ensure_table(self.table, self.schema, PARTITION_COLUMN, TABLE_DESCRIPTION)
        if existing:
            # Fields promoted by earlier runs are API columns now: write them, or values would flip
            # between the column and _unknown_fields from run to run.
            self._set_api_columns(with_promoted(self.api_columns, from_schema_fields(existing)))
        self._ensure_history()
        self._drop_stale_staging()

    def add_api_columns(self, promotions: Sequence[Promotion]) -> list[Promotion]:
        """Add promoted fields as nullable columns to the destination (and history) table; return those the
        table really has afterwards (a server that cannot add a field inside a RECORD leaves it out, and
        its values then stay in _unknown_fields rather than being lost)."""
        before = self.api_columns
        wanted = add_columns(before, promotions)
        self._ensure_table(self.table, to_schema_fields(table_columns(wanted)), PARTITION_COLUMN, TABLE_DESCRIPTION)
        actual = from_schema_fields(self.client.get_table(str(self.table)).schema)
        confirmed = [p for p in promotions if find_column(actual, p.path.replace("[]", "")) is not None]
        self._set_api_columns(add_columns(before, confirmed))
        self._ensure_history()
        return confirmed

    def _set_api_columns(self, api_columns: Sequence[Column]) -> None:
        self.api_columns = tuple(api_columns)
        self.columns = table_columns(self.api_columns)
        self.schema = to_schema_fields(self.columns)

    def _ensure_history(self) -> None:
        if self.history is not None:
            if self.history.dataset_id != self.table.dataset_id:
                self._check_location(self.history.dataset_id)
            self._ensure_table(self.history, to_schema_fields((*self.columns, *HISTORY_COLUMNS)), "_valid_from",
                               HISTORY_DESCRIPTION)

    def _ensure_dataset(self) -> None:
        try:
            dataset = self.client.get_dataset(self.table.dataset_id)
        except google_exceptions.NotFound:
            new = bigquery.Dataset(self.table.dataset_id)
            new.location = self.requested_location or self.client.location or DEFAULT_LOCATION
            dataset = self._create(lambda: self.client.create_dataset(new, exists_ok=True),
                                   lambda: self.client.get_dataset(self.table.dataset_id))
            log.info("Created dataset %s in %s", self.table.dataset_id, dataset.location)
        actual = dataset.location or DEFAULT_LOCATION
        if self.requested_location and actual.lower() != self.requested_location.lower():
            raise RevCentBigQueryError(
                f"Dataset {self.table.dataset_id} is in location {actual!r}, but location="
                f"{self.requested_location!r} was asked for. Set location={actual!r} (or leave it unset to use "
                "the dataset's), or choose a destination_table in a dataset of that location."
            )
        self.location = actual

    @staticmethod
    def _create(create: Any, get: Any) -> Any:
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
            dataset = self.client.get_dataset(dataset_id)
        except google_exceptions.NotFound:
            new = bigquery.Dataset(dataset_id)
            new.location = self.location
            self.client.create_dataset(new, exists_ok=True)
            return
        if (dataset.location or DEFAULT_LOCATION).lower() != (self.location or DEFAULT_LOCATION).lower():
            raise RevCentBigQueryError(
                f"Dataset {dataset_id} is in location {dataset.location!r} but the destination's dataset is in "
                f"{self.location!r}; one transaction cannot span locations. Put the history table beside the "
                "destination."
            )

    def _ensure_table(
        self, ref: TableRef, schema: list[SchemaField], partition: str, description: str
    ) -> list[SchemaField]:
        """Create the table, or check and extend an existing one; return the existing schema ([] if new)."""
        try:
            existing = self.client.get_table(str(ref))
        except google_exceptions.NotFound:
            table = bigquery.Table(str(ref), schema=schema)
            table.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY,
                                                                field=partition)
            table.clustering_fields = list(CLUSTERING_FIELDS)
            table.description = description
            self._create(lambda: self.client.create_table(table, exists_ok=True),
                         lambda: self.client.get_table(str(ref)))
            log.info("Created table %s (partitioned by DAY on %s)", ref, partition)
            return []
        diff = diff_schema(schema, existing.schema)
        if diff.conflicts:
            raise RevCentBigQueryError(
                f"Table {ref} exists with a schema that conflicts with the customers schema: "
                f"{'; '.join(diff.conflicts)}. Load into another table, or fix or drop those columns (the "
                "expected schema is in docs/reference.md)."
            )
        if diff.missing:
            existing.schema = add_missing(existing.schema, schema)
            self.client.update_table(existing, ["schema"])
            log.info("Added columns to %s: %s", ref, ", ".join(diff.missing))
        return list(existing.schema)

    def _drop_stale_staging(self) -> None:
        # BigQuery removes expired tables by itself; this also clears what a killed run left in
        # servers that only hide them, without touching a concurrent run's live staging table.
        prefix = f"{STAGING_PREFIX}{self.table.table}_"
        cutoff = datetime.now(UTC) - self.staging_expiration
        for item in self.client.list_tables(self.table.dataset_id):
            if not item.table_id.startswith(prefix):
                continue
            expires, created = item.expires, item.created
            if (expires and expires <= datetime.now(UTC)) or (created and created < cutoff):
                self.client.delete_table(item.reference, not_found_ok=True)
                log.info("Dropped stale staging table %s", item.table_id)

    # -- load and apply -----------------------------------------------------------------------
    def apply(self, files: Sequence[Path], key: str) -> ApplyResult:
        """Load NDJSON files into a staging table, MERGE it into the destination, drop it.

        :param files: newline-delimited JSON files whose rows match the table's schema.
        :param key: identifies this load's content (same content and run, same key).
        """
        result = ApplyResult()
        # The destination's creation time is part of the MERGE's id: a table dropped and recreated since
        # (a repair) gets the load again, while a retry against the same table is not applied twice.
        merge_base = f"revcent_merge_{key}_{self._epoch(self.table)}"
        done = self._find_done(merge_base)
        staging = self.table.staging(key)
        if done is not None:
            log.info("MERGE job %s already applied this load; not applying it again", done.job_id)
            result.job_ids.append(done.job_id)
            result.already_applied = True
            self._drop(staging)
            return result
        table = bigquery.Table(str(staging), schema=self.schema)
        table.expires = datetime.now(UTC) + self.staging_expiration
        self.client.create_table(table, exists_ok=True)
        # Load jobs are named after this staging table's creation: a retry finds the jobs that filled
        # this very table, never those of an earlier one that expired (its jobs would say "done" over an
        # empty table).
        staged = self._epoch(staging)
        for index, path in enumerate(files):
            job = self._run_job(f"revcent_load_{key}_{staged}_{index}",
                                lambda job_id, p=path, i=index: self._load(p, i, job_id, staging))
            result.job_ids.append(job.job_id)
            result.rows_loaded += int(job.output_rows or 0)
        names = [c.name for c in self.columns]
        if self.history is None:
            sql = merge_statement(self.table, staging, names)
        else:
            # A script reports no DML counts: count the changes first (read-only, same snapshot).
            counts = next(iter(self.client.query(change_counts_query(self.table, staging), location=self.location,
                                                 job_retry=None).result()))
            result.rows_inserted, result.rows_updated = int(counts["inserted"]), int(counts["updated"])
            sql = history_script(self.table, staging, self.history, names)
        merge = self._run_job(merge_base, lambda job_id: self.client.query(
            sql, job_id=job_id, location=self.location, job_retry=None))
        result.job_ids.append(merge.job_id)
        stats = getattr(merge, "dml_stats", None)
        if stats is not None:
            result.rows_inserted, result.rows_updated = stats.inserted_row_count, stats.updated_row_count
        self._drop(staging)
        return result

    def _epoch(self, ref: TableRef) -> int:
        """The table's creation time in milliseconds (distinguishes a recreated table)."""
        created = self.client.get_table(str(ref)).created
        return int(created.timestamp() * 1000) if created else 0

    def _load(self, path: Path, index: int, job_id: str, staging: TableRef) -> Any:
        config = bigquery.LoadJobConfig(
            schema=self.schema,
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            write_disposition="WRITE_TRUNCATE" if index == 0 else "WRITE_APPEND",
            create_disposition="CREATE_NEVER",
            max_bad_records=0,
        )
        with path.open("rb") as handle:
            return self.client.load_table_from_file(
                handle, str(staging), job_id=job_id, job_config=config, location=self.location
            )

    def _drop(self, staging: TableRef) -> None:
        try:
            self.client.delete_table(str(staging), not_found_ok=True)
        except google_exceptions.GoogleAPICallError as exc:
            log.warning("Could not drop staging table %s (it expires by itself): %s", staging, exc)

    def _get_job(self, job_id: str) -> Any | None:
        try:
            return self.client.get_job(job_id, location=self.location)
        except google_exceptions.NotFound:
            return None

    def _find_done(self, base: str) -> Any | None:
        for n in range(MAX_JOB_SUFFIXES):
            job = self._get_job(_suffixed(base, n))
            if job is None:
                return None
            if job.state == "DONE" and not job.error_result:
                return job
        return None

    def _run_job(self, base: str, submit: Any) -> Any:
        """Run a job under the first free deterministic id, or reattach to one already submitted."""
        last_error: Any = None
        for n in range(MAX_JOB_SUFFIXES):
            job_id = _suffixed(base, n)
            job = self._get_job(job_id)
            if job is not None and job.state == "DONE" and job.error_result:
                last_error = job.error_result
                continue  # an earlier attempt failed under this id; ids cannot be reused
            if job is None:
                try:
                    job = submit(job_id)
                except google_exceptions.Conflict:
                    job = self._get_job(job_id)
                    if job is None:
                        raise
            else:
                log.info("Reattaching to BigQuery job %s (state %s)", job_id, job.state)
            try:
                job.result()
            except google_exceptions.GoogleAPICallError as exc:
                reason = (job.error_result or {}).get("reason")
                last_error = job.error_result or {"message": str(exc)}
                if reason in TRANSIENT_REASONS or _concurrent_update(job, exc):
                    log.warning("BigQuery job %s failed transiently (%s); trying a new job", job_id, reason)
                    continue
                raise RevCentBigQueryError(
                    f"BigQuery job {job_id} failed: {_job_errors(job, exc)}. The destination {self.table} was not "
                    "changed."
                ) from None
            return job
        raise RevCentBigQueryError(
            f"BigQuery jobs {base}_* failed {MAX_JOB_SUFFIXES} times; last error: {last_error}. The destination "
            f"{self.table} was not changed."
        )


def _concurrent_update(job: Any, exc: Exception) -> bool:
    """A DML job aborted because another one wrote the same table at the same time; a new job succeeds.

    BigQuery says "concurrent update"; the local BigQuery-API server (DuckLake) says "failed to commit".
    """
    errors = _job_errors(job, exc).lower()
    return "concurrent update" in errors or "failed to commit" in errors


def _suffixed(base: str, n: int) -> str:
    return base if n == 0 else f"{base}_r{n}"


def _job_errors(job: Any, exc: Exception) -> str:
    errors = getattr(job, "errors", None) or []
    messages = [str(e.get("message", e)) for e in errors[:5]] or [str(exc)]
    return "; ".join(messages)
