"""Helpers for the end-to-end tests: run the real `meltano`, compare sources and warehouse."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg2
import pytest
import yaml

from pen_factory import demo_data
from pen_factory.embedded import ServerAddress
from testkit.processes import (
    PROJECT_ROOT,
    meltano_executable,
    meltano_system_environment,
    run_meltano,
)

DEMO_ROWS = 300


@dataclass
class MeltanoResult:
    """What one meltano command did."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together (Meltano logs to stderr)."""
        return self.stdout + self.stderr


@dataclass
class Pipeline:
    """Three demo sources and a warehouse on the test server, and a Meltano to run."""

    server: ServerAddress
    sources: dict[str, demo_data.Endpoint]
    warehouse: demo_data.Endpoint
    env: dict[str, str]
    meltano_sys_dir: Path
    schema: str = "raw"
    runs: list[MeltanoResult] = field(default_factory=list)
    started: list[subprocess.Popen] = field(default_factory=list)
    """Background meltano runs (start_meltano), for the fixture to stop at the end."""

    def meltano(self, *args: str, check: bool = True, timeout: float = 300) -> MeltanoResult:
        """Run `meltano ARGS` in the project with this pipeline's environment."""
        completed = run_meltano(list(args), self.env, timeout)
        result = MeltanoResult(
            completed.args, completed.returncode, completed.stdout, completed.stderr
        )
        self.runs.append(result)
        if check and completed.returncode != 0:
            pytest.fail(
                f"`meltano {' '.join(args)}` exited {completed.returncode}:\n"
                f"{completed.stdout[-3000:]}\n{completed.stderr[-6000:]}"
            )
        return result

    def source_sql(self, source: str, *statements: str) -> None:
        """Run statements in a source database, in one transaction."""
        connection = self.sources[source].connect()
        try:
            with connection, connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            connection.close()


def _columns(cursor, schema: str, table: str) -> list[tuple[str, str]]:
    cursor.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        (schema, table),
    )
    return [(name, kind) for name, kind in cursor.fetchall()]


def table_snapshot(
    endpoint: demo_data.Endpoint, schema: str, table: str, columns: list[str] | None = None
) -> tuple[list[tuple[str, str]], int, str]:
    """(columns with their exact types, row count, digest of every value in id order).

    The digest is over each row's text form (the type's own output function, TimeZone UTC),
    restricted to `columns` in that order when given, so two tables compare value for value.
    """
    connection = endpoint.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET TimeZone = 'UTC'")
            described = _columns(cursor, schema, table)
            if not described:
                return [], -1, ""
            names = columns or [name for name, _ in described]
            row = ", ".join(f'"{name}"' for name in names)
            cursor.execute(
                f"SELECT count(*), md5(coalesce(string_agg(ROW({row})::text, E'\\n' "
                f'ORDER BY "id"), \'\')) FROM "{schema}"."{table}"'
            )
            count, digest = cursor.fetchone()
            return described, int(count), str(digest)
    finally:
        connection.close()


def assert_warehouse_equals_sources(pipeline: Pipeline) -> None:
    """Every source table arrived in the warehouse row for row, type for type."""
    for source in demo_data.SOURCES:
        source_columns, source_count, source_digest = table_snapshot(
            pipeline.sources[source], "public", f"{source}_production"
        )
        names = [name for name, _ in source_columns]
        warehouse_columns, count, digest = table_snapshot(
            pipeline.warehouse, pipeline.schema, source, names
        )
        assert warehouse_columns, f"{pipeline.schema}.{source} is missing in the warehouse"
        landed = dict(warehouse_columns)
        assert {name: landed.get(name) for name in names} == dict(source_columns), (
            f"column types of {source}"
        )
        # Only Singer metadata columns may come on top (e.g. `_sdc_table_version` in upsert).
        assert all(name.startswith("_sdc_") for name in set(landed) - set(names)), landed
        assert count == source_count, f"row count of {source}"
        assert digest == source_digest, f"values of {source}"


def warehouse_rows(pipeline: Pipeline, query: str) -> list[tuple]:
    """Rows of a query in the warehouse."""
    connection = psycopg2.connect(pipeline.server.dsn(pipeline.warehouse.database))
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            return cursor.fetchall()
    finally:
        connection.close()


# Installed only by the tests that run it (tests/e2e/test_airflow_dag.py): Airflow is a large
# install that no other test needs.
ORCHESTRATOR = "airflow"


def project_plugins_to_install() -> list[str]:
    """Every plugin meltano.yml declares, except the orchestrator and inherited plugins (they
    use their parent's installation)."""
    project = yaml.safe_load((PROJECT_ROOT / "meltano.yml").read_text())
    return [
        plugin["name"]
        for plugins in project["plugins"].values()
        for plugin in plugins
        if "inherit_from" not in plugin and plugin["name"] != ORCHESTRATOR
    ]


def install_plugins(sys_dir: Path, plugins: list[str] | None = None) -> None:
    """`meltano install` of the project's plugins (by default all but the orchestrator) into a
    Meltano system folder of its own."""
    env = meltano_system_environment(sys_dir, sys_dir.parent / "install.db")
    names = project_plugins_to_install() if plugins is None else plugins
    result = run_meltano(["install", *names], env, timeout=900)
    if result.returncode != 0:
        pytest.fail(
            f"meltano install {' '.join(names)} failed:\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-5000:]}"
        )


def new_pipeline(
    server: ServerAddress,
    make_database: Callable[[str], str],
    meltano_sys_dir: Path,
    tmp_path: Path,
) -> Pipeline:
    """Fresh sources with demo data, an empty warehouse and an isolated Meltano state."""
    base = demo_data.endpoints_on_server(server.host, server.port, server.user)
    sources = {
        name: replace(base[name], database=make_database(name)) for name in demo_data.SOURCES
    }
    warehouse = replace(base["warehouse"], database=make_database("warehouse"))
    demo_data.generate_demo({**sources, "warehouse": warehouse}, DEMO_ROWS)
    env = pipeline_environment(server, sources, warehouse, meltano_sys_dir, tmp_path / "meltano.db")
    return Pipeline(server, sources, warehouse, env, meltano_sys_dir)


def pipeline_environment(
    server: ServerAddress,
    sources: dict[str, demo_data.Endpoint],
    warehouse: demo_data.Endpoint,
    meltano_sys_dir: Path,
    meltano_db: Path,
) -> dict[str, str]:
    """The variables a user would set: every source and the warehouse, plus Meltano's own."""
    env = meltano_system_environment(meltano_sys_dir, meltano_db)
    env.update(
        WAREHOUSE_HOST=server.host,
        WAREHOUSE_PORT=str(server.port),
        WAREHOUSE_DB=warehouse.database,
        WAREHOUSE_USER=server.user,
        WAREHOUSE_SCHEMA="raw",
    )
    for name, endpoint in sources.items():
        prefix = name.upper()
        env[f"{prefix}_HOST"] = endpoint.host
        env[f"{prefix}_PORT"] = str(endpoint.port)
        env[f"{prefix}_DB"] = endpoint.database
        env[f"{prefix}_USER"] = endpoint.user
    return env


def start_meltano(pipeline, *args: str) -> subprocess.Popen:
    """Start `meltano ARGS` in its own process group (so the whole run can be signalled)."""
    process = subprocess.Popen(
        [meltano_executable(), *args],
        cwd=PROJECT_ROOT,
        env=pipeline.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    pipeline.started.append(process)
    return process
