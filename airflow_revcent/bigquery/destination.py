"""A resource's table in BigQuery: dataset and table set-up (destination, history, lock) and their rules.

Staging a run and applying it is :mod:`~airflow_revcent.bigquery.staging` (:class:`RunStaging`); the jobs
both run go through one runner (:mod:`~airflow_revcent.bigquery.jobs`). Set-up only adds (datasets,
tables, columns, the lock row): the destination's rows change only in the run's one transaction.

What follows BigQuery's documented rules rather than the local server's leniency:

* **STRUCTs by position.** Each staging table is created with the schema of the table it feeds
  (same nested fields in the same order, the fields this run does not write included), so every
  ``SET rec = S.rec`` copies like onto like. NDJSON loads match fields by name, so the files need
  not know that order. The columns the pipeline writes are those the pipeline and the table both
  have; a value the table has no column for goes to ``_unknown_fields``.
* **Attempts.** Staging belongs to the run, not to the attempt (see :mod:`~airflow_revcent.bigquery.staging`):
  a retry reads only the windows no earlier attempt staged, and finds an applying job that already
  committed instead of applying the run twice.
* **Transient failures** of any API call (5xx, ``backendError``, ``rateLimitExceeded``, dropped
  connections) are retried with backoff by the client; a failed job whose reason is transient, or
  that lost to a concurrent writer ("Could not serialize access", "Transaction is aborted due to
  concurrent update", "Too many DML statements outstanding"), is run again as a new job
  (:class:`~airflow_revcent.bigquery.jobs.JobRunner`). Any other job failure fails at once, naming
  the job and table; a job BigQuery refuses for good, a conflicting schema and a dataset in another
  location as :class:`~airflow_revcent.exceptions.RevCentBigQueryPermanentError` (never retried).
* **Expiration.** A dataset's default table and partition expirations would apply to a new table
  and delete customers silently: the pipeline clears them on every table it creates (staging
  tables excepted, which expire on purpose) and says so in the log, and checks its own tables
  again on every run (that update may have failed or lost a race).
* **Adoption.** An existing destination is judged on its partitioning before anything changes
  (:mod:`~airflow_revcent.bigquery.adoption`); rows another writer left without ``_created_at``
  get it from ``created_date_unix`` in a job of their own before the first apply, or the run
  refuses when a row has neither.
* **Clustering** uses only the columns the new table has.
* **PII policy.** The destination and history tables record the PII settings that wrote them (a
  ``revcent-pii-policy:`` line of their description, :mod:`airflow_revcent.rows.pii`). Before anything
  changes, a run whose settings differ from a table's policy is refused, unless it says
  ``pii_policy_change="allow"``; the policy of a new table, or of one from before policies were
  recorded, is this run's.
"""

from __future__ import annotations

import functools
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as google_exceptions
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField

from airflow_revcent.bigquery.adoption import decide, shape_of
from airflow_revcent.bigquery.fields import (
    add_missing,
    diff_schema,
    from_schema_fields,
    to_schema_fields,
    written_columns,
)
from airflow_revcent.bigquery.jobs import API_RETRY, JOB_ATTEMPTS, JobRunner
from airflow_revcent.bigquery.staging import RunStaging
from airflow_revcent.bigquery.statements import (
    CREATED_UNIX_COLUMN,
    DEFAULT_KEY,
    adoption_fill_statement,
    lock_init_statement,
    orphan_ids_query,
    unplaced_rows_query,
)
from airflow_revcent.bigquery.tables import LOCK_PREFIX, STAGING_PREFIX, TableRef
from airflow_revcent.exceptions import (
    RevCentBigQueryError,
    RevCentBigQueryPermanentError,
    RevCentConfigError,
    RevCentPiiPolicyError,
)
from airflow_revcent.rows.columns import (
    HISTORY_COLUMNS,
    METADATA_COLUMNS,
    PARTITION_COLUMN,
    Column,
    find_column,
    table_columns,
)
from airflow_revcent.rows.drift import Promotion, add_columns, with_promoted
from airflow_revcent.rows.pii import (
    PiiPolicy,
    PiiSettings,
    PolicyDiff,
    compare_policies,
    description_with_policy,
    infer_policy,
    policy_error,
    policy_in_description,
)

log = logging.getLogger(__name__)

DEFAULT_LOCATION = "US"
DEFAULT_STAGING_EXPIRATION = timedelta(days=1)
#: Preferred clustering of a new table; only the columns the table has are used.
CLUSTERING_FIELDS = ("campaign_id", "status", "id")
def table_description(name: str = "customers", path: str = "/v2/customers") -> str:
    """The description the pipeline gives a resource's table (customers' is :data:`TABLE_DESCRIPTION`).

    :param name: the resource's name (``sales``).
    :param path: its list path (``/v2/sales``).
    """
    row = "one row per customer id" if name == "customers" else f"one row per {name} item id"
    return (f"RevCent {name} (GET {path}), {row}, loaded by airflow-provider-revcent. "
            "Columns starting with '_' are added by the pipeline.")


def history_description(name: str = "customers") -> str:
    """The description of a resource's type-2 history table (customers' is :data:`HISTORY_DESCRIPTION`).

    :param name: the resource's name.
    """
    item = "customer" if name == "customers" else f"{name} item"
    return (f"Every version of every RevCent {item} (type 2): _valid_from/_valid_to/_is_current, written by "
            f"airflow-provider-revcent in the same transaction as the {name} table.")


TABLE_DESCRIPTION = table_description()
HISTORY_DESCRIPTION = history_description()
LOCK_DESCRIPTION = (
    "One row that every airflow-provider-revcent write to the customers table updates first, so BigQuery "
    "never runs two writes to it at once. Do not delete."
)
LOCK_SCHEMA = [
    SchemaField("revision", "INTEGER", description="How many writes have been applied."),
    SchemaField("run_id", "STRING", description="The Airflow run that wrote last."),
    SchemaField("updated_at", "TIMESTAMP", description="When."),
]


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
    :param pii: the run's PII settings (key read), checked against and recorded as the tables' PII policy;
        ``None``: the policy is neither checked nor recorded.
    :param pii_policy_change: ``"refuse"`` (default): a run whose settings differ from a table's recorded
        policy fails before any change; ``"allow"``: the run records its settings as the new policy.
    :param resource_name: the resource's name, for the tables' descriptions.
    :param resource_path: the resource's path, for the tables' descriptions.
    :param key_field: the column that identifies an item: the statements match rows on it.
    :param created_field: the column of the item's creation time in unix seconds (fills ``_created_at``).
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
        pii: PiiSettings | None = None,
        pii_policy_change: str = "refuse",
        resource_name: str = "customers",
        resource_path: str = "/v2/customers",
        key_field: str = DEFAULT_KEY,
        created_field: str = CREATED_UNIX_COLUMN,
    ) -> None:
        self.client = client
        self.key_field = key_field
        self.created_field = created_field
        #: The descriptions this resource's tables get.
        self.table_description = table_description(resource_name, resource_path)
        self.history_description = history_description(resource_name)
        self.pii_policy = None if pii is None else PiiPolicy.of(pii)
        self.pii_policy_change = pii_policy_change
        #: Tables this run found missing, so creates with its own policy.
        self._new_pii_tables: set[TableRef] = set()
        self.labels = dict(labels or {})
        self.job_prefix = job_prefix
        self.kms_key_name = kms_key_name
        #: Runs every job (load, transaction) in the dataset's location once that is settled.
        self.jobs = JobRunner(client, table, location=lambda: self.location)
        self.table = table
        self.wanted_columns = tuple(api_columns)
        self._set_api_columns(api_columns)
        self.requested_location = location
        self.location: str | None = location
        self.staging_expiration = staging_expiration
        self.history = history
        self._dataset_defaults: list[str] = []
        self.schemas: dict[TableRef, list[SchemaField]] = {}
        #: Rows of an adopted table that no bounded statement sees yet (filled by _adopt_rows).
        self._unplaced = 0
        #: partition_steps' limits for the destination's partitioning (see adoption.decide).
        self.step_limits: dict[str, int] = {}

    # -- set-up -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Make sure the dataset, table, lock and history exist with compatible schemas; clear expired
        staging tables; settle the columns this run writes."""
        self._check_pii_policy()  # before anything changes
        self._ensure_dataset()
        self._check_adoptable()
        existing = self._ensure_table(self.table, self.schema, PARTITION_COLUMN, self.table_description)
        if existing:
            # Fields promoted by earlier runs are API columns now: write them, or values would flip
            # between the column and _unknown_fields from run to run.
            self.wanted_columns = with_promoted(self.wanted_columns, from_schema_fields(existing))
        self._adopt_rows()
        self._ensure_history()
        self._record_pii_policy()
        self._ensure_lock()
        self._settle_columns()
        self._keep_own_tables_from_expiring()
        self._drop_stale_staging()

    def run_staging(self, run_key: str) -> RunStaging:
        """The staging of one run into this destination (:class:`~airflow_revcent.bigquery.staging.RunStaging`).

        :param run_key: names the run.
        """
        return RunStaging(self, run_key)

    def inspect(self) -> None:
        """What :meth:`prepare` learns, without changing anything: the dataset's location, the columns earlier
        runs promoted, the tables' schemas and the columns this run writes. For a task that continues a run
        another task prepared (the task group's window and apply tasks)."""
        dataset = self.client.get_dataset(self.table.dataset_id, retry=API_RETRY)
        self.location = dataset.location or DEFAULT_LOCATION
        self._dataset_defaults = _expiration_defaults(dataset)
        self._check_adoptable()
        self.wanted_columns = with_promoted(self.wanted_columns, from_schema_fields(self._get_table(self.table).schema))
        self._settle_columns()

    def _pii_tables(self) -> list[TableRef]:
        return [self.table] if self.history is None else [self.table, self.history]

    def _policy_diff(self, ref: TableRef, table: Any) -> tuple[PiiPolicy | None, PolicyDiff]:
        """The table's recorded policy (``None`` if it has none) and how this run differs from what the table
        holds; refuses (naming the table, the fields and the fix) a run that differs unless changes are allowed."""
        assert self.pii_policy is not None
        recorded = policy_in_description(table.description, table=str(ref))
        if recorded is None and ref in self._new_pii_tables:
            return None, PolicyDiff()  # created by this run, with its settings
        held = recorded if recorded is not None else infer_policy(from_schema_fields(table.schema))
        diff = compare_policies(held, self.pii_policy)
        if diff.changed and self.pii_policy_change != "allow":
            raise RevCentPiiPolicyError(policy_error(str(ref), diff, held, inferred=recorded is None))
        return recorded, diff

    def _check_pii_policy(self) -> None:
        """Refuse, before any change, a run whose PII settings differ from those its tables hold."""
        if self.pii_policy is None:
            return
        for ref in self._pii_tables():
            try:
                table = self._get_table(ref)
            except google_exceptions.NotFound:
                self._new_pii_tables.add(ref)  # a new table: it gets this run's policy
                continue
            self._policy_diff(ref, table)

    def _record_pii_policy(self) -> None:
        """Record this run's policy in each table's description where it is not there yet (a new table, one
        from before policies were recorded, an allowed change). The etag makes it a compare-and-set, and a
        concurrent run that recorded other settings in between is refused as above."""
        if self.pii_policy is None:
            return
        for ref in self._pii_tables():
            for _ in range(JOB_ATTEMPTS):
                table = self._get_table(ref)
                recorded, diff = self._policy_diff(ref, table)
                wanted = self.pii_policy
                if recorded is not None and wanted.hash_fields and wanted.key_fingerprint is None:
                    wanted = replace(wanted, key_fingerprint=recorded.key_fingerprint)  # no key here: keep theirs
                if recorded == wanted:
                    break
                table.description = description_with_policy(table.description, wanted)
                if not self.update_table(table, ["description"]):
                    continue  # changed concurrently: read it again
                if diff.changed:
                    log.warning(
                        "Changed the PII policy of %s (pii_policy_change='allow'): %s. Values already in the table "
                        "are not rewritten.", ref,
                        "; ".join([*map(str, diff.fields), *(["another hash key"] if diff.key_changed else [])]))
                else:
                    log.info("Recorded the PII policy of %s in its description: %s", ref, wanted.to_json())
                break
            else:
                raise RevCentBigQueryError(f"Could not record the PII policy of {ref}: its description kept changing "
                                           f"concurrently ({JOB_ATTEMPTS} tries). Retry the task.")

    def add_api_columns(self, promotions: Sequence[Promotion]) -> list[Promotion]:
        """Add promoted fields as nullable columns to the destination (and history) table; return those the
        table really has afterwards (a server that cannot add a field inside a RECORD leaves it out, and
        its values then stay in _unknown_fields rather than being lost)."""
        wanted = add_columns(self.wanted_columns, promotions)
        self._ensure_table(self.table, to_schema_fields(table_columns(wanted)), PARTITION_COLUMN,
                           self.table_description)
        self.wanted_columns = wanted
        self._ensure_history()
        self._settle_columns()
        return [p for p in promotions if find_column(self.api_columns, p.path.replace("[]", "")) is not None]

    def _settle_columns(self) -> None:
        """Write what the pipeline wants and the table (and history) really has, in the pipeline's terms."""
        self.schemas = {self.table: self._get_table(self.table).schema}
        if self.history is not None:
            self.schemas[self.history] = self._get_table(self.history).schema
        self._set_api_columns(written_columns(self.wanted_columns, self.schemas[self.table],
                                              self.schemas.get(self.history) if self.history else None))
        have = from_schema_fields(self.schemas[self.table])
        lost = [c.name for c in METADATA_COLUMNS if find_column(have, c.name) is None]
        if lost:
            raise RevCentBigQueryPermanentError(
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
                               "_valid_from", self.history_description)

    def _ensure_lock(self) -> None:
        lock = self.table.lock()
        try:
            self.client.get_table(str(lock), retry=API_RETRY)
        except google_exceptions.NotFound:
            table = bigquery.Table(str(lock), schema=LOCK_SCHEMA)
            table.description = LOCK_DESCRIPTION
            self.encrypt(table)
            self._create(lambda: self.client.create_table(table, exists_ok=True, retry=API_RETRY),
                         lambda: self.client.get_table(str(lock), retry=API_RETRY))
            self._clear_inherited_expiration(lock)
        # The lock only serializes writers while it has a row to update (tabledata.list costs nothing).
        if not list(self.client.list_rows(str(lock), max_results=1, selected_fields=LOCK_SCHEMA[:1],
                                          retry=API_RETRY)):
            # Ids of this set-up alone: the statement inserts only into an empty table, so repeating it is
            # safe, while one id for the table's life would reattach to its first success (and insert
            # nothing) once the row is deleted, and fail for good once that id's tries had failed.
            self.run_job(f"revcent_lock_init_{self.job_prefix}{self.epoch(lock)}_{uuid.uuid4().hex[:12]}",
                          lambda job_id: self.query(lock_init_statement(lock), job_id))

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
            raise RevCentBigQueryPermanentError(
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
            raise RevCentBigQueryPermanentError(
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
                raise RevCentBigQueryPermanentError(
                    f"Table {ref} exists with a schema that conflicts with the customers schema: "
                    f"{'; '.join(diff.conflicts)}. Load into another table, or fix or drop those columns (the "
                    "expected schema is in docs/reference.md)."
                )
            if not diff.missing:
                return list(existing.schema)
            existing.schema = add_missing(existing.schema, schema)
            # The etag makes this a compare-and-set: a concurrent change answers 412 and we look again.
            if not self.update_table(existing, ["schema"]):
                log.info("Table %s changed while its schema was being extended; reading it again", ref)
                time.sleep(random.uniform(0.1, 1.0))  # noqa: S311 - jitter, not security
                continue
            log.info("Added columns to %s: %s", ref, ", ".join(diff.missing))
            return list(existing.schema)
        raise RevCentBigQueryError(
            f"Could not extend the schema of {ref}: it kept changing concurrently ({JOB_ATTEMPTS} tries). "
            "Retry the task once other writers of the table are done."
        )

    def update_table(self, table: Any, fields: list[str]) -> bool:
        """Update a table's ``fields`` as a compare-and-set on its etag; ``False`` when a concurrent change won.

        BigQuery answers a stale etag with 412; the local BigQuery-API server answers the same race with 400
        "Conflict on update" or "Failed to commit" (its database's write conflict). Either way, read the table
        again and retry.
        """
        try:
            self.client.update_table(table, fields, retry=API_RETRY)
        except google_exceptions.PreconditionFailed:
            return False
        except google_exceptions.BadRequest as exc:
            if not any(m in str(exc).lower() for m in ("conflict on update", "failed to commit")):
                raise
            return False
        return True

    def _create_table(self, ref: TableRef, schema: list[SchemaField], partition: str, description: str) -> None:
        table = bigquery.Table(str(ref), schema=schema)
        table.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY,
                                                            field=partition)
        names = {f.name for f in schema if f.mode != "REPEATED" and f.field_type not in ("RECORD", "STRUCT", "JSON")}
        # BigQuery clusters on at most 4 existing top-level, non-repeated columns.
        # The resource's key in the place of customers' id.
        wanted = [c for c in CLUSTERING_FIELDS if c != DEFAULT_KEY] + [self.key_field]
        clustering = [c for c in wanted if c in names][:4]
        table.clustering_fields = clustering or None
        table.description = description
        self.encrypt(table)
        self._create(lambda: self.client.create_table(table, exists_ok=True, retry=API_RETRY),
                     lambda: self._get_table(ref))
        log.info("Created table %s (partitioned by DAY on %s, clustered by %s)", ref, partition,
                 ", ".join(clustering) or "nothing")
        self._clear_inherited_expiration(ref)

    def encrypt(self, table: Any) -> None:
        if self.kms_key_name:
            table.encryption_configuration = bigquery.EncryptionConfiguration(kms_key_name=self.kms_key_name)

    def query(self, sql: str, job_id: str | None = None) -> Any:
        """Every query the pipeline runs: labelled, in the dataset's location, retried on transient errors."""
        config = bigquery.QueryJobConfig(labels=self.labels)
        return self.client.query(sql, job_id=job_id, job_config=config, location=self.location, job_retry=None,
                                 retry=API_RETRY)

    @property
    def current_job(self) -> Any:
        """The job this destination is waiting on (or waited on last), for on_kill and the job link."""
        return self.jobs.current

    @current_job.setter
    def current_job(self, job: Any) -> None:
        self.jobs.current = job

    def cancel(self) -> None:
        """Cancel the job this destination waits on (on_kill: a killed task must not commit later)."""
        self.jobs.cancel()

    def _clear_inherited_expiration(self, ref: TableRef) -> None:
        """A dataset's default expirations apply to every new table; customers must never expire silently."""
        if not self._dataset_defaults:
            table = self._get_table(ref)
            partitioning = table.time_partitioning
            if not (table.expires or (partitioning and partitioning.expiration_ms)):
                return
        # Every expiration on a table the pipeline has just created is inherited.
        self._clear_expirations(ref, lambda table: (True, True), always=self._dataset_defaults != [])

    def _keep_own_tables_from_expiring(self) -> None:
        """On every run, clear what the dataset's defaults put on the pipeline's own tables (the clearing at
        creation may have failed or lost a race); warn about an expiration on a table it adopted."""
        datasets: dict[str, Any] = {}
        for ref in (self.table, self.history, self.table.lock()):
            if ref is None:
                continue
            table = self._get_table(ref)
            partitioning = table.time_partitioning
            if not (table.expires or (partitioning and partitioning.expiration_ms)):
                continue
            if not _own_table(table, ref):
                log.warning(
                    "Table %s has an expiration (table: %s, partitions: %s ms): BigQuery will delete the customers "
                    "in it when it passes. The pipeline does not change expirations of a table it did not create; "
                    "clear them (ALTER TABLE ... SET OPTIONS (expiration_timestamp = NULL, "
                    "partition_expiration_days = NULL)) unless that is what you want.", ref, table.expires,
                    partitioning.expiration_ms if partitioning else None)
                continue
            if ref.dataset_id not in datasets:
                datasets[ref.dataset_id] = self.client.get_dataset(ref.dataset_id, retry=API_RETRY)
            dataset = datasets[ref.dataset_id]
            self._clear_expirations(ref, functools.partial(_inherited_expirations, dataset=dataset))

    def _clear_expirations(self, ref: TableRef, which: Callable[[Any], tuple[bool, bool]], *,
                           always: bool = False) -> None:
        """Clear a table's expiration and/or its partitions' (``which`` says which, given the table read
        afresh); a concurrent change of the table (412) reads it again. ``always``: send the update even when
        the table shows none (a server may apply the dataset's defaults after answering)."""
        for _ in range(JOB_ATTEMPTS):
            table = self._get_table(ref)
            partitioning = table.time_partitioning
            clear_table, clear_partitions = which(table)
            fields = []
            if clear_table and table.expires:
                table.expires = None
                fields.append("expires")
            if clear_partitions and partitioning is not None and partitioning.expiration_ms:
                partitioning.expiration_ms = None
                table.time_partitioning = partitioning
                fields.append("time_partitioning")
            if not fields and not always:
                return
            fields = fields or ["expires"]
            try:
                updated = self.update_table(table, fields)
            except google_exceptions.GoogleAPICallError as exc:
                raise RevCentBigQueryError(
                    f"Could not clear the expiration that dataset {ref.dataset_id}'s defaults put on table {ref}: "
                    f"{exc}. BigQuery would delete its customers when it passes. Clear it yourself (ALTER TABLE "
                    "... SET OPTIONS (expiration_timestamp = NULL, partition_expiration_days = NULL)) or let the "
                    "pipeline's identity update the table (bigquery.tables.update), then run again."
                ) from None
            if not updated:
                log.info("Table %s changed while its expiration was being cleared; reading it again", ref)
                time.sleep(random.uniform(0.1, 1.0))  # noqa: S311 - jitter, not security
                continue
            log.warning(
                "Dataset %s has %s; cleared them on the table %s so its rows never expire. To expire data on "
                "purpose, set an expiration on the table itself (ALTER TABLE ... SET OPTIONS), which the pipeline "
                "keeps.", ref.dataset_id, " and ".join(self._dataset_defaults) or "a default expiration", ref,
            )
            return
        raise RevCentBigQueryError(
            f"Could not clear the expiration of {ref}: the table kept changing concurrently ({JOB_ATTEMPTS} tries). "
            "Retry the task once other writers of the table are done."
        )

    # -- adoption of a table filled before ----------------------------------------------------
    def _check_adoptable(self) -> None:
        """Refuse, before changing anything, a table the bounded statements could not write exactly or at all
        (see :mod:`~airflow_revcent.bigquery.adoption`), and one holding rows nothing can place; count the rows
        that :meth:`_adopt_rows` must fill."""
        try:
            table = self._get_table(self.table)
        except google_exceptions.NotFound:
            return
        verdict = decide(str(self.table), shape_of(table), [f.name for f in self.schema])
        if verdict.refusal:
            raise RevCentBigQueryPermanentError(verdict.refusal)
        if verdict.warning:
            log.warning("%s", verdict.warning)
        if verdict.max_days_per_statement:
            self.step_limits["max_days"] = verdict.max_days_per_statement
        if verdict.max_days_per_transaction:
            self.step_limits["max_days_per_transaction"] = verdict.max_days_per_transaction
        have = {f.name.lower(): f for f in table.schema}
        created = have.get(PARTITION_COLUMN)
        if created is not None and created.mode == "REQUIRED":
            return  # the pipeline's own table: every row has its _created_at
        created_unix = self.created_field
        unplaced, orphans, examples = self._count_unplaced(created is not None, created_unix.lower() in have)
        if orphans:
            lacking = "" if created_unix.lower() in have else f" (the table has no {created_unix} column)"
            raise RevCentBigQueryPermanentError(
                f"Table {self.table} holds {orphans} row(s) with neither {PARTITION_COLUMN} nor "
                f"{created_unix}{lacking}, e.g. ids {', '.join(examples)}: the pipeline cannot tell which "
                "day they belong to, so its next read of those customers would add each a second time. Set "
                f"{created_unix} on them (the customer's creation time in unix seconds) or delete them, then "
                "run again; nothing was changed."
            )
        self._unplaced = unplaced

    def _count_unplaced(self, has_created_at: bool, has_created_unix: bool) -> tuple[int, int, list[str]]:
        sql = unplaced_rows_query(self.table, has_created_at=has_created_at, has_created_unix=has_created_unix,
                                  created=self.created_field)
        row = next(iter(self.query(sql).result(retry=API_RETRY)))
        unplaced, orphans = int(row["unplaced"] or 0), int(row["orphans"] or 0)
        examples: list[str] = []
        if orphans:
            sql = orphan_ids_query(self.table, has_created_at=has_created_at, has_created_unix=has_created_unix,
                                   key=self.key_field, created=self.created_field)
            examples = [str(r["id"]) for r in self.query(sql).result(retry=API_RETRY)]
        return unplaced, orphans, examples

    def _adopt_rows(self) -> None:
        """Fill ``_created_at`` from ``created_date_unix`` on the rows another writer left without it, in a job
        of its own before any apply, so the bounded statements update them instead of inserting each customer
        a second time. Idempotent; two runs racing share the job (same id) or the later one fills nothing."""
        if not self._unplaced:
            return
        table = self._get_table(self.table)
        modified = int(table.modified.timestamp() * 1000) if table.modified else 0
        base = f"revcent_adopt_{self.job_prefix}{self.epoch(self.table)}_{modified}_{self._unplaced}"
        numeric = any(f.name.lower() == self.created_field.lower() and f.field_type in ("NUMERIC", "BIGNUMERIC")
                      for f in table.schema)
        fill = adoption_fill_statement(self.table, self.created_field, numeric=numeric)
        job = self.run_job(base, lambda job_id: self.query(fill, job_id))
        log.warning("Adopted %s rows of %s that another writer left without %s: filled it from %s (job %s)",
                    self._unplaced, self.table, PARTITION_COLUMN, self.created_field, job.job_id)
        # Rows another writer added meanwhile would be invisible to this run again: look once more.
        unplaced, _, _ = self._count_unplaced(True, True)
        if unplaced:
            raise RevCentBigQueryError(
                f"Table {self.table} still holds {unplaced} row(s) without {PARTITION_COLUMN} after job {job.job_id} "
                f"filled them: another writer is adding rows without it. Stop that writer (or have it set "
                f"{PARTITION_COLUMN} = TIMESTAMP_SECONDS({self.created_field})), then run again; nothing else was "
                "changed."
            )
        self._unplaced = 0

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

    def epoch(self, ref: TableRef) -> int:
        """The table's creation time in milliseconds (distinguishes a recreated table)."""
        created = self._get_table(ref).created
        return int(created.timestamp() * 1000) if created else 0

    def _find_applied(self, base: str, attempt: int) -> Any | None:
        """An applying job of this or an earlier attempt that succeeded (see :meth:`JobRunner.find_applied`)."""
        return self.jobs.find_applied(base, attempt)

    def run_job(self, base: str, submit: Callable[[str], Any]) -> Any:
        """Run a job under the first free deterministic id, retried as :meth:`JobRunner.run` says."""
        return self.jobs.run(base, submit)


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


#: Descriptions the pipeline gives the tables it creates: a table with one of them is the pipeline's own.
_OWN_DESCRIPTIONS = (TABLE_DESCRIPTION, HISTORY_DESCRIPTION, LOCK_DESCRIPTION)
#: Another resource's table or history description (table_description, history_description).
_OWN_DESCRIPTION = re.compile(
    r"RevCent \w+ \(GET /[\w/]+\), one row per \w+ item id, loaded by airflow-provider-revcent\. "
    r"Columns starting with '_' are added by the pipeline\."
    r"|Every version of every RevCent \w+ item \(type 2\): _valid_from/_valid_to/_is_current, written by "
    r"airflow-provider-revcent in the same transaction as the \w+ table\."
)


def _own_table(table: Any, ref: TableRef) -> bool:
    """A table the pipeline created (its lock, or one still carrying the pipeline's description)."""
    # The PII policy line is appended to the description the pipeline gave (pii.description_with_policy).
    description = getattr(table, "description", None) or ""
    return (ref.table.startswith(LOCK_PREFIX) or description.startswith(_OWN_DESCRIPTIONS)
            or _OWN_DESCRIPTION.match(description) is not None)


def _inherited_expirations(table: Any, dataset: Any) -> tuple[bool, bool]:
    """Which of a table's expirations its dataset's defaults set at creation: a table expiration exactly the
    default after the creation time, a partition expiration equal to the default. One the user set on the table
    differs from those, and is kept."""
    default_table = getattr(dataset, "default_table_expiration_ms", None)
    default_partition = getattr(dataset, "default_partition_expiration_ms", None)
    table_inherited = bool(default_table and table.expires and table.created and abs(
        (table.expires - table.created).total_seconds() * 1000 - default_table) < 1000)
    partitioning = table.time_partitioning
    partition_inherited = bool(default_partition and partitioning is not None
                               and partitioning.expiration_ms == default_partition)
    return table_inherited, partition_inherited
