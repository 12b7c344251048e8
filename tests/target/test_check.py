"""The check command: counts, last loads, source comparison, exit codes."""

# ruff: noqa: E501 - long expected-value literals read better on one line
from __future__ import annotations

import json
import os
import subprocess

import pytest

from testkit.processes import executable
from testkit.singer import record_message, schema_message, singer

pytestmark = pytest.mark.integration


def check(args, env=None):
    done = subprocess.run([executable("target-warehouse-raw-check"), *args], capture_output=True,
                          timeout=60, env=env, check=False)  # fmt: skip
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def test_check_counts_and_compares_sources(warehouse, run_target, make_database, pg_server):
    source_db = make_database("refills")
    conn_src = __import__("psycopg2").connect(pg_server.dsn(source_db))
    with conn_src, conn_src.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE refills_production AS SELECT g AS id FROM generate_series(1, 2) g"
        )
    conn_src.close()
    text = singer(schema_message("refills", {"id": {"type": "integer"}}, ["id"]),
                  record_message("refills", {"id": 1}), record_message("refills", {"id": 2}))  # fmt: skip
    assert run_target(text).returncode == 0
    sources = {"refills": {"host": pg_server.host, "port": pg_server.port, "database": source_db}}
    config = {**warehouse.config, "check_sources": sources}
    path = warehouse.config_path.with_name("check.json")
    path.write_text(json.dumps(config))
    code, out, _ = check(["--config", str(path)])
    assert code == 0, out
    assert "refills" in out
    assert " yes" in out
    assert "replaced" in out
    # ENV config, as Meltano passes it
    env = {**os.environ, **{f"TARGET_WAREHOUSE_RAW_{k.upper()}": str(v) for k, v in
                            warehouse.config.items()}, "TARGET_WAREHOUSE_RAW_PASSWORD": ""}  # fmt: skip
    env["TARGET_WAREHOUSE_RAW_CHECK_SOURCES"] = json.dumps(
        {"refills": {**sources["refills"], "table": "nope"}}
    )
    code, out, _ = check(["--config", "ENV"], env=env)
    assert code == 0
    assert "error: relation" in out
    sources["refills"]["port"] = 1
    path.write_text(json.dumps({**config, "check_sources": sources}))
    code, out, _ = check(["--config", str(path)])
    assert code == 0
    assert "unreachable" in out
    # a mismatch
    assert (
        run_target(
            text.replace('{"id": 2}', '{"id": 3}') + singer(record_message("refills", {"id": 4}))
        ).returncode
        == 0
    )
    sources["refills"]["port"] = pg_server.port
    path.write_text(json.dumps({**config, "check_sources": sources}))
    code, out, _ = check(["--config", str(path)])
    assert code == 1
    assert " NO" in out


def test_check_exit_codes_for_failed_load_and_unreachable_warehouse(warehouse, run_target):
    text = singer(schema_message("t", {"id": {"type": "integer"}}, ["id"]), "{bad")
    assert run_target(text).returncode == 1
    code, out, _ = check(["--config", str(warehouse.config_path)])
    assert code == 1
    assert "failed" in out
    bad = warehouse.config_path.with_name("bad.json")
    bad.write_text(json.dumps({**warehouse.config, "port": 1, "password": "never-print-me"}))
    code, out, err = check(["--config", str(bad)])
    assert code == 2
    assert "cannot connect" in err
    assert "never-print-me" not in err + out


def test_check_reaches_sources_with_their_sslmode_and_timeout(warehouse, run_target, make_database,
                                                              pg_server):  # fmt: skip
    source_db = make_database("bodies")
    conn_src = __import__("psycopg2").connect(pg_server.dsn(source_db))
    with conn_src, conn_src.cursor() as cursor:
        cursor.execute("CREATE TABLE bodies_production AS SELECT 1 AS id")
    conn_src.close()
    text = singer(schema_message("bodies", {"id": {"type": "integer"}}, ["id"]),
                  record_message("bodies", {"id": 1}))  # fmt: skip
    assert run_target(text).returncode == 0
    source = {"host": pg_server.host, "port": pg_server.port, "database": source_db,
              "sslmode": "disable", "connect_timeout": 3}  # fmt: skip
    path = warehouse.config_path.with_name("check.json")
    path.write_text(json.dumps({**warehouse.config, "check_sources": {"bodies": source}}))
    code, out, err = check(["--config", str(path)])
    assert code == 0, out + err
    assert " yes" in out
    # verify-full needs a root certificate the client does not have: the source is
    # unreachable, which the check reports without failing the warehouse side.
    source["sslmode"] = "verify-full"
    path.write_text(json.dumps({**warehouse.config, "check_sources": {"bodies": source}}))
    code, out, err = check(["--config", str(path)])
    assert code == 0, out + err
    assert "unreachable" in out
    source["sslmode"] = "sometimes"
    path.write_text(json.dumps({**warehouse.config, "check_sources": {"bodies": source}}))
    code, out, err = check(["--config", str(path)])
    assert code != 0
    assert "sslmode" in out + err
