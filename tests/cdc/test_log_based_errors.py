"""LOG_BASED replication: what the tap refuses, and how it says so."""

from __future__ import annotations

import uuid

import psycopg2
import pytest

from testkit.cdc import TABLE, bookmark, run_tap
from testkit.postgres import query, run_sql
from testkit.tap import PRODUCTION_DDL

pytestmark = pytest.mark.integration

PASSWORD = "Sup3r-Secret-Pw"


def _error(run) -> str:
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert PASSWORD not in run.stderr
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert errors, run.stderr
    return errors[-1]


def test_slot_gone_while_a_bookmark_exists(cdc_source, tmp_path):
    first = run_tap(tmp_path, cdc_source.config())
    cdc_source.sql(f"SELECT pg_drop_replication_slot('{cdc_source.slot}')")
    run = run_tap(tmp_path, cdc_source.config(), state=first.final_state, check=False)
    message = _error(run)
    point = bookmark(first.final_state)
    lsn = f"{point >> 32:X}/{point & 0xFFFFFFFF:X}"
    assert f"source 'refills' (host={cdc_source.server.host}" in message
    assert f"replication slot '{cdc_source.slot}' does not exist" in message
    assert f"bookmark at {lsn}" in message
    assert "meltano run --full-refresh tap-manufacturing target-warehouse-raw" in message
    assert "meltano state clear" in message
    assert not run.of_type("RECORD")
    # Doing what the message says (no state): a new slot and a new snapshot.
    again = run_tap(tmp_path, cdc_source.config())
    assert len(again.records("refills")) == 20


@pytest.mark.parametrize("identity", ["DEFAULT", "FULL"])
def test_table_without_primary_key_is_refused(cdc_source, tmp_path, identity):
    cdc_source.sql(
        f"ALTER TABLE {TABLE} DROP CONSTRAINT {TABLE}_pkey",
        f"ALTER TABLE {TABLE} REPLICA IDENTITY {identity}",
    )
    run = run_tap(tmp_path, cdc_source.config(), check=False)
    message = _error(run)
    assert "table public.refills_production has no primary key" in message
    assert "add a primary key, or use FULL_TABLE for this source" in message
    assert not run.of_type("RECORD")
    # Nothing was set up on the source: an UPDATE there must keep working.
    assert query(cdc_source.dsn, "SELECT count(*) FROM pg_publication")[0][0] == 0
    assert cdc_source.slot_row() is None
    cdc_source.sql(f"UPDATE {TABLE} SET line = 'still fine'")


def test_replica_identity_nothing_is_refused(cdc_source, tmp_path):
    cdc_source.sql(f"ALTER TABLE {TABLE} REPLICA IDENTITY NOTHING")
    message = _error(run_tap(tmp_path, cdc_source.config(), check=False))
    assert "REPLICA IDENTITY NOTHING" in message
    assert f"ALTER TABLE public.{TABLE} REPLICA IDENTITY DEFAULT" in message


def test_server_without_logical_wal_level(pg_server, make_database, tmp_path):
    """The suite's ordinary server (wal_level replica on this kind of machine)."""
    level = query(pg_server.dsn(), "SHOW wal_level")[0][0]
    if level == "logical":
        pytest.skip("the ordinary test server already has wal_level = logical")
    database = make_database("refills")
    run_sql(pg_server.dsn(database), PRODUCTION_DDL.format(table=TABLE))
    source = {
        "host": pg_server.host,
        "port": pg_server.port,
        "user": pg_server.user,
        "database": database,
        "password": PASSWORD,
        "replication_method": "LOG_BASED",
    }
    run = run_tap(tmp_path, {"sources": {"refills": source}}, check=False)
    message = _error(run)
    assert "source 'refills'" in message
    assert f"needs wal_level = logical on the source server, which has wal_level = {level}" in (
        message
    )


@pytest.fixture
def reader(logical_server, cdc_source):
    """A login role without REPLICATION that owns nothing."""
    name = f"cdc_reader_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(logical_server.dsn())
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{PASSWORD}'")
    yield name
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                       (name,))  # fmt: skip
        cdc_source.sql(f"DROP OWNED BY {name} CASCADE")
        cursor.execute(f"DROP ROLE {name}")
    admin.close()


def test_missing_privileges_are_named(cdc_source, tmp_path, reader):
    cdc_source.sql(f"GRANT SELECT ON {TABLE} TO {reader}")
    config = cdc_source.config(source={"user": reader, "password": PASSWORD})
    message = _error(run_tap(tmp_path, config, check=False))
    assert f"cannot create publication '{cdc_source.slot}'" in message
    assert f"CREATE PUBLICATION {cdc_source.slot} FOR TABLE public.{TABLE}" in message
    # The owner creates the publication; the slot then needs REPLICATION.
    cdc_source.sql(f"CREATE PUBLICATION {cdc_source.slot} FOR TABLE {TABLE}")
    message = _error(run_tap(tmp_path, config, check=False))
    assert f"user {reader} lacks the REPLICATION privilege" in message
    assert f"ALTER ROLE {reader} REPLICATION" in message
    cdc_source.sql(f"ALTER ROLE {reader} REPLICATION")
    assert len(run_tap(tmp_path, config).records("refills")) == 20


def test_bad_slot_name_is_a_config_error(cdc_source, tmp_path):
    config = cdc_source.config(source={"slot_name": "Has-Caps"})
    run = run_tap(tmp_path, config, check=False)
    assert run.returncode == 1
    assert "source 'refills': setting 'slot_name' must be 1 to 63 lower-case letters" in run.stderr
