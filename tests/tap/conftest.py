"""Fixtures for the tap tests: three real source databases with production tables."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable

import pytest

from testkit.postgres import run_sql
from testkit.tap import PRODUCTION_DDL, PRODUCTION_ROWS, SOURCES, TAP_EXECUTABLE, Factory, TapRun


@pytest.fixture
def factory(pg_server, make_database) -> Factory:
    """refills, bodies and springs databases, each with 20 production rows."""
    databases = {}
    for source in SOURCES:
        name = make_database(source)
        table = f"{source}_production"
        run_sql(
            pg_server.dsn(name),
            PRODUCTION_DDL.format(table=table),
            PRODUCTION_ROWS.format(table=table, start=1, stop=20),
        )
        databases[source] = name
    return Factory(pg_server, databases)


@pytest.fixture
def run_tap(tmp_path) -> Callable[..., TapRun]:
    """Run the tap CLI as a user would, with config/catalog/state written to files."""

    def run(
        config: dict | None = None,
        *args: str,
        catalog: dict | None = None,
        state: dict | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> TapRun:
        command = [TAP_EXECUTABLE]
        if config is not None:
            path = tmp_path / "config.json"
            path.write_text(json.dumps(config))
            command += ["--config", str(path)]
        for name, content in (("catalog", catalog), ("state", state)):
            if content is not None:
                path = tmp_path / f"{name}.json"
                path.write_text(json.dumps(content))
                command += [f"--{name}", str(path)]
        command += list(args)
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            check=False,
        )
        run_result = TapRun(result.returncode, result.stdout, result.stderr)
        if check and result.returncode != 0:
            pytest.fail(f"tap exited {result.returncode}:\n{result.stderr[-3000:]}")
        return run_result

    return run
