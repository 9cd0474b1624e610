"""A run's staging in BigQuery: one staging table per run, window markers, and the applying transaction.

The destination (:mod:`~airflow_revcent.bigquery.destination`) sets the tables up; this module stages a run
into them and applies it. Nothing here touches the destination until the one transaction at the end
(:func:`~airflow_revcent.bigquery.statements.apply_script`), so a run that fails anywhere before it, or
inside it, leaves the destination as it was.

* **Run-scoped staging.** One staging table per run (:class:`RunStaging`, named by the run's key, not by
  the attempt), created with the schema of the table it feeds (STRUCTs are assigned by position) when
  absent, kept when present. Each window's files are appended to it by load jobs as soon as the window
  is read; a load job's id is named by the staging table's creation time and the file's content, so a
  resubmitted file reattaches instead of loading twice.
* **Window markers.** A window is done when all its files loaded: then an empty marker table
  ``<staging>_w<index>`` is created whose labels (:class:`WindowFacts`) carry what the window held and the
  staging table's creation time. A later attempt lists the markers and reads only the windows without a
  valid one; a marker of a staging table since dropped and recreated is ignored.
* **Duplicates cannot bend the table.** A window appended twice (a zombie attempt beside its retry, a window
  read again after a partial load) is harmless: the transaction keeps one staging row per id, the latest read.
* **Apply.** One transaction from the run's staging table once every window has a valid marker. Its job id
  is derived from the run's key, the markers' content digests and the destination's creation time: a retry
  after a committed apply finds that job (:meth:`~airflow_revcent.bigquery.jobs.JobRunner.find_applied`) and
  does not apply again, while a run cleared and read again with new content applies its new reads. After a
  successful apply the markers are dropped, then the staging table.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as google_exceptions
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField

from airflow_revcent.bigquery.fields import add_missing, same_shape, staging_schema
from airflow_revcent.bigquery.jobs import API_RETRY, JOB_ATTEMPTS
from airflow_revcent.bigquery.statements import apply_script, partition_steps
from airflow_revcent.bigquery.tables import TableRef
from airflow_revcent.exceptions import RevCentBigQueryError, RevCentStagingLostError

if TYPE_CHECKING:
    from airflow_revcent.bigquery.destination import CustomersDestination

log = logging.getLogger(__name__)

#: A marker table's one column (BigQuery needs none; some servers want one). It never holds a row.
MARKER_SCHEMA = [SchemaField("window", "INTEGER", description="Never written: the table's labels are the facts.")]
#: Label that tells a marker from any other table.
MARKER_LABEL = "revcent-window-marker"


@dataclass
class ApplyResult:
    """What applying one run to the destination did."""

    job_ids: list[str] = field(default_factory=list)
    rows_loaded: int = 0
    rows_inserted: int | None = None
    rows_updated: int | None = None
    already_applied: bool = False
    #: Statements of the transaction (one per step and table), for the summary.
    steps: int = 0


@dataclass(frozen=True)
class WindowFacts:
    """What one staged window held, as its marker's labels carry it.

    :param index: the window's index in the run.
    :param start: the window's first second.
    :param end: the first second after it.
    :param rows: rows staged for it.
    :param skipped: items skipped as invalid.
    :param distinct: distinct items the API returned for it.
    :param total_count: the API's ``total_count`` (``None`` without totals).
    :param created_min: the earliest creation time (unix seconds) among its rows, ``None`` without rows.
    :param created_max: the latest.
    :param digest: an order-independent digest of its rows' content (32 hex digits).
    :param epoch: the staging table's creation time (ms) the rows went into.
    :param history_epoch: the history staging table's (0 when the history shares the staging table).
    """

    index: int
    start: int
    end: int
    rows: int
    skipped: int = 0
    distinct: int = 0
    total_count: int | None = None
    created_min: int | None = None
    created_max: int | None = None
    digest: str = ""
    epoch: int = 0
    history_epoch: int = 0

    def labels(self) -> dict[str, str]:
        """The marker's labels (BigQuery label values: lowercase letters, digits, ``_`` and ``-``)."""
        def text(value: int | None) -> str:
            return "none" if value is None else str(value)

        return {
            MARKER_LABEL: "1", "window-start": text(self.start), "window-end": text(self.end),
            "rows": text(self.rows), "skipped": text(self.skipped), "distinct": text(self.distinct),
            "total-count": text(self.total_count), "created-min": text(self.created_min),
            "created-max": text(self.created_max), "digest": self.digest[:32], "staging-epoch": text(self.epoch),
            "history-epoch": text(self.history_epoch),
        }

    @classmethod
    def from_labels(cls, index: int, labels: Mapping[str, str]) -> WindowFacts | None:
        """The facts a marker's labels carry, or ``None`` when they are not a marker's (or are damaged).

        :param index: the window's index (from the marker's name).
        :param labels: the marker table's labels.
        """
        def number(name: str) -> int | None:
            value = labels[name]
            return None if value == "none" else int(value)

        if labels.get(MARKER_LABEL) != "1":
            return None
        try:
            values = {name: number(name) for name in ("window-start", "window-end", "rows", "skipped", "distinct",
                                                      "staging-epoch", "history-epoch")}
            if any(v is None for v in values.values()):
                return None
            return cls(index=index, start=int(values["window-start"] or 0), end=int(values["window-end"] or 0),
                       rows=int(values["rows"] or 0), skipped=int(values["skipped"] or 0),
                       distinct=int(values["distinct"] or 0), total_count=number("total-count"),
                       created_min=number("created-min"), created_max=number("created-max"),
                       digest=labels["digest"], epoch=int(values["staging-epoch"] or 0),
                       history_epoch=int(values["history-epoch"] or 0))
        except (KeyError, ValueError):
            return None


class RunStaging:
    """One run's staging table, its window markers and its apply.

    :param destination: the prepared (or inspected) destination whose columns this run writes.
    :param run_key: names the run (same table, DAG, run, owner, map index, resource, interval and filters:
        same key); see the operator's ``plan_run``.
    """

    def __init__(self, destination: CustomersDestination, run_key: str) -> None:
        self.destination = destination
        self.run_key = run_key
        self.table = destination.table.staging(run_key)
        #: A staging table of its own for the history when its nested fields are in another order.
        self.history_table: TableRef | None = None
        #: Creation times (ms) of the staging tables as this attempt opened them (0: absent).
        self.epoch = 0
        self.history_epoch = 0
        #: Load jobs this attempt ran, and the rows they loaded.
        self.job_ids: list[str] = []
        self.rows_loaded = 0

    # -- naming ---------------------------------------------------------------------------------
    def marker(self, index: int) -> TableRef:
        """The marker table of window ``index``."""
        return self.destination.table.staging(f"{self.run_key}_w{index:05d}")

    @property
    def _marker_prefix(self) -> str:
        return f"{self.table.table}_w"

    def _names(self) -> list[str]:
        return [c.name for c in self.destination.columns]

    def _targets(self) -> list[tuple[TableRef, TableRef]]:
        """(staging table, the table it feeds) for each staging table of the run."""
        pairs = [(self.table, self.destination.table)]
        if self.history_table is not None and self.destination.history is not None:
            pairs.append((self.history_table, self.destination.history))
        return pairs

    def _decide_history(self) -> None:
        history = self.destination.history
        if history is None:
            self.history_table = None
            return
        schemas = self.destination.schemas
        shared = same_shape(schemas[self.destination.table], schemas[history], self._names())
        self.history_table = None if shared else history.staging(self.run_key)

    # -- opening --------------------------------------------------------------------------------
    def open(self) -> None:
        """Create the run's staging table(s) if absent (kept if present), with the written columns; remember
        their creation times (which a marker must carry to count)."""
        self._decide_history()
        for staging, target in self._targets():
            self._ensure(staging, target)
        self._read_epochs()
        log.info("Staging this run in %s (created %s)", self.table,
                 datetime.fromtimestamp(self.epoch / 1000, UTC).isoformat() if self.epoch else "now")

    def attach(self) -> None:
        """Learn the staging tables' creation times without changing anything (0 for a table that is absent)."""
        self._decide_history()
        self._read_epochs()

    def _read_epochs(self) -> None:
        self.epoch = self._epoch_or_zero(self.table)
        self.history_epoch = 0 if self.history_table is None else self._epoch_or_zero(self.history_table)

    def _epoch_or_zero(self, ref: TableRef) -> int:
        try:
            return self.destination.epoch(ref)
        except google_exceptions.NotFound:
            return 0

    def _ensure(self, staging: TableRef, target: TableRef) -> None:
        """Create ``staging`` shaped like ``target`` for the written columns, or add the columns it lacks."""
        wanted = staging_schema(self.destination.schemas[target], self._names())
        client = self.destination.client
        for _ in range(JOB_ATTEMPTS):
            try:
                existing = client.get_table(str(staging), retry=API_RETRY)
            except google_exceptions.NotFound:
                table = bigquery.Table(str(staging), schema=wanted)
                table.expires = datetime.now(UTC) + self.destination.staging_expiration
                self.destination.encrypt(table)
                # A concurrent attempt (or a create whose answer was lost) may make it first: keep theirs. The
                # local server reports that race as a failed commit rather than 409.
                _create(client, table)
                continue  # read it back: its schema may be the other attempt's
            schema = add_missing(existing.schema, wanted)
            if len(schema) == len(existing.schema) and [f.to_api_repr() for f in schema] == [
                    f.to_api_repr() for f in existing.schema]:
                return
            existing.schema = schema
            if self.destination.update_table(existing, ["schema"]):
                log.info("Added the columns this run writes to its staging table %s", staging)
                return
        raise RevCentBigQueryError(f"Could not set up the staging table {staging}: it kept changing concurrently "
                                   f"({JOB_ATTEMPTS} tries). Retry the task.")

    def extend(self) -> None:
        """After columns were added to the destination (promoted fields): add them to the staging table(s)."""
        for staging, target in self._targets():
            self._ensure(staging, target)

    # -- markers ----------------------------------------------------------------------------------
    def marks(self, windows: Sequence[tuple[int, int]] | None = None) -> dict[int, WindowFacts]:
        """The windows with a valid marker: its staging epochs equal the staging tables' current ones, and
        (when ``windows`` is given) its bounds equal the window's.

        :param windows: the run's windows as (start, end), by index.
        """
        if not self.epoch:
            return {}
        facts: dict[int, WindowFacts] = {}
        for item, index in self._marker_items():
            labels = dict(getattr(item, "labels", None) or {})
            if not labels:  # a server that leaves labels out of tables.list
                try:
                    labels = dict(self.destination.client.get_table(item.reference, retry=API_RETRY).labels or {})
                except google_exceptions.NotFound:
                    continue
            fact = WindowFacts.from_labels(index, labels)
            if fact is None or fact.epoch != self.epoch or fact.history_epoch != self.history_epoch:
                continue
            if windows is not None and (index >= len(windows) or (fact.start, fact.end) != tuple(windows[index])):
                continue
            facts[index] = fact
        return facts

    def _marker_items(self) -> Iterable[tuple[Any, int]]:
        prefix = self._marker_prefix
        for item in self.destination.client.list_tables(self.destination.table.dataset_id, retry=API_RETRY):
            name = item.table_id
            if name.startswith(prefix) and name[len(prefix):].isdigit():
                yield item, int(name[len(prefix):])

    def mark(self, facts: WindowFacts) -> None:
        """Record that window ``facts.index`` is staged (or update what its marker says)."""
        client = self.destination.client
        ref = self.marker(facts.index)
        for _ in range(JOB_ATTEMPTS):
            try:
                existing = client.get_table(str(ref), retry=API_RETRY)
            except google_exceptions.NotFound:
                table = bigquery.Table(str(ref), schema=MARKER_SCHEMA)
                table.labels = facts.labels()
                table.expires = datetime.now(UTC) + self.destination.staging_expiration
                self.destination.encrypt(table)
                if _create(client, table, exists_ok=False):
                    return
                continue  # marked meanwhile (a sibling attempt): say what this one staged
            # Marked before (an earlier pass of the window, a sibling attempt): say what this one staged.
            existing.labels = facts.labels()
            if self.destination.update_table(existing, ["labels"]):
                return
        raise RevCentBigQueryError(f"Could not mark {ref}: it kept changing concurrently ({JOB_ATTEMPTS} tries). "
                                   "Retry the task.")

    # -- loading ----------------------------------------------------------------------------------
    def stage_window(self, files: Sequence[Path], facts: WindowFacts, *, mark: bool = True) -> WindowFacts:
        """Append a window's files to the staging table(s), then mark the window.

        :param files: the window's NDJSON files (this segment of it).
        :param facts: what the window holds in all (its marker's labels); epochs are filled in here.
        :param mark: ``False`` stages the rows but leaves the window unmarked (read again by a retry).
        :raises RevCentStagingLostError: the staging table was dropped meanwhile (a sibling attempt applied
            the run, or it expired): open it again and read the windows again.
        """
        for path in files:
            for staging, target in self._targets():
                self._load_file(path, staging, target)
        facts = WindowFacts(**{**facts.__dict__, "epoch": self.epoch, "history_epoch": self.history_epoch})
        if mark:
            self._check_alive()
            self.mark(facts)
        return facts

    def _load_file(self, path: Path, staging: TableRef, target: TableRef) -> None:
        epoch = self.epoch if staging == self.table else self.history_epoch
        schema = staging_schema(self.destination.schemas[target], self._names())
        # Named by the staging table's creation time and the file's content: a resubmitted file reattaches.
        base = f"revcent_load_{self.destination.job_prefix}{epoch}_{_file_digest(path)}"
        try:
            job = self.destination.run_job(base, functools.partial(self._load, path, staging=staging, schema=schema))
        except RevCentBigQueryError as exc:
            if exc.reason == "notFound" or self._epoch_or_zero(staging) != epoch:
                raise self._lost(staging) from exc
            raise
        self.job_ids.append(job.job_id)
        if staging == self.table:
            self.rows_loaded += int(job.output_rows or 0)

    def _load(self, path: Path, job_id: str, *, staging: TableRef, schema: list[SchemaField]) -> Any:
        config = bigquery.LoadJobConfig(
            schema=schema,
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            write_disposition="WRITE_APPEND",
            create_disposition="CREATE_NEVER",
            max_bad_records=0,
            labels=self.destination.labels,
        )
        with path.open("rb") as handle:
            return self.destination.client.load_table_from_file(
                handle, str(staging), job_id=job_id, job_config=config, location=self.destination.location)

    def _check_alive(self) -> None:
        """The staging table(s) this attempt loaded are still the ones it opened (a marker must not outlive them)."""
        for staging, epoch in ((self.table, self.epoch), (self.history_table, self.history_epoch)):
            if staging is not None and self._epoch_or_zero(staging) != epoch:
                raise self._lost(staging)

    def _lost(self, staging: TableRef) -> RevCentStagingLostError:
        return RevCentStagingLostError(
            f"The staging table {staging} of this run was dropped while this attempt loaded into it (an attempt "
            "running beside this one applied the run, or the table expired: staging_expiration). This attempt "
            "opens it again and reads the run's windows again.", reason="notFound")

    # -- applying -------------------------------------------------------------------------------
    def apply_base(self, facts: Mapping[int, WindowFacts]) -> str:
        """The applying job's id stem: the run's key, the windows' digests and the destination's creation time.

        :param facts: every window's marker facts.
        """
        content = "|".join([self.run_key, *(f"{i}:{facts[i].digest}" for i in sorted(facts))])
        digest = hashlib.sha256(content.encode()).hexdigest()[:32]
        # The destination's creation time: a table dropped and recreated since (a repair) gets the run again.
        return f"revcent_apply_{self.destination.job_prefix}{digest}_{self.destination.epoch(self.destination.table)}"

    def apply(self, facts: Mapping[int, WindowFacts], *, attempt: int = 1, run_id: str | None = None) -> ApplyResult:
        """Apply the staged run to the destination in one transaction, unless an earlier attempt did.

        :param facts: every window's marker facts (the caller checked none is missing).
        :param attempt: the task's try number (the job id's ``_t<n>``).
        :param run_id: the Airflow run, recorded on the lock row.
        """
        jobs = self.destination.jobs
        base = self.apply_base(facts)
        result = ApplyResult(job_ids=list(self.job_ids), rows_loaded=sum(f.rows for f in facts.values()))
        done = jobs.find_applied(base, attempt)
        if done is not None:
            return self._already_applied(done, result)
        created = [(f.created_min, f.created_max) for f in facts.values() if f.rows and f.created_min is not None]
        if not created:
            result.rows_inserted = result.rows_updated = 0
            return result
        first = datetime.fromtimestamp(min(c[0] for c in created if c[0] is not None), UTC)
        last = datetime.fromtimestamp(max(c[1] for c in created if c[1] is not None), UTC)
        steps = partition_steps(first, last, **self.destination.step_limits)
        history_staging = self.history_table or (self.table if self.destination.history is not None else None)
        sql = apply_script(self.destination.table, self.table, self._names(), steps, run_id=run_id,
                           history=self.destination.history, history_staging=history_staging,
                           key=self.destination.key_field)
        try:
            job = jobs.run(f"{base}_t{attempt}", lambda job_id: self.destination.query(sql, job_id))
        except RevCentBigQueryError:
            # An attempt running beside this one may have applied the run (and dropped its staging) meanwhile.
            done = jobs.find_applied(base, attempt + JOB_ATTEMPTS)
            if done is None:
                raise
            return self._already_applied(done, result)
        result.job_ids.append(job.job_id)
        result.steps = len(steps)
        read_counts(job, result)
        return result

    @staticmethod
    def _already_applied(done: Any, result: ApplyResult) -> ApplyResult:
        log.info("BigQuery job %s already applied this run; not applying it again", done.job_id)
        result.job_ids = [done.job_id]
        result.already_applied = True
        # What that job counted inside its transaction (an attempt killed after submitting it did not live to
        # report them); a job from before the counts were part of the script has none.
        read_counts(done, result)
        return result

    def drop(self) -> None:
        """Drop the markers, then the staging table(s): the run is applied (a failure only logs: they expire)."""
        try:
            markers = [item for item, _ in self._marker_items()]
        except google_exceptions.GoogleAPICallError as exc:
            log.warning("Could not list the markers of %s (they expire by themselves): %s", self.table, exc)
            markers = []
        for item in markers:
            _drop(self.destination.client, item.reference)
        for staging in (self.table, self.history_table):
            if staging is not None:
                _drop(self.destination.client, str(staging))


def read_counts(job: Any, result: ApplyResult) -> None:
    """The applying script's result row: inserted and updated, counted inside the transaction, so exact
    whatever ran beside it.

    :param job: the applying job.
    :param result: where the counts go.
    """
    row = next(iter(job.result(retry=API_RETRY)), None)
    # A bigquery Row's `in` looks at its values, not its field names.
    if row is not None and {"inserted", "updated"} <= set(row.keys()):
        result.rows_inserted, result.rows_updated = int(row["inserted"] or 0), int(row["updated"] or 0)


def _create(client: Any, table: Any, *, exists_ok: bool = True) -> bool:
    """Create a table; ``False`` when a concurrent create won (409, or the local server's failed commit)."""
    try:
        client.create_table(table, exists_ok=exists_ok, retry=API_RETRY)
    except google_exceptions.Conflict:
        return False
    except google_exceptions.BadRequest as exc:
        if "failed to commit" not in str(exc).lower():
            raise
        time.sleep(random.uniform(0.1, 1.0))  # noqa: S311 - jitter, not security
        return False
    return True


def _drop(client: Any, ref: Any) -> None:
    try:
        client.delete_table(ref, not_found_ok=True, retry=API_RETRY)
    except google_exceptions.GoogleAPICallError as exc:
        log.warning("Could not drop staging table %s (it expires by itself): %s", ref, exc)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:32]
