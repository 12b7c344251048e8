"""Fixtures of the fault-injection suite (see testkit/faults.py for how a load is held in one
phase; tests/conftest.py prints the suite's figures)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace

import psycopg2
import pytest

from testkit.faults import FIGURES, GOOD_RUN_STATE_ID, SECRET, FaultWarehouse
from testkit.pipeline import pipeline_environment
from testkit.postgres import Db, admin_execute
from testkit.target import target_config


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Rows lost in a strict-xfail case (a known product bug) are counted apart."""
    lost_before = FIGURES["rows lost or corrupted"]
    yield
    if item.get_closest_marker("xfail") is not None:
        lost = FIGURES["rows lost or corrupted"] - lost_before
        FIGURES["rows lost or corrupted"] = lost_before
        FIGURES["rows lost in known-bug cases (xfail)"] += lost


@pytest.fixture
def fault_warehouse(pg_server, make_database, tmp_path) -> Iterator[FaultWarehouse]:
    """A fresh warehouse database and the target config pointing at it."""
    name = make_database("fw")
    config = target_config(pg_server, name)
    warehouse = FaultWarehouse(Db(pg_server.dsn(name)), config, tmp_path)
    yield warehouse
    for process in warehouse.processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture
def secret_role(pg_server) -> Iterator[tuple[str, str]]:
    """A login role with a real password on the test server: (role, password)."""
    role = f"fault_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(pg_server.dsn())
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD %s", (SECRET,))
    try:
        yield role, SECRET
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP ROLE IF EXISTS {role}")
        admin.close()


# --- the real meltano on fresh sources ---------------------------------------------------------


@pytest.fixture
def fault_pipeline(pg_server, make_database, meltano_sys_dir, tmp_path):
    """Fresh demo sources, an empty warehouse and an isolated Meltano state database."""
    from testkit.pipeline import new_pipeline

    pipeline = new_pipeline(pg_server, make_database, meltano_sys_dir, tmp_path)
    started: list[subprocess.Popen] = []
    pipeline.started = started  # background meltano processes, killed (as a group) at the end
    yield pipeline
    for process in started:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


# --- a pipeline after one good run, cloned per test ---------------------------------------------


@pytest.fixture(scope="module")
def good_run_template(pg_server, meltano_sys_dir, tmp_path_factory):
    """Demo sources, a warehouse after one good `meltano run` and that run's Meltano database
    with its state cleared (so any bookmark found later was written by the run under test).

    Built once per module; `good_pipeline` clones it for each test (CREATE DATABASE ...
    TEMPLATE and a copy of the Meltano database), which saves a `meltano run` per test.
    """
    from pen_factory import demo_data
    from testkit.pipeline import Pipeline

    tag = uuid.uuid4().hex[:8]
    base = demo_data.endpoints_on_server(pg_server.host, pg_server.port, pg_server.user)
    names = {name: f"tpl_{name}_{tag}" for name in (*demo_data.SOURCES, "warehouse")}
    for name in names.values():
        admin_execute(pg_server.dsn(), f'CREATE DATABASE "{name}"')
    try:
        endpoints = {key: replace(base[key], database=name) for key, name in names.items()}
        from testkit.pipeline import DEMO_ROWS

        demo_data.generate_demo(endpoints, DEMO_ROWS)
        folder = tmp_path_factory.mktemp("good-run")
        meltano_db = folder / "meltano.db"
        sources = {key: endpoints[key] for key in demo_data.SOURCES}
        env = pipeline_environment(pg_server, sources, endpoints["warehouse"],
                                    meltano_sys_dir, meltano_db)  # fmt: skip
        pipeline = Pipeline(pg_server, sources, endpoints["warehouse"], env, meltano_sys_dir)
        pipeline.meltano("run", "tap-manufacturing", "target-warehouse-raw")
        pipeline.meltano("state", "clear", "--force", GOOD_RUN_STATE_ID)
        yield names, meltano_db
    finally:
        for name in names.values():
            admin_execute(pg_server.dsn(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def good_pipeline(pg_server, good_run_template, meltano_sys_dir, tmp_path):
    """A copy of `good_run_template` for one test: same content, own databases and state."""
    from pen_factory import demo_data
    from testkit.pipeline import Pipeline

    names, template_db = good_run_template
    base = demo_data.endpoints_on_server(pg_server.host, pg_server.port, pg_server.user)
    tag = uuid.uuid4().hex[:8]
    clones = {key: f"{key}_{tag}" for key in names}
    for key, name in clones.items():
        admin_execute(pg_server.dsn(), f'CREATE DATABASE "{name}" TEMPLATE "{names[key]}"')
    meltano_db = tmp_path / "meltano.db"
    shutil.copyfile(template_db, meltano_db)
    endpoints = {key: replace(base[key], database=name) for key, name in clones.items()}
    sources = {key: endpoints[key] for key in demo_data.SOURCES}
    env = pipeline_environment(pg_server, sources, endpoints["warehouse"],
                                meltano_sys_dir, meltano_db)  # fmt: skip
    pipeline = Pipeline(pg_server, sources, endpoints["warehouse"], env, meltano_sys_dir)
    started: list[subprocess.Popen] = []
    pipeline.started = started
    try:
        yield pipeline
    finally:
        for process in started:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        for name in clones.values():
            admin_execute(pg_server.dsn(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
