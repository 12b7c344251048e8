"""From `meltano schedule list --format=json` to a plan of DAGs: pure, no Airflow import.

The DAG file (meltano_dags.py) turns each plan into an Airflow DAG; keeping the decisions here
lets the test suite check them without installing Airflow. What is decided:

- One DAG per schedule, id `meltano_<schedule name>`, on the schedule's cron interval.
  A schedule whose interval is `@once` (no cron interval) gets no DAG, as in Meltano's own
  generator: it is run by hand.
- A job schedule runs its tasks in stages. Consecutive extract-load tasks (two or more plugin
  names and no `plugin:command` block, e.g. `tap-manufacturing--refills target-warehouse-raw`)
  form one stage and run in parallel; every other task (a command such as
  `target-warehouse-raw:check` or `dbt-postgres:build`, or an extract-load task that ends in a
  command) is a stage of its own. Stages run in order, each after the whole previous stage
  succeeded, which is what `meltano run <job>` does one task at a time. Parallel loads are
  safe because each task has its own extractor and so its own Meltano state ID and run folder.
- A legacy `elt` schedule is one task, `meltano schedule run <name>`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DAG_ID_PREFIX = "meltano_"
_NOT_IN_TASK_ID = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class TaskPlan:
    """One Airflow task: the meltano command line after `meltano`."""

    task_id: str
    meltano_args: tuple[str, ...]


@dataclass(frozen=True)
class DagPlan:
    """One Airflow DAG for one Meltano schedule."""

    dag_id: str
    schedule_name: str
    cron: str
    tags: tuple[str, ...]
    env: dict[str, str]
    stages: tuple[tuple[TaskPlan, ...], ...]


def blocks_of(task: str | Iterable[str]) -> tuple[str, ...]:
    """The blocks of a job task, given as a string (`"tap target"`) or a list of strings."""
    text = task if isinstance(task, str) else " ".join(task)
    return tuple(text.split())


def is_extract_load(blocks: tuple[str, ...]) -> bool:
    """Whether a task is a self-contained extract-load run that may run beside others.

    Decided from the task's text alone, without asking Meltano for plugin types: `meltano
    run` accepts several plain plugin names only as extractor [mappers] loader, so two or more
    names with no `plugin:command` among them is an extract-load block set. Anything else
    keeps its place in the job's order.
    """
    return len(blocks) >= 2 and not any(":" in block for block in blocks)


def _task_id(blocks: tuple[str, ...], taken: set[str]) -> str:
    base = _NOT_IN_TASK_ID.sub("_", "_".join(blocks)).strip("_") or "task"
    task_id, number = base, 2
    while task_id in taken:
        task_id, number = f"{base}_{number}", number + 1
    taken.add(task_id)
    return task_id


def job_stages(tasks: Iterable[str | Iterable[str]]) -> tuple[tuple[TaskPlan, ...], ...]:
    """A job's tasks as stages: runs of extract-load tasks in parallel, the rest one by one."""
    stages: list[list[TaskPlan]] = []
    taken: set[str] = set()
    previous_was_extract_load = False
    for task in tasks:
        blocks = blocks_of(task)
        if not blocks:
            continue
        plan = TaskPlan(_task_id(blocks, taken), ("run", *blocks))
        extract_load = is_extract_load(blocks)
        if extract_load and previous_was_extract_load:
            stages[-1].append(plan)
        else:
            stages.append([plan])
        previous_was_extract_load = extract_load
    return tuple(tuple(stage) for stage in stages)


def _env(schedule: Mapping[str, Any]) -> dict[str, str]:
    return {str(key): str(value) for key, value in (schedule.get("env") or {}).items()}


def plan_dags(schedule_export: Mapping[str, Any]) -> list[DagPlan]:
    """Every DAG for the output of `meltano schedule list --format=json` (Meltano 2+)."""
    schedules = schedule_export.get("schedules") or {}
    plans = []
    for schedule in schedules.get("job") or []:
        job = schedule.get("job") or {}
        stages = job_stages(job.get("tasks") or [])
        if not schedule.get("cron_interval") or not stages:
            continue
        plans.append(
            DagPlan(
                dag_id=DAG_ID_PREFIX + schedule["name"],
                schedule_name=schedule["name"],
                cron=schedule["cron_interval"],
                tags=("meltano", f"schedule:{schedule['name']}", f"job:{job.get('name')}"),
                env=_env(schedule),
                stages=stages,
            )
        )
    for schedule in schedules.get("elt") or []:
        if not schedule.get("cron_interval"):
            continue
        task = TaskPlan("extract_load", ("schedule", "run", schedule["name"]))
        plugins = [schedule.get(key) for key in ("extractor", "loader") if schedule.get(key)]
        plans.append(
            DagPlan(
                dag_id=DAG_ID_PREFIX + schedule["name"],
                schedule_name=schedule["name"],
                cron=schedule["cron_interval"],
                tags=("meltano", f"schedule:{schedule['name']}", *plugins),
                env=_env(schedule),
                stages=((task,),),
            )
        )
    return plans


def durable_state_problem(environ: Mapping[str, str]) -> str | None:
    """Why this Meltano environment must not run, or None.

    An environment that sets PIPELINE_REQUIRE_DURABLE_STATE (meltano.yml's `prod` does) keeps
    its incremental bookmarks only in a PostgreSQL system database: a local SQLite file would
    start from zero on the next machine and disagree between machines.
    """
    required = environ.get("PIPELINE_REQUIRE_DURABLE_STATE", "").strip().lower()
    if required not in ("1", "true", "yes"):
        return None
    uri = environ.get("MELTANO_DATABASE_URI", "").strip()
    if uri.startswith(("postgresql:", "postgresql+", "postgres:")):
        return None
    environment = environ.get("MELTANO_ENVIRONMENT") or "this"
    return (
        f"the {environment} environment keeps Meltano's state in PostgreSQL, but "
        "MELTANO_DATABASE_URI is "
        + ("not set" if not uri else "not a postgresql:// URI")
        + "; set it to e.g. postgresql://USER:PASSWORD@HOST:5432/warehouse"
        "?options=-csearch_path%3Dmeltano (see README: Orchestration and state)"
    )
