"""Helpers of the change data capture tests: source databases, tap runs, applying changes."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2

from pen_factory.embedded import ServerAddress
from testkit.postgres import query, run_sql
from testkit.tap import PRODUCTION_DDL, PRODUCTION_ROWS, TAP_EXECUTABLE, TapRun

LOGICAL_OPTIONS = (
    "-c wal_level=logical -c max_replication_slots=50 -c max_wal_senders=50 "
    "-c synchronous_commit=on -c wal_sender_timeout=60s"
)
"""Logical decoding on; synchronous commit as production servers have it (the embedded
server's default turns it off for speed)."""

TABLE = "refills_production"
STREAM = "refills"


@dataclass
class CdcSource:
    """One source database on the logical server, with the tap config that reads it."""

    server: ServerAddress
    database: str
    slot: str

    @property
    def dsn(self) -> str:
        return self.server.dsn(self.database)

    def sql(self, *statements: str, params: Any = None) -> None:
        """Run statements in one transaction on the source."""
        run_sql(self.dsn, *statements, params=params)

    def rows(self, sql: str, params: Any = None) -> list[tuple]:
        return query(self.dsn, sql, params)

    def config(self, **extra: Any) -> dict[str, Any]:
        """Tap config: the one source `refills`, LOG_BASED, with this test's slot names."""
        source = {
            "host": self.server.host,
            "port": self.server.port,
            "user": self.server.user,
            "database": self.database,
            "replication_method": "LOG_BASED",
            "slot_name": self.slot,
            "publication_name": self.slot,
            **extra.pop("source", {}),
        }
        return {"sources": {STREAM: source}, "log_based_max_wait": 20, **extra}

    def slot_row(self) -> dict[str, Any] | None:
        rows = self.rows(
            "SELECT confirmed_flush_lsn - '0/0'::pg_lsn, active_pid FROM pg_replication_slots "
            "WHERE slot_name = %s",
            (self.slot,),
        )
        if not rows:
            return None
        return {"confirmed": int(rows[0][0]), "active_pid": rows[0][1]}


def create_cdc_source(server: ServerAddress, rows: int = 20) -> CdcSource:
    name = f"cdc_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(server.dsn())
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        admin.close()
    source = CdcSource(server, name, f"t_{uuid.uuid4().hex[:12]}")
    source.sql(PRODUCTION_DDL.format(table=TABLE))
    if rows:
        source.sql(PRODUCTION_ROWS.format(table=TABLE, start=1, stop=rows))
    return source


def drop_cdc_source(source: CdcSource) -> None:
    """Drop the source's database and every slot on it."""
    drop_database_with_slots(source.server, source.database)


def drop_database_with_slots(server: ServerAddress, database: str) -> None:
    """Drop a database and every slot on it (a database with a slot cannot be dropped)."""
    admin = psycopg2.connect(server.dsn())
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            deadline = time.monotonic() + 20
            while True:
                cursor.execute(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                    "WHERE database = %s AND active_pid IS NOT NULL",
                    (database,),
                )
                cursor.execute(
                    "SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = %s",
                    (database,),
                )
                slots = cursor.fetchall()
                for slot, pid in slots:
                    if pid is None:
                        cursor.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                if all(pid is None for _slot, pid in slots) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        admin.close()


def run_tap(
    tmp_path: Path,
    config: dict,
    *,
    state: dict | None = None,
    catalog: dict | None = None,
    check: bool = True,
    timeout: float = 180,
) -> TapRun:
    """Run the tap CLI as Meltano would: config, optional state and catalog files."""
    tag = uuid.uuid4().hex[:8]
    command = [TAP_EXECUTABLE, "--config", str(_write(tmp_path / f"config-{tag}.json", config))]
    if state is not None:
        command += ["--state", str(_write(tmp_path / f"state-{tag}.json", state))]
    if catalog is not None:
        command += ["--catalog", str(_write(tmp_path / f"catalog-{tag}.json", catalog))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    run = TapRun(done.returncode, done.stdout, done.stderr)
    if check and done.returncode != 0:
        raise AssertionError(f"tap exited {done.returncode}:\n{done.stderr[-3000:]}")
    return run


def _write(path: Path, content: dict) -> Path:
    path.write_text(json.dumps(content))
    return path


def bookmark(state: dict) -> int:
    """The LOG_BASED bookmark (log position) of the refills stream in a STATE value."""
    value = state["bookmarks"][STREAM]
    assert value["replication_key"] == "_sdc_lsn"
    return int(value["replication_key_value"])


def apply(table: dict[Any, dict], messages: list[dict], key: str = "id") -> dict[Any, dict]:
    """What a target does with a change stream, in the simplest terms: a versioned stream
    replaces the table at its ACTIVATE_VERSION, a record upserts by key (a property absent
    from it keeps the old value), a record with `_sdc_deleted_at` deletes. The `_sdc_*`
    properties are dropped."""
    result = dict(table)
    versioned: dict[Any, dict] = {}
    for message in messages:
        if message.get("stream") != STREAM:
            continue
        if message["type"] == "ACTIVATE_VERSION":
            result, versioned = versioned, {}
        if message["type"] != "RECORD":
            continue
        record = {k: v for k, v in message["record"].items() if not k.startswith("_sdc_")}
        if "version" in message:
            versioned[record[key]] = record
        elif message["record"]["_sdc_deleted_at"] is not None:
            result.pop(record[key], None)
        else:
            result[record[key]] = {**result.get(record[key], {}), **record}
    return result


def full_table(tmp_path: Path, source: CdcSource) -> dict[Any, dict]:
    """The table as a FULL_TABLE read writes it, by id (the reference for every value)."""
    run = run_tap(tmp_path, source.config(source={"replication_method": "FULL_TABLE"}))
    return {record["id"]: record for record in run.records(STREAM)}
