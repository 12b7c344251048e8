"""The schedule as Airflow runs it: the real Airflow utility, its DAG, real databases.

`airflow dags test` runs one DAG run in-process (tasks one after another, as a
SequentialExecutor would) against a metadata database of the test's own; every task is the
real `meltano run ...` of the job, so what lands in the warehouse is what a scheduled run
loads. The Airflow utility is installed once per session into the session's Meltano folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pen_factory import demo_data
from testkit.airflow_dag import (
    BODIES_TASK,
    CHECK_TASK,
    DAG_ID,
    DBT_TASK,
    REFILLS_TASK,
    SPRINGS_TASK,
    AirflowProject,
    closed_port,
)
from testkit.dbt_runs import isolate_dbt_output
from testkit.pipeline import (
    ORCHESTRATOR,
    Pipeline,
    assert_warehouse_equals_sources,
    install_plugins,
    table_snapshot,
    warehouse_rows,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

HISTORY = "SELECT stream, status, rows FROM raw._load_history ORDER BY stream, id"


@pytest.fixture(scope="session")
def airflow_installed(meltano_sys_dir: Path) -> Path:
    """`meltano install airflow` from the committed constraints, once per test session."""
    install_plugins(meltano_sys_dir, [ORCHESTRATOR])
    return meltano_sys_dir


@pytest.fixture
def airflow(pipeline: Pipeline, airflow_installed: Path, tmp_path: Path) -> AirflowProject:
    """The Airflow utility with a fresh metadata database, for this test's pipeline."""
    return AirflowProject(pipeline, tmp_path / "airflow")


def test_the_dag_loads_the_sources_in_parallel_tasks_then_checks_and_a_dead_source_fails_alone(
    pipeline: Pipeline, airflow: AirflowProject, dbt_executable, tmp_path
):
    isolate_dbt_output(pipeline, tmp_path)
    # The DAG Airflow built from the schedule: the three loads side by side (no task before
    # them), dbt build after each of them, the check after dbt.
    tree = pipeline.meltano("invoke", "airflow", "tasks", "list", DAG_ID, "--tree")
    lines = [line for line in tree.stdout.splitlines() if "<Task(BashOperator)" in line]
    assert lines == [
        line
        for task in sorted((BODIES_TASK, REFILLS_TASK, SPRINGS_TASK))
        for line in (f"<Task(BashOperator): {task}>",
                     f"    <Task(BashOperator): {DBT_TASK}>",
                     f"        <Task(BashOperator): {CHECK_TASK}>")
    ]  # fmt: skip

    # A scheduled run: three extract-load tasks, dbt, then the check; everything succeeds.
    run = airflow.test_dag()
    assert run.result.returncode == 0, run.result.output[-6000:]
    assert run.state == "success"
    assert run.task_states == {
        REFILLS_TASK: "success", BODIES_TASK: "success", SPRINGS_TASK: "success",
        DBT_TASK: "success", CHECK_TASK: "success",
    }  # fmt: skip
    assert_warehouse_equals_sources(pipeline)
    assert warehouse_rows(pipeline, HISTORY) == [
        ("bodies", "replaced", 300), ("refills", "replaced", 300), ("springs", "replaced", 300),
    ]  # fmt: skip
    for source in demo_data.SOURCES:  # the check task's report: rows, status, source rows, match
        assert re.search(rf"\b{source}\s+300\s+replaced\s.*\s300\s+yes\b", run.result.output), (
            run.result.output[-6000:]
        )

    # The next day: every source changed, and the bodies database is down.
    pipeline.source_sql("refills", "DELETE FROM refills_production WHERE id % 10 = 0")
    pipeline.source_sql("springs", "DELETE FROM springs_production WHERE id <= 7")
    pipeline.source_sql("bodies", "DELETE FROM bodies_production WHERE id <= 50")
    bodies_before = table_snapshot(pipeline.warehouse, "raw", "bodies")
    dead_port = closed_port()
    pipeline.env["BODIES_PORT"] = str(dead_port)
    run = airflow.test_dag()
    assert run.result.returncode == 1, run.result.output[-6000:]
    assert run.state == "failed"
    assert run.task_states == {
        REFILLS_TASK: "success", BODIES_TASK: "failed", SPRINGS_TASK: "success",
        DBT_TASK: "upstream_failed", CHECK_TASK: "upstream_failed",
    }  # fmt: skip
    # The failed task says which source could not be reached, where, and never a password.
    assert re.search(rf"source 'bodies' \(host=\S+ port={dead_port} ", run.result.output), (
        run.result.output[-6000:]
    )
    # The other sources were loaded; bodies keeps its last good content and history.
    for source, rows in (("refills", 270), ("springs", 293)):
        columns, count, digest = table_snapshot(
            pipeline.sources[source], "public", f"{source}_production"
        )
        names = [name for name, _ in columns]
        assert table_snapshot(pipeline.warehouse, "raw", source, names)[1:] == (count, digest)
        assert count == rows
    assert table_snapshot(pipeline.warehouse, "raw", "bodies") == bodies_before
    assert warehouse_rows(pipeline, HISTORY) == [
        ("bodies", "replaced", 300),
        ("refills", "replaced", 300), ("refills", "replaced", 270),
        ("springs", "replaced", 300), ("springs", "replaced", 293),
    ]  # fmt: skip


def test_prod_without_durable_state_gets_no_dag_but_an_import_error(
    pipeline: Pipeline, airflow: AirflowProject
):
    # The test's MELTANO_DATABASE_URI is a local SQLite file, as a forgotten prod set-up has.
    pipeline.env["MELTANO_ENVIRONMENT"] = "prod"
    errors = pipeline.meltano(
        "invoke", "airflow", "dags", "list-import-errors", "-o", "plain", check=False
    )
    assert errors.returncode == 1, errors.output[-4000:]
    assert (
        "the prod environment keeps Meltano's state in PostgreSQL, but MELTANO_DATABASE_URI is "
        "not a postgresql:// URI" in " ".join(errors.output.split())
    ), errors.output[-4000:]
    listed = pipeline.meltano("invoke", "airflow", "dags", "list", "-o", "plain", check=False)
    assert "meltano_manufacturing-el-daily" not in listed.stdout
