"""Helpers for the dbt tests: dbt installed by Meltano, run on a pipeline's warehouse."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

from testkit.pipeline import Pipeline, install_plugins
from testkit.processes import PROJECT_ROOT, run_meltano

DBT_PLUGIN = "dbt-postgres"
MODELS_SCHEMA = "analytics"


def ensure_dbt_installed(sys_dir: Path) -> Path:
    """`meltano install dbt-postgres` into the session's Meltano folder, unless it is there.

    The plugin virtualenv is built exactly as a user's `meltano install` builds it (uv, the
    pip_url of meltano.yml, the package index only). Returns the `dbt` executable in it.
    """
    dbt = sys_dir / "utilities" / DBT_PLUGIN / "venv" / "bin" / "dbt"
    if dbt.exists():
        return dbt
    install_plugins(sys_dir, [DBT_PLUGIN])
    if not dbt.exists():
        pytest.fail(f"meltano install {DBT_PLUGIN} did not create {dbt}")
    return dbt


def isolate_dbt_output(pipeline: Pipeline, folder: Path) -> None:
    """dbt's compiled files and logs go to this test's folder, not transform/target and
    transform/logs, so tests (and a developer's own runs) never share them."""
    pipeline.env["DBT_TARGET_PATH"] = str(folder / "dbt-target")
    pipeline.env["DBT_LOG_PATH"] = str(folder / "dbt-logs")


@dataclass
class DbtRun:
    """One dbt command's outcome, read from its output and run_results.json."""

    returncode: int
    output: str
    results: dict[str, tuple[str, int | None]]  # node name -> (status, failures)

    def status(self, name: str) -> str:
        """The status of the node called `name` (pass, fail, warn, success, skipped, error)."""
        return self.results[name][0]

    def failing(self) -> dict[str, int | None]:
        """Tests that failed (status fail or error), with their failure counts."""
        return {
            name: failures
            for name, (status, failures) in self.results.items()
            if status in ("fail", "error")
        }


def read_run_results(target_path: Path) -> dict[str, tuple[str, int | None]]:
    """Node name -> (status, failures) from dbt's run_results.json."""
    results = json.loads((target_path / "run_results.json").read_text())["results"]
    return {
        result["unique_id"].split(".")[2]: (result["status"], result.get("failures"))
        for result in results
    }


def meltano_dbt(pipeline: Pipeline, command: str, *, expect: int | None = 0) -> DbtRun:
    """`meltano invoke dbt-postgres:<command>`: dbt as the job runs it."""
    result = pipeline.meltano("invoke", f"{DBT_PLUGIN}:{command}", check=False, timeout=600)
    if expect is not None and result.returncode != expect:
        pytest.fail(
            f"dbt {command} exited {result.returncode}, expected {expect}:\n{result.output[-8000:]}"
        )
    target = Path(pipeline.env["DBT_TARGET_PATH"])
    return DbtRun(result.returncode, result.output, read_run_results(target))


def direct_dbt(dbt: Path, pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess:
    """dbt from the Meltano-built virtualenv, run directly on the project (as a developer
    would, with the WAREHOUSE_* variables only): cheaper than going through Meltano each time."""
    return subprocess.run(
        [str(dbt), *args, "--project-dir", "transform", "--profiles-dir", "transform/profiles"],
        cwd=PROJECT_ROOT,
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def load(pipeline: Pipeline) -> None:
    """One load of all three streams, as the job's first task runs it."""
    pipeline.meltano("run", "tap-manufacturing", "target-warehouse-raw")


def meltano(env: dict[str, str], *args: str) -> str:
    """`meltano ARGS` in the project with `env`; its output (stdout and stderr), whatever the
    exit code."""
    completed = run_meltano(list(args), env)
    return completed.stdout + completed.stderr


def warehouse_sql(pipeline: Pipeline, *statements: str) -> None:
    """Run statements in the pipeline's warehouse, in one transaction."""
    connection = psycopg2.connect(pipeline.server.dsn(pipeline.warehouse.database))
    try:
        with connection, connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


def pen_factory(pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess:
    """The `pen-factory` command with the pipeline's environment."""
    beside = Path(sys.executable).parent / "pen-factory"
    return subprocess.run(
        [str(beside) if beside.exists() else "pen-factory", *args],
        cwd=PROJECT_ROOT,
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def anomaly_lines(output: str) -> list[str]:
    """The `Load anomaly (...)` lines dbt logged, without timestamps."""
    return [match.group(0) for match in re.finditer(r"Load anomaly \((?:warn|fail)\): .*", output)]
