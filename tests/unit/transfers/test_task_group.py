"""RevCentToBigQueryTaskGroup without servers: its tasks, mapping, pools, dependencies and what goes through
XCom (the runs under `airflow dags test` and the scheduler: tests/integration/test_task_group.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

import pendulum
import pytest
from airflow.sdk import DAG, AssetAlias

from airflow_revcent import API_POOL_ENV, DEFAULT_POOL
from airflow_revcent.api.windows import Interval, Window
from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.transfers.revcent_to_bigquery import (
    RevCentToBigQueryOperator,
    RevCentToBigQueryTaskGroup,
    RunPlan,
)
from airflow_revcent.transfers.task_group import (
    PLAN_KEY,
    RevCentApplyOperator,
    RevCentPlanOperator,
    RevCentWindowOperator,
    check_map_length,
    window_items,
)

#: The most one XCom value of the group may take (JSON): a plan, a window, counts. Rows never pass.
SMALL = 4096


def _dag(**group_kwargs: Any) -> tuple[DAG, RevCentToBigQueryTaskGroup]:
    with DAG("d", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        group = RevCentToBigQueryTaskGroup(
            group_id="history", resource="customers", destination_table="{{ var.value.ds }}.customers",
            date_start="{{ params.since }}", date_end="{{ params.until }}", window_size=timedelta(days=30),
            retries=2, **group_kwargs)
    return dag, group


def test_the_group_is_plan_then_mapped_windows_then_apply():
    dag, group = _dag()
    assert sorted(dag.task_dict) == ["history.apply", "history.plan", "history.windows"]
    plan, windows, apply = (dag.get_task(f"history.{name}") for name in ("plan", "windows", "apply"))
    assert (group.plan, group.windows, group.apply) == (plan, windows, apply)
    assert isinstance(plan, RevCentPlanOperator) and isinstance(apply, RevCentApplyOperator)
    # The windows task is mapped over the plan task's return value (Airflow maps only over that).
    assert type(windows).__name__ == "MappedOperator" and windows.operator_class is RevCentWindowOperator
    assert set(cast("Any", windows.expand_input.value)) == {"window"}
    expanded: Any = windows.expand_input.value
    ref = expanded["window"]
    assert (ref.operator, ref.key) == (plan, "return_value")
    assert windows.partial_kwargs["run_plan"].key == PLAN_KEY
    assert apply.run_plan.operator is plan and apply.run_plan.key == PLAN_KEY
    assert plan.downstream_task_ids == {"history.windows", "history.apply"}
    assert windows.downstream_task_ids == {"history.apply"}
    assert apply.upstream_task_ids == {"history.plan", "history.windows"}
    # No windows (the mapped task skipped) still applies, nothing; a plan skipped by a branch skips apply.
    assert apply.trigger_rule == "none_failed_min_one_success"


def test_every_task_renders_the_same_arguments_and_owns_the_run_as_the_group():
    dag, _ = _dag(filters={"status_filter": ["{{ params.status }}"]})
    plan, windows, apply = (dag.get_task(f"history.{name}") for name in ("plan", "windows", "apply"))
    for name in RevCentToBigQueryOperator.template_fields:
        assert getattr(plan, name) == getattr(apply, name) == windows.partial_kwargs.get(name, getattr(plan, name))
        assert name in plan.template_fields and name in apply.template_fields and name in windows.template_fields
    assert "run_plan" in apply.template_fields and "run_plan" in windows.template_fields
    assert plan.run_owner == apply.run_owner == windows.partial_kwargs["run_owner"] == "history"
    assert plan.retries == apply.retries == windows.partial_kwargs["retries"] == 2
    assert plan.window_size == apply.window_size == timedelta(days=30)


def test_a_nested_group_owns_the_run_under_its_full_id():
    from airflow.sdk import TaskGroup

    with DAG("d", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag, TaskGroup("outer"):
        RevCentToBigQueryTaskGroup(group_id="inner", resource="sales", destination_table="ds.sales")
    assert dag.get_task("outer.inner.plan").run_owner == "outer.inner"


@pytest.mark.parametrize(("opt_in", "given", "pool"), [
    (None, None, DEFAULT_POOL), ("revcent_api", None, "revcent_api"), ("revcent_api", "mine", "mine"),
])
def test_the_tasks_that_call_revcent_take_the_api_pool_and_apply_does_not(monkeypatch, opt_in, given, pool):
    monkeypatch.delenv(API_POOL_ENV, raising=False)
    if opt_in:
        monkeypatch.setenv(API_POOL_ENV, opt_in)
    dag, _ = _dag(**({"pool": given} if given else {}))
    assert dag.get_task("history.plan").pool == pool
    assert dag.get_task("history.windows").partial_kwargs["pool"] == pool
    assert dag.get_task("history.apply").pool == DEFAULT_POOL
    assert _dag(apply_pool="bq")[0].get_task("history.apply").pool == "bq"


def test_only_apply_reports_the_destination():
    dag, _ = _dag()
    assert dag.get_task("history.plan").outlets == []
    assert dag.get_task("history.windows").partial_kwargs["outlets"] == []
    alias = AssetAlias("revcent_customers")
    dag, _ = _dag(outlets=[alias])
    assert dag.get_task("history.apply").outlets == [alias]
    assert dag.get_task("history.plan").outlets == []
    with DAG("fixed", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as fixed:
        RevCentToBigQueryTaskGroup(group_id="g", resource="customers", destination_table="p-1.ds.customers")
    assert [a.uri for a in fixed.get_task("g.apply").outlets] == ["bigquery://p-1/ds/customers"]
    assert fixed.get_task("g.plan").outlets == []


@pytest.mark.parametrize("name", ["task_id", "run_owner", "run_plan", "window"])
def test_arguments_the_group_sets_itself_are_refused(name):
    with pytest.raises(RevCentConfigError, match=f"sets {name} for its tasks itself"):
        _dag(**{name: "x"})


def test_the_constructors_touch_no_network_or_database(monkeypatch):
    import socket

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a constructor opened a connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    dag, _ = _dag()
    assert len(dag.tasks) == 3


def test_the_dag_serializes_and_deserializes_as_the_scheduler_stores_it():
    from airflow.serialization import serialized_objects

    # DagSerialization from Airflow 3.2 (SerializedDAG became the scheduler's DAG), SerializedDAG on 3.1.
    names = vars(serialized_objects)
    serializer: Any = names.get("DagSerialization") or names["SerializedDAG"]
    dag, _ = _dag()
    restored = serializer.from_dict(serializer.to_dict(dag))
    windows = restored.get_task("history.windows")
    assert type(windows).__name__.endswith("MappedOperator")  # SerializedMappedOperator from Airflow 3.2
    assert windows.map_index_template == "{{ task.window_label }}"
    assert restored.get_task("history.apply").upstream_task_ids == {"history.plan", "history.windows"}
    assert restored.task_group_dict["history"].children.keys() == {"history.plan", "history.windows",
                                                                      "history.apply"}


# -- the tasks' execute, the phases faked ---------------------------------------------------------


def FakePlan(windows: list[Window]) -> RunPlan:
    """A real plan as plan_run makes it, without the parts resolved in a task (never in XCom)."""
    interval = Interval(windows[0].start, windows[-1].end)
    return RunPlan(run_key="0123456789abcdef0123", interval=interval, read=interval, windows=tuple(windows),
                   destination="my-project.revcent.customers", history=None,
                   staging="my-project.revcent._revcent_staging_customers_0123456789abcdef0123",
                   resource="customers")


class FakeTi:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _windows(count: int, step: int = 86_400 * 30) -> list[Window]:
    return [Window(1_600_000_000 + i * step, 1_600_000_000 + (i + 1) * step) for i in range(count)]


def _ctx(ti: Any) -> Any:
    """A plain dict standing in for Airflow's Context."""
    return {"ti": ti}


def _xcom_sizes(*values: Any) -> list[int]:
    return [len(json.dumps(v)) for v in values]


def test_plan_pushes_the_plan_and_returns_one_small_item_per_window(monkeypatch):
    dag, _ = _dag()
    plan = dag.get_task("history.plan")
    fake = FakePlan(_windows(24))  # two years in 30-day windows
    calls: list[str] = []
    def plan_run(context: Any) -> RunPlan:
        calls.append("plan_run")
        return fake

    monkeypatch.setattr(plan, "plan_run", plan_run, raising=False)
    ti = FakeTi()
    items = plan.execute(_ctx(ti))
    assert calls == ["plan_run"]
    assert items == window_items(fake) and len(items) == 24
    assert items[3] == {"index": 3, "start": fake.windows[3].start, "end": fake.windows[3].end}
    assert ti.pushed == {PLAN_KEY: fake.to_xcom()}
    assert max(_xcom_sizes(ti.pushed[PLAN_KEY], *items)) < SMALL
    assert _xcom_sizes(items)[0] < 60 * len(items)  # the whole list grows by a few dozen bytes a window


def test_plan_fails_naming_the_count_and_the_fixes_past_max_map_length(monkeypatch):
    dag, _ = _dag()
    plan = dag.get_task("history.plan")
    monkeypatch.setattr(plan, "plan_run", lambda context: FakePlan(_windows(1025, step=86_400)), raising=False)
    ti = FakeTi()
    with pytest.raises(RevCentConfigError, match=r"1025 windows.*max_map_length = 1024.*larger window_size.*"
                                                 r"shorter range.*AIRFLOW__CORE__MAX_MAP_LENGTH"):
        plan.execute(_ctx(ti))
    assert ti.pushed == {}  # nothing for the mapped task to expand over
    check_map_length(1024)
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "2000")
    check_map_length(1025, limit=2000)


def test_a_window_task_resumes_the_plan_and_stages_only_its_window(monkeypatch):
    op = RevCentWindowOperator(task_id="w", resource="customers", destination_table="ds.t", run_owner="history",
                               run_plan=None, window={})
    fake = FakePlan(_windows(9))
    op.run_plan = fake.to_xcom()
    op.window = window_items(fake)[7]
    calls: list[Any] = []
    counts = {"windows_read": 1, "windows_skipped": 0, "rows": 412, "requests": 17}

    def resume_plan(context: Any, xcom: Any) -> RunPlan:
        calls.append(("resume", xcom))
        return fake

    def stage_windows(context: Any, plan: Any, indexes: Any = None) -> dict[str, int]:
        calls.append(("stage", plan, list(indexes)))
        return counts

    monkeypatch.setattr(op, "resume_plan", resume_plan, raising=False)
    monkeypatch.setattr(op, "stage_windows", stage_windows, raising=False)
    assert op.execute(_ctx(FakeTi())) == counts
    assert calls == [("resume", fake.to_xcom()), ("stage", fake, [7])]
    assert max(_xcom_sizes(counts)) < SMALL
    assert op.window_label.endswith("Z") and " .. " in op.window_label


@pytest.mark.parametrize("window", [{}, {"index": "3"}, {"index": -1}, None])
def test_a_window_task_given_no_window_item_fails_saying_so(window):
    op = RevCentWindowOperator(task_id="w", resource="customers", destination_table="ds.t", run_owner="g",
                               run_plan={}, window=window)
    with pytest.raises(RevCentConfigError, match="is not an item of the plan task's window list"):
        op.execute(_ctx(FakeTi()))


def test_apply_resumes_the_plan_and_applies_the_run(monkeypatch):
    dag, _ = _dag()
    apply = dag.get_task("history.apply")
    fake = FakePlan(_windows(9))
    apply.run_plan = fake.to_xcom()
    summary = {"destination": "p.ds.customers", "records_loaded": 1000, "windows": 9}
    calls: list[str] = []
    def resume_plan(context: Any, xcom: Any) -> RunPlan:
        calls.append("resume")
        return fake

    def apply_run(context: Any, plan: Any) -> dict[str, Any]:
        calls.append("apply")
        return summary

    monkeypatch.setattr(apply, "resume_plan", resume_plan, raising=False)
    monkeypatch.setattr(apply, "apply_run", apply_run, raising=False)
    assert apply.execute(_ctx(FakeTi())) == summary
    assert calls == ["resume", "apply"]


def test_apply_without_the_plan_xcom_says_where_it_comes_from():
    dag, _ = _dag()
    apply = dag.get_task("history.apply")
    apply.run_plan = None
    with pytest.raises(RevCentConfigError, match=r"history\.apply: run_plan=NoneType is not the plan task.s XCom"):
        apply.execute(_ctx(SimpleNamespace()))


def test_the_full_history_sample_runs_the_chosen_resource_group_only():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1 and 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]  # 3.3 moved it
    from pathlib import Path

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[3] / "dags" / "revcent_full_history.py"))
    assert not bag.import_errors
    dag = bag.dags["revcent_full_history"]
    assert dag.params["resource"] == "customers" and dag.params["until"] is None
    for resource in ("customers", "sales", "transactions"):
        plan = dag.get_task(f"{resource}_history.plan")
        assert plan.upstream_task_ids == {"pick"} and plan.resource == resource
        assert plan.destination_table.endswith(f".{resource}")
    pick = dag.get_task("pick")
    chosen = pick.python_callable(params={"resource": "sales"})
    assert chosen == "sales_history.plan" and chosen in dag.task_dict
