"""RevCentToBigQueryTaskGroup: one load of a long history, its windows spread over Airflow's workers.

The group is the operator's three phases (:meth:`~RevCentToBigQueryOperator.plan_run`,
:meth:`~RevCentToBigQueryOperator.stage_windows`, :meth:`~RevCentToBigQueryOperator.apply_run`) as three
tasks: ``plan`` splits the interval into windows, ``windows`` is mapped over them (one task instance per
window, each retried alone, on any worker), and ``apply`` merges what they staged in one transaction.
The tasks share the run's staging in BigQuery, never a disk: each window's rows are in its staging table
before its task ends, and XCom carries only the plan's bounds, table names and counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import TaskGroup, XComArg

from airflow_revcent import DEFAULT_POOL, api_pool
from airflow_revcent.api.windows import Interval
from airflow_revcent.compat import failing_fast, max_map_length
from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.transfers.revcent_to_bigquery import PERMANENT_ERRORS, RevCentToBigQueryOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_revcent.transfers.revcent_to_bigquery import RunPlan

#: The XCom key under which the plan task pushes ``RunPlan.to_xcom()`` (its return value is the window
#: list, because Airflow maps only over a task's return value).
PLAN_KEY = "plan"


def window_items(plan: RunPlan) -> list[dict[str, int]]:
    """The list the ``windows`` task is mapped over: each window's index and bounds (unix seconds), so a
    mapped task instance says which window it is without reading the plan.

    :param plan: the run's plan.
    """
    return [{"index": i, "start": int(w.start), "end": int(w.end)} for i, w in enumerate(plan.windows)]


def check_map_length(count: int, *, limit: int | None = None) -> None:
    """Fail, naming the count and the fixes, when the windows would exceed Airflow's ``max_map_length``
    (Airflow would otherwise fail the mapping with a message about XCom lengths).

    :param count: how many windows the plan has.
    :param limit: the limit (default: ``[core] max_map_length``).
    """
    limit = max_map_length() if limit is None else limit
    if count > limit:
        raise RevCentConfigError(
            f"The interval splits into {count} windows, more than Airflow maps in one task ([core] "
            f"max_map_length = {limit}). Use a larger window_size, a shorter range (date_start/date_end), "
            f"or raise [core] max_map_length (AIRFLOW__CORE__MAX_MAP_LENGTH) to at least {count}."
        )


def _owner(run_owner: str) -> str:
    """The run owner the three tasks share (the group's id), so they all name the same staging."""
    if not isinstance(run_owner, str) or not run_owner:
        raise RevCentConfigError(f"run_owner={run_owner!r} must be the task group's id.")
    return run_owner


def _plan_xcom(value: Any, task_id: str) -> Mapping[str, Any]:
    """The plan task's XCom, as rendered (a mapping), else an error naming what arrived."""
    if not isinstance(value, Mapping):
        raise RevCentConfigError(
            f"{task_id}: run_plan={type(value).__name__} is not the plan task's XCom (a mapping): the task must "
            "run downstream of the group's plan task, which pushes it under the key 'plan'."
        )
    return value


class RevCentPlanOperator(RevCentToBigQueryOperator):
    """The group's ``plan`` task: renders and validates the arguments, prepares the destination, opens
    the run's staging and splits the interval into windows. Pushes ``RunPlan.to_xcom()`` under the
    key ``plan`` and returns the window list the ``windows`` task is mapped over.

    :param run_owner: the task group's id (the owner in the run's staging names).
    """

    def __init__(self, *, run_owner: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_owner = _owner(run_owner)

    def execute(self, context: Context) -> list[dict[str, int]]:  # type: ignore[override]  # the window list
        with failing_fast(PERMANENT_ERRORS, enabled=self._fail_fast):
            plan = self.plan_run(context)
            items = window_items(plan)
            check_map_length(len(items))
            context["ti"].xcom_push(key=PLAN_KEY, value=plan.to_xcom())
            self.log.info("Planned %d window(s) for the mapped task; the plan is in XCom %r", len(items),
                          PLAN_KEY)
            return items

class RevCentWindowOperator(RevCentToBigQueryOperator):
    """The group's mapped ``windows`` task: reads and stages one window of the plan (nothing if an
    earlier attempt already marked it done). Returns the window's counts.

    :param run_plan: the plan task's XCom ``plan`` (templated: an ``XComArg``).
    :param window: one item of the plan task's window list (``index``, ``start``, ``end``).
    :param run_owner: the task group's id.
    """

    template_fields: Sequence[str] = (*RevCentToBigQueryOperator.template_fields, "run_plan")

    def __init__(self, *, run_plan: Any, window: Mapping[str, Any], run_owner: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_owner = _owner(run_owner)
        self.run_plan = run_plan
        self.window = window

    @property
    def window_label(self) -> str:
        """The window's bounds, for the mapped task instance's name in the UI."""
        window = self.window if isinstance(self.window, Mapping) else {}
        try:
            bounds = Interval(int(window["start"]), int(window["end"]))
        except (KeyError, TypeError, ValueError):
            return str(window.get("index", ""))
        return f"{bounds.start_iso} .. {bounds.end_iso}"

    def _index(self) -> int:
        index = self.window.get("index") if isinstance(self.window, Mapping) else None
        if type(index) is not int or index < 0:
            raise RevCentConfigError(
                f"{self.task_id}: window={self.window!r} is not an item of the plan task's window list "
                "(a mapping with an integer 'index')."
            )
        return index

    def execute(self, context: Context) -> dict[str, Any]:
        with failing_fast(PERMANENT_ERRORS, enabled=self._fail_fast):
            index = self._index()
            xcom = _plan_xcom(self.run_plan, self.task_id)
            plan = self.resume_plan(context, xcom)
            counts: dict[str, Any] = self.stage_windows(context, plan, indexes=[index])
            return counts

class RevCentApplyOperator(RevCentToBigQueryOperator):
    """The group's ``apply`` task: once every window is staged, merges them into the destination in one
    transaction and drops the run's staging. Returns the run's summary (the operator's keys).

    :param run_plan: the plan task's XCom ``plan`` (templated: an ``XComArg``).
    :param run_owner: the task group's id.
    """

    template_fields: Sequence[str] = (*RevCentToBigQueryOperator.template_fields, "run_plan")

    def __init__(self, *, run_plan: Any, run_owner: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_owner = _owner(run_owner)
        self.run_plan = run_plan

    def execute(self, context: Context) -> dict[str, Any]:
        with failing_fast(PERMANENT_ERRORS, enabled=self._fail_fast):
            xcom = _plan_xcom(self.run_plan, self.task_id)
            plan = self.resume_plan(context, xcom)
            summary: dict[str, Any] = self.apply_run(context, plan)
            return summary


class RevCentToBigQueryTaskGroup(TaskGroup):
    """Load a RevCent list resource's items of an interval into a BigQuery table as a task group, the
    windows read by a mapped task: for a long history that outgrows one task (years of items, hours of
    API time).

    The group holds three tasks, ``<group_id>.plan`` >> ``<group_id>.windows`` (mapped, one task instance per
    window) >> ``<group_id>.apply``, built from :class:`RevCentToBigQueryOperator` with the same arguments,
    so every templated argument renders the same way in each:

    * ``plan`` renders and validates the arguments, prepares the destination, opens the run's staging
      table and splits the interval into windows; it fails, naming the count and the fixes, when they are
      more than Airflow maps (``[core] max_map_length``, default 1024).
    * each ``windows`` task instance reads one window and appends its rows to the run's staging table in
      BigQuery before it ends, then marks the window done. A failed window is retried alone (the task's
      ``retries``); a retry of a window already marked reads nothing.
    * ``apply`` merges the staged windows into the destination in one transaction, as the single
      operator does, and returns its summary (the ``outlets``, given or the destination's asset, are on this
      task only).

    The group's id is the run's owner: its tasks share one staging table per run, whichever worker runs
    them. XCom carries the plan (bounds, table names), the window list and counts, never rows or paths.

    :param group_id: the task group's id (also the owner in the run's staging names).
    :param resource: the list resource, as :class:`RevCentToBigQueryOperator` takes it.
    :param destination_table: ``[project.]dataset.table`` (templated).
    :param date_start: interval start (templated); default: the run's ``data_interval_start``.
    :param date_end: interval end, exclusive (templated); default: the run's ``data_interval_end``.
    :param pool: the pool of the tasks that call RevCent (``plan`` and ``windows``); default
        :func:`airflow_revcent.api_pool` (``$REVCENT_API_POOL``, else ``default_pool``). Its slots bound how many
        windows read at once; the connection's ``account_requests_per_second`` and ``account_pool_slots``
        pace each task as they pace single tasks.
    :param apply_pool: the pool of ``apply``, which calls RevCent for nothing but the OpenAPI document
        (default ``default_pool``: it does not hold a share of the API allowance while BigQuery merges).
    :param tooltip: the group's tooltip in the UI (default: what it loads).
    :param operator_kwargs: every other argument of :class:`RevCentToBigQueryOperator` (``filters``,
        ``window_size``, ``pii``, ``lookback``, ...) and of ``BaseOperator`` (``retries``,
        ``execution_timeout``, ...), given to all three tasks.
    """

    def __init__(
        self,
        *,
        group_id: str,
        resource: str,
        destination_table: str,
        date_start: Any = None,
        date_end: Any = None,
        pool: str | None = None,
        apply_pool: str | None = None,
        tooltip: str = "",
        **operator_kwargs: Any,
    ) -> None:
        for reserved in ("task_id", "run_owner", "run_plan", "window"):
            if reserved in operator_kwargs:
                raise RevCentConfigError(
                    f"RevCentToBigQueryTaskGroup sets {reserved} for its tasks itself: remove {reserved}="
                    f"{operator_kwargs[reserved]!r}."
                )
        super().__init__(group_id=group_id, tooltip=tooltip or f"RevCent {resource} into {destination_table}")
        owner = str(self.group_id)  # prefixed by the parent group's id when nested
        outlets = operator_kwargs.pop("outlets", None)
        common = {"resource": resource, "destination_table": destination_table, "date_start": date_start,
                  "date_end": date_end, "run_owner": owner, **operator_kwargs}
        api = pool or api_pool()
        with self:
            # outlets=[] on plan and windows: the destination's asset is reported once, by apply, when the
            # table changed (the operator declares it by default).
            self.plan = RevCentPlanOperator(task_id="plan", pool=api, outlets=[], **common)
            plan_xcom = XComArg(self.plan, key=PLAN_KEY)
            self.windows = RevCentWindowOperator.partial(
                task_id="windows", pool=api, outlets=[], run_plan=plan_xcom,
                map_index_template="{{ task.window_label }}", **common,
            ).expand(window=self.plan.output)
            self.apply = RevCentApplyOperator(
                task_id="apply", pool=apply_pool or DEFAULT_POOL, run_plan=plan_xcom,
                # A plan with no windows skips the mapped task: apply still runs (and applies nothing); a skipped
                # plan (a branch not taken) skips it.
                trigger_rule="none_failed_min_one_success",
                **({} if outlets is None else {"outlets": outlets}), **common,
            )
            self.windows >> self.apply
