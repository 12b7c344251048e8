"""End-to-end fixtures: the real `meltano` on this project, against real databases.

Meltano's plugin virtualenvs are built once per test session in a temporary system folder
(`MELTANO_SYS_DIR_ROOT`), so the tests neither depend on nor disturb the developer's own
`.meltano/`. Each test gets its own Meltano system database (state never leaks between
tests), its own three source databases with demo data and its own warehouse database.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from e2e_helpers import (
    DEMO_ROWS,
    PROJECT_ROOT,
    Pipeline,
    clean_environment,
    meltano_executable,
)

from pen_factory import demo_data
from pen_factory.embedded import ServerAddress


@pytest.fixture(scope="session")
def meltano_sys_dir(tmp_path_factory) -> Path:
    """A Meltano system folder with both plugins installed (`meltano install`, once)."""
    sys_dir = tmp_path_factory.mktemp("meltano-sys") / ".meltano"
    env = clean_environment()
    env["MELTANO_SYS_DIR_ROOT"] = str(sys_dir)
    env["MELTANO_DATABASE_URI"] = f"sqlite:///{sys_dir.parent / 'install.db'}"
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env["UV_COMPILE_BYTECODE"] = "1"  # plugin processes start several times faster
    result = subprocess.run(
        [meltano_executable(), "install"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"meltano install failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return sys_dir


@pytest.fixture
def pipeline(
    pg_server: ServerAddress,
    make_database: Callable[[str], str],
    meltano_sys_dir: Path,
    tmp_path: Path,
) -> Pipeline:
    """Fresh sources with demo data, an empty warehouse and an isolated Meltano state."""
    base = demo_data.endpoints_on_server(pg_server.host, pg_server.port, pg_server.user)
    sources = {
        name: replace(base[name], database=make_database(name)) for name in demo_data.SOURCES
    }
    warehouse = replace(base["warehouse"], database=make_database("warehouse"))
    demo_data.generate_demo({**sources, "warehouse": warehouse}, DEMO_ROWS)
    env = clean_environment()
    env.update(
        MELTANO_SYS_DIR_ROOT=str(meltano_sys_dir),
        MELTANO_DATABASE_URI=f"sqlite:///{tmp_path / 'meltano.db'}",
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        WAREHOUSE_HOST=pg_server.host,
        WAREHOUSE_PORT=str(pg_server.port),
        WAREHOUSE_DB=warehouse.database,
        WAREHOUSE_USER=pg_server.user,
        WAREHOUSE_SCHEMA="raw",
    )
    for name, endpoint in sources.items():
        prefix = name.upper()
        env[f"{prefix}_HOST"] = endpoint.host
        env[f"{prefix}_PORT"] = str(endpoint.port)
        env[f"{prefix}_DB"] = endpoint.database
        env[f"{prefix}_USER"] = endpoint.user
    return Pipeline(pg_server, sources, warehouse, env, meltano_sys_dir)
