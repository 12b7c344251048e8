"""The DAG plan from Meltano's schedule list (orchestrate/airflow/dags/meltano_plan.py).

Pure: no Airflow, no Meltano. The real `meltano schedule list` output and the real Airflow run
are in tests/e2e/test_airflow_dag.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The module lives in Airflow's DAG folder, which Airflow puts on sys.path; so do the tests.
sys.path.insert(0, str(ROOT / "orchestrate" / "airflow" / "dags"))
import meltano_plan as plan  # noqa: E402


def _job_schedule(tasks, name="nightly", cron="0 2 * * *", env=None):
    return {
        "name": name,
        "interval": "@daily",
        "cron_interval": cron,
        "env": env or {},
        "job": {"name": "el", "tasks": tasks},
    }


def _stages(dag):
    return [[(task.task_id, task.meltano_args) for task in stage] for stage in dag.stages]


def test_our_job_runs_the_three_sources_in_parallel_then_the_check():
    tasks = [
        "tap-manufacturing--refills target-warehouse-raw",
        "tap-manufacturing--bodies target-warehouse-raw",
        "tap-manufacturing--springs target-warehouse-raw",
        "warehouse-check:test",
    ]
    (dag,) = plan.plan_dags({"schedules": {"job": [_job_schedule(tasks)], "elt": []}})
    assert (dag.dag_id, dag.cron) == ("meltano_nightly", "0 2 * * *")
    assert dag.tags == ("meltano", "schedule:nightly", "job:el")
    assert _stages(dag) == [
        [
            ("tap-manufacturing--refills_target-warehouse-raw",
             ("run", "tap-manufacturing--refills", "target-warehouse-raw")),
            ("tap-manufacturing--bodies_target-warehouse-raw",
             ("run", "tap-manufacturing--bodies", "target-warehouse-raw")),
            ("tap-manufacturing--springs_target-warehouse-raw",
             ("run", "tap-manufacturing--springs", "target-warehouse-raw")),
        ],
        [("warehouse-check_test", ("run", "warehouse-check:test"))],
    ]  # fmt: skip


def test_commands_keep_their_order_and_split_the_parallel_runs():
    tasks = [
        "dbt:deps",
        "tap-a target-x",
        ["tap-b", "target-x"],  # Meltano also accepts a task as a list of blocks
        "dbt-postgres:build",
        "tap-c mapper target-x",
        "tap-d target-x dbt:run",  # an extract-load that ends in a command keeps its place
        "warehouse-check:test",
    ]
    (dag,) = plan.plan_dags({"schedules": {"job": [_job_schedule(tasks)]}})
    assert [[args for _, args in stage] for stage in _stages(dag)] == [
        [("run", "dbt:deps")],
        [("run", "tap-a", "target-x"), ("run", "tap-b", "target-x")],
        [("run", "dbt-postgres:build")],
        [("run", "tap-c", "mapper", "target-x")],
        [("run", "tap-d", "target-x", "dbt:run")],
        [("run", "warehouse-check:test")],
    ]


def test_task_ids_are_valid_airflow_ids_and_unique():
    tasks = ["tap-a target-x", "tap-a target-x", "warehouse-check:test", "warehouse-check:test"]
    (dag,) = plan.plan_dags({"schedules": {"job": [_job_schedule(tasks)]}})
    ids = [task_id for stage in _stages(dag) for task_id, _ in stage]
    assert ids == ["tap-a_target-x", "tap-a_target-x_2", "warehouse-check_test",
                   "warehouse-check_test_2"]  # fmt: skip


def test_once_schedules_and_empty_jobs_get_no_dag_and_elt_schedules_one_task():
    export = {
        "schedules": {
            "job": [_job_schedule(["tap-a target-x"], name="by-hand", cron=None),
                    _job_schedule([], name="empty")],
            "elt": [{"name": "legacy", "extractor": "tap-a", "loader": "target-x",
                     "transform": "skip", "interval": "@hourly", "cron_interval": "0 * * * *",
                     "env": {"TAP_A_LIMIT": 5}}],
        }
    }  # fmt: skip
    (dag,) = plan.plan_dags(export)
    assert dag.dag_id == "meltano_legacy"
    assert dag.tags == ("meltano", "schedule:legacy", "tap-a", "target-x")
    assert dag.env == {"TAP_A_LIMIT": "5"}
    assert _stages(dag) == [[("extract_load", ("schedule", "run", "legacy"))]]


def test_a_schedule_env_reaches_its_tasks():
    schedule = _job_schedule(["tap-a target-x"], env={"REFILLS_REPLICATION_METHOD": "INCREMENTAL"})
    (dag,) = plan.plan_dags({"schedules": {"job": [schedule]}})
    assert dag.env == {"REFILLS_REPLICATION_METHOD": "INCREMENTAL"}


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({}, None),
        ({"MELTANO_DATABASE_URI": "sqlite:///x.db"}, None),
        ({"PIPELINE_REQUIRE_DURABLE_STATE": "true",
          "MELTANO_DATABASE_URI": "postgresql://u:secret@db/warehouse"}, None),
        ({"PIPELINE_REQUIRE_DURABLE_STATE": "true",
          "MELTANO_DATABASE_URI": "postgresql+psycopg://u:secret@db/w"}, None),
        ({"PIPELINE_REQUIRE_DURABLE_STATE": "true", "MELTANO_ENVIRONMENT": "prod"},
         "the prod environment keeps Meltano's state in PostgreSQL, but MELTANO_DATABASE_URI "
         "is not set; set it to e.g. postgresql://USER:PASSWORD@HOST:5432/warehouse"
         "?options=-csearch_path%3Dmeltano (see README: Orchestration and state)"),
        ({"PIPELINE_REQUIRE_DURABLE_STATE": "true", "MELTANO_ENVIRONMENT": "prod",
          "MELTANO_DATABASE_URI": "sqlite:////secret/path/meltano.db"},
         "the prod environment keeps Meltano's state in PostgreSQL, but MELTANO_DATABASE_URI "
         "is not a postgresql:// URI; set it to e.g. postgresql://USER:PASSWORD@HOST:5432/"
         "warehouse?options=-csearch_path%3Dmeltano (see README: Orchestration and state)"),
    ],
)  # fmt: skip
def test_an_environment_that_requires_durable_state_refuses_a_local_one(environ, problem):
    assert plan.durable_state_problem(environ) == problem
