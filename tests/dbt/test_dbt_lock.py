"""dbt builds into one schema take turns (transform/dbt_with_lock.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import time
from pathlib import Path

import psycopg2
import pytest

from testkit.dbt_runs import DBT_PLUGIN, MODELS_SCHEMA, load, read_run_results
from testkit.pipeline import warehouse_rows
from testkit.processes import PROJECT_ROOT, meltano_executable


def _wrapper():
    spec = importlib.util.spec_from_file_location(
        "dbt_with_lock", PROJECT_ROOT / "transform" / "dbt_with_lock.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_lock_connects_where_the_profile_connects():
    settings = _wrapper().connection_settings
    assert settings([], {}) == {
        "host": "localhost", "port": "5432", "dbname": "warehouse", "user": "postgres",
        "password": "", "schema": "analytics", "sslmode": "prefer",
    }  # fmt: skip
    env = {"WAREHOUSE_HOST": "dwh", "WAREHOUSE_DB": "", "DBT_POSTGRES_HOST": "dbt-host",
           "WAREHOUSE_SSLMODE": "disable", "WAREHOUSE_ANALYTICS_SCHEMA": "marts"}  # fmt: skip
    dev = settings(["build"], env)
    assert (dev["host"], dev["dbname"], dev["schema"], dev["sslmode"]) == (
        "dbt-host", "warehouse", "marts", "disable",
    )  # fmt: skip
    # The prod target requires TLS whatever WAREHOUSE_SSLMODE says, as in profiles.yml.
    assert settings(["build", "--target", "prod"], env)["sslmode"] == "require"
    assert settings(["run"], {**env, "DBT_TARGET": "prod"})["sslmode"] == "require"
    assert (
        settings(["run", "--target=prod"], {"DBT_POSTGRES_SSLMODE": "verify-full"})["sslmode"]
        == "verify-full"
    )


def _waiting_for_lock(pipeline) -> bool:
    return bool(
        warehouse_rows(
            pipeline,
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'dbt-pen-factory lock' "
            "AND wait_event_type = 'Lock'",
        )
    )


@pytest.mark.e2e
@pytest.mark.integration
@pytest.mark.slow
def test_a_build_waits_while_another_holds_the_schema(pipeline):
    load(pipeline)
    holder = psycopg2.connect(pipeline.server.dsn(pipeline.warehouse.database))
    holder.autocommit = True
    with holder.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_lock(hashtext(%s))", (f"pen-factory dbt: {MODELS_SCHEMA}",)
        )
    process = subprocess.Popen(
        [meltano_executable(), "invoke", f"{DBT_PLUGIN}:run"],
        cwd=PROJECT_ROOT,
        env=pipeline.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not _waiting_for_lock(pipeline):
            assert process.poll() is None, process.stdout.read()[-4000:]
            assert time.monotonic() < deadline, "the run never waited for the lock"
            time.sleep(0.2)
        # While it waits, it builds nothing.
        built = warehouse_rows(
            pipeline, f"SELECT count(*) FROM pg_views WHERE schemaname = '{MODELS_SCHEMA}'"
        )
        assert built == [(0,)]
    finally:
        holder.close()
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-4000:]
    assert (
        f"dbt_with_lock: another dbt run is building schema {MODELS_SCHEMA} in "
        f"postgres@{pipeline.server.host}:{pipeline.server.port}/{pipeline.warehouse.database}; "
        "waiting for it to finish"
    ) in output
    results = read_run_results(Path(pipeline.env["DBT_TARGET_PATH"]))
    assert results["daily_pen_capacity"][0] == "success"
