"""Helpers for the Airflow tests: the real Airflow utility, run by the real `meltano`."""

from __future__ import annotations

import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from testkit.pipeline import MeltanoResult, Pipeline

DAG_ID = "meltano_manufacturing-el-daily"
REFILLS_TASK = "tap-manufacturing--refills_target-warehouse-raw"
BODIES_TASK = "tap-manufacturing--bodies_target-warehouse-raw"
SPRINGS_TASK = "tap-manufacturing--springs_target-warehouse-raw"
DBT_TASK = "dbt-postgres_build"
CHECK_TASK = "warehouse-check_test"


@dataclass
class DagRun:
    """What one `airflow dags test` did: its exit, output and the states Airflow recorded."""

    result: MeltanoResult
    state: str
    task_states: dict[str, str]


class AirflowProject:
    """The project's Airflow utility with a metadata database of its own (one per test)."""

    def __init__(self, pipeline: Pipeline, home: Path) -> None:
        self.pipeline = pipeline
        self.database = home / "airflow.db"
        # Meltano's variables for the utility's settings (plugin name + setting name): the
        # AIRFLOW__* names would be overridden by the values Meltano exports from meltano.yml.
        pipeline.env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW_DATABASE_SQL_ALCHEMY_CONN=f"sqlite:///{self.database}",
            # `airflow dags test` waits out a retry's delay; a failure must fail at once here.
            AIRFLOW_CORE_DEFAULT_TASK_RETRIES="0",
        )
        pipeline.meltano("invoke", "airflow:migrate", timeout=300)

    def test_dag(self, dag_id: str = DAG_ID) -> DagRun:
        """`airflow dags test DAG_ID`: one run of the DAG now, its tasks in this process."""
        result = self.pipeline.meltano("invoke", "airflow", "dags", "test", dag_id, check=False,
                                       timeout=900)  # fmt: skip
        with sqlite3.connect(self.database) as connection:
            (run_id, state), *_ = connection.execute(
                "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC", (dag_id,)
            ).fetchall()
            tasks = dict(
                connection.execute(
                    "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                    (dag_id, run_id),
                ).fetchall()
            )
        connection.close()
        return DagRun(result, state, tasks)


def closed_port() -> int:
    """A local TCP port that nothing listens on (a source database that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
