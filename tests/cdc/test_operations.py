"""Operations of LOG_BASED sources: the check's slot lag, dropping a slot, default names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2
import pytest

from tap_manufacturing.config import default_replication_name
from target_warehouse_raw.config import default_slot_name
from testkit.cdc import STREAM, TABLE, run_tap
from testkit.postgres import query
from testkit.processes import clean_environment, run_meltano

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_both_plugins_default_to_the_same_slot_names():
    for source in ("refills", "bodies", "springs", "Pen-Cils", "x" * 70, "línea"):
        assert default_replication_name(source) == default_slot_name(source)
    assert default_slot_name("refills") == "tap_manufacturing_refills"


@pytest.fixture
def warehouse(logical_server):
    """An empty warehouse database (no load history) on the logical server."""
    name = f"wh_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(logical_server.dsn())
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield name
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def _check(config: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / f"check-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(config))
    return subprocess.run([str(BIN / "target-warehouse-raw-check"), "--config", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_check_reports_slot_lag_and_fails_above_the_limit(
    cdc_source, warehouse, tmp_path, logical_server
):
    first = run_tap(tmp_path, cdc_source.config())
    # About 2 MB of changes the pipeline has not loaded (confirmed) yet.
    cdc_source.sql(
        f"UPDATE {TABLE} SET line = "
        "(SELECT string_agg(md5(g::text || id), '') FROM generate_series(1, 3000) g)"
    )
    cdc_source.sql(f"UPDATE {TABLE} SET line = 'back'")
    server = {"host": logical_server.host, "port": logical_server.port}
    config = {
        **server,
        "database": warehouse,
        "check_sources": {
            STREAM: {**server, "database": cdc_source.database, "slot_name": cdc_source.slot},
            # A source read FULL_TABLE: no slot, no line.
            "bodies": {**server, "database": cdc_source.database, "table": TABLE},
        },
    }
    done = _check({**config, "check_max_slot_lag_mb": 100}, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("source"))
    assert lines[header].split() == [
        "source", "slot", "active", "lag", "MB", "WAL", "kept", "MB", "wal", "status", "lag",
        "<=", "100", "MB",
    ]  # fmt: skip
    slot_lines = lines[header + 1 :]
    assert len(slot_lines) == 1
    fields = slot_lines[0].split()
    assert fields[:3] == [STREAM, cdc_source.slot, "no"]
    assert 1.5 < float(fields[3]) < 100
    assert float(fields[4]) >= float(fields[3])
    assert fields[5:] == ["reserved", "yes"]
    # Above the limit: exit 1 and NO.
    done = _check({**config, "check_max_slot_lag_mb": 1}, tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1].split()[-1] == "NO"
    # Once the pipeline has stored the changes' STATE, the next run confirms it: the lag
    # is gone (up to what the server writes meanwhile).
    second = run_tap(tmp_path, cdc_source.config(), state=first.final_state)
    run_tap(tmp_path, cdc_source.config(), state=second.final_state)
    done = _check({**config, "check_max_slot_lag_mb": 1}, tmp_path)
    assert done.returncode == 0, done.stdout


def test_drop_slot_command_removes_slot_and_publication(cdc_source, tmp_path):
    config = cdc_source.config()
    state = run_tap(tmp_path, config).final_state
    assert cdc_source.slot_row() is not None
    path = tmp_path / "tap.json"
    path.write_text(json.dumps(config))
    command = [str(BIN / "tap-manufacturing-drop-slot"), "--config", str(path), STREAM]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == [
        f"refills: replication slot '{cdc_source.slot}': dropped",
        f"refills: publication '{cdc_source.slot}': dropped",
    ]
    assert "meltano state clear" in done.stdout
    assert cdc_source.slot_row() is None
    assert query(cdc_source.dsn, "SELECT count(*) FROM pg_publication")[0][0] == 0
    # Again: nothing there, still fine.
    again = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0
    assert "': not there" in again.stdout
    # The old bookmark now points at nothing: the tap says so.
    run = run_tap(tmp_path, config, state=state, check=False)
    assert run.returncode == 1
    assert "does not exist" in run.stderr
    # An unknown source is a usage error.
    bad = [str(BIN / "tap-manufacturing-drop-slot"), "--config", str(path), "pencils"]
    done = subprocess.run(bad, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "stream 'pencils' is not a configured source" in done.stderr


@pytest.mark.e2e
@pytest.mark.slow
def test_meltano_commands_check_and_drop_a_slot(cdc_source, warehouse, tmp_path, meltano_sys_dir):
    """`meltano invoke target-warehouse-raw:check` and `tap-manufacturing:drop-slot`, with
    the config Meltano builds from the project's variables."""
    run_tap(tmp_path, cdc_source.config())
    server = cdc_source.server
    env = clean_environment()
    env.update(
        MELTANO_SYS_DIR_ROOT=str(meltano_sys_dir),
        MELTANO_DATABASE_URI=f"sqlite:///{tmp_path / 'meltano.db'}",
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        WAREHOUSE_HOST=server.host,
        WAREHOUSE_PORT=str(server.port),
        WAREHOUSE_DB=warehouse,
        REFILLS_HOST=server.host,
        REFILLS_PORT=str(server.port),
        REFILLS_DB=cdc_source.database,
        REFILLS_REPLICATION_METHOD="LOG_BASED",
        REFILLS_SLOT_NAME=cdc_source.slot,
        REFILLS_PUBLICATION_NAME=cdc_source.slot,
    )

    def meltano(*args: str) -> subprocess.CompletedProcess:
        return run_meltano(list(args), env)

    check = meltano("invoke", "target-warehouse-raw:check")
    assert check.returncode == 0, check.stdout + check.stderr[-3000:]
    slot_line = next(line for line in check.stdout.splitlines() if line.startswith(STREAM))
    assert slot_line.split()[:3] == [STREAM, cdc_source.slot, "no"]
    env["TARGET_WAREHOUSE_RAW_CHECK_MAX_SLOT_LAG_MB"] = "0.000001"
    cdc_source.sql(f"UPDATE {TABLE} SET line = 'moved'")
    assert meltano("invoke", "target-warehouse-raw:check").returncode == 1
    drop = meltano("invoke", "tap-manufacturing:drop-slot", STREAM)
    assert drop.returncode == 0, drop.stdout + drop.stderr[-3000:]
    assert f"refills: replication slot '{cdc_source.slot}': dropped" in drop.stdout
    assert cdc_source.slot_row() is None
    assert os.environ.get("REFILLS_SLOT_NAME") is None  # nothing leaked into this process
