"""Expected failures: one clear line naming the source, non-zero exit, never a password."""

from __future__ import annotations

import uuid

import psycopg2
import pytest

pytestmark = pytest.mark.integration

PASSWORD = "Sup3r-Secret-Pw"


def _assert_clean_failure(run, *fragments: str) -> str:
    assert run.returncode != 0
    assert PASSWORD not in run.stderr
    assert PASSWORD not in run.stdout
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert errors, run.stderr
    message = errors[-1]
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("mode", ["sync", "discover"])
def test_unreachable_source(factory, run_tap, mode):
    config = factory.config()
    config["sources"]["bodies"].update({"port": 1, "password": PASSWORD, "connect_timeout": 2})
    args = ["--discover"] if mode == "discover" else []
    run = run_tap(config, *args, check=False)
    _assert_clean_failure(run, "source 'bodies'", "port=1", "cannot connect")


def test_missing_table(factory, run_tap):
    config = factory.config(springs={"table": "no_such_table", "password": PASSWORD})
    run = run_tap(config, check=False)
    _assert_clean_failure(run, "source 'springs'", "public.no_such_table does not exist")


def test_missing_column_from_catalog(factory, run_tap):
    config = factory.config()
    import json

    catalog = json.loads(run_tap(config, "--discover").stdout)
    catalog["streams"][0]["schema"]["properties"]["gone"] = {"type": ["string", "null"]}
    run = run_tap(config, catalog=catalog, check=False)
    _assert_clean_failure(run, "source 'refills'", "column 'gone'")


@pytest.fixture
def unprivileged_user(pg_server):
    name = f"tap_reader_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(pg_server.dsn())
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{name}" LOGIN')
    yield name
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,)
        )
        cursor.execute(f'DROP ROLE IF EXISTS "{name}"')
    admin.close()


def test_permission_denied(factory, run_tap, unprivileged_user):
    config = factory.config(refills={"user": unprivileged_user, "password": PASSWORD})
    run = run_tap(config, check=False)
    message = _assert_clean_failure(
        run, "source 'refills'", f"user={unprivileged_user}", "permission denied"
    )
    assert "grant SELECT on public.refills_production" in message


@pytest.mark.parametrize(
    ("source", "setting", "value"),
    [("refills", "port", "not-a-port"), ("springs", "sslmode", "maybe")],
)
def test_config_error_names_source_and_setting(run_tap, source, setting, value):
    config = {"sources": {source: {setting: value, "password": PASSWORD}}}
    run = run_tap(config, check=False)
    assert run.returncode == 1
    assert PASSWORD not in run.stderr
    assert f"source '{source}'" in run.stderr
    assert f"'{setting}'" in run.stderr
    assert not run.stdout.strip()
