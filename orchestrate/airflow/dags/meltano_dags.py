"""One Airflow DAG per Meltano schedule, built from `meltano schedule list --format=json`.

A schedule added to meltano.yml appears in Airflow at the next parse of this file, with
nothing else to edit. How tasks are grouped (parallel extract-load tasks, then the job's
other tasks in order) is decided in meltano_plan.py; this file only asks Meltano for the
schedules and turns each plan into a DAG of BashOperators running `meltano run ...` in the
project folder.

Every task runs the `meltano` that invoked Airflow (`meltano invoke airflow ...` leaves a link
to itself at `<system folder>/run/bin`), with the environment of the Airflow process plus the
schedule's `env`: the project's variables, MELTANO_ENVIRONMENT and MELTANO_DATABASE_URI reach
every task, on every machine that runs them.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from airflow import DAG
from airflow.exceptions import AirflowException
from airflow.operators.bash import BashOperator
from meltano_plan import DagPlan, durable_state_problem, plan_dags

logger = logging.getLogger(__name__)

# Meltano sets MELTANO_PROJECT_ROOT for the plugins it invokes; without it (Airflow started
# by other means), this file's own place in the project: orchestrate/airflow/dags/.
PROJECT_ROOT = Path(os.environ.get("MELTANO_PROJECT_ROOT") or Path(__file__).resolve().parents[3])
# Airflow runs no catch-up runs (`catchup=False`): a Meltano job reads whatever changed
# since its last state, so one run per due date is all there is to do; this date only
# has to be in the past.
START_DATE = datetime(2024, 1, 1, tzinfo=timezone.utc)
SCHEDULE_LIST_TIMEOUT = 120  # seconds; a parse of this file waits this long for Meltano


def meltano_executable() -> str:
    """The `meltano` to run: the one that invoked Airflow, else the one on PATH."""
    system_dirs = [os.environ.get("MELTANO_SYS_DIR_ROOT"), str(PROJECT_ROOT / ".meltano")]
    for system_dir in filter(None, system_dirs):
        link = Path(system_dir) / "run" / "bin"
        if link.exists():
            return str(link)
    found = shutil.which("meltano")
    if found is None:
        msg = (
            "cannot find the meltano executable: start Airflow with `meltano invoke airflow "
            "...` from the project, or put meltano on the PATH"
        )
        raise AirflowException(msg)
    return found


def list_schedules(meltano: str) -> dict:
    """`meltano schedule list --format=json`, or an error that says what Meltano said."""
    result = subprocess.run(
        [meltano, "--log-level=warning", "schedule", "list", "--format=json"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=SCHEDULE_LIST_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        msg = (
            f"`meltano schedule list` exited {result.returncode} in {PROJECT_ROOT}: "
            f"{result.stderr.strip()[-2000:]}"
        )
        raise AirflowException(msg)
    return json.loads(result.stdout)


def build_dag(plan: DagPlan, meltano: str) -> DAG:
    """The DAG of one schedule: each stage starts when the whole previous stage succeeded."""
    dag = DAG(
        plan.dag_id,
        description=f"Meltano schedule {plan.schedule_name}",
        schedule=plan.cron,
        start_date=START_DATE,
        catchup=False,
        # Two runs of one job at once would load the same tables and race on their state.
        max_active_runs=1,
        tags=list(plan.tags),
        default_args={"owner": "meltano"},
    )
    previous: list[BashOperator] = []
    for stage in plan.stages:
        current = [
            BashOperator(
                task_id=task.task_id,
                bash_command="exec " + shlex.join([meltano, *task.meltano_args]),
                cwd=str(PROJECT_ROOT),
                env=plan.env,
                append_env=True,
                dag=dag,
            )
            for task in stage
        ]
        for task in current:
            task.set_upstream(previous)
        previous = current
    return dag


def create_dags() -> dict[str, DAG]:
    """Every schedule's DAG, after refusing an environment whose state would not last."""
    problem = durable_state_problem(os.environ)
    if problem is not None:
        raise AirflowException(problem)
    meltano = meltano_executable()
    dags = {}
    for plan in plan_dags(list_schedules(meltano)):
        dags[plan.dag_id] = build_dag(plan, meltano)
        logger.info("DAG %s for Meltano schedule %s", plan.dag_id, plan.schedule_name)
    return dags


globals().update(create_dags())
