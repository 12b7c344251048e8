"""Fixtures for the target's tests: a fresh warehouse database per test and a helper that
pipes Singer input into the real `target-warehouse-raw` executable, exactly as
`cat file | target-warehouse-raw --config config.json` would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

DATA = Path(__file__).parent / "data"


def executable(name: str) -> str:
    """The console script installed next to the running interpreter (or on PATH)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    assert found, f"{name} is not installed"
    return found


@dataclass
class Warehouse:
    """A throwaway warehouse database and the target config pointing at it."""

    config: dict
    config_path: Path
    dsn: str

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run one query in a fresh connection (UTC) and return all rows."""
        conn = psycopg2.connect(self.dsn)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SET TimeZone = 'UTC'")
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            conn.commit()
            conn.close()

    def execute(self, sql: str) -> None:
        """Run statements in autocommit."""
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
        finally:
            conn.close()

    def table(self, name: str, order: str = "1") -> list[tuple]:
        """All rows of raw.<name> ordered."""
        return self.query(f'SELECT * FROM raw."{name}" ORDER BY {order}')

    def columns(self, name: str) -> list[tuple[str, str]]:
        """(column, type) of raw.<name> in order."""
        return self.query(
            """SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
               WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped
               ORDER BY attnum""",
            (f'raw."{name}"',),
        )

    def history(self) -> list[tuple]:
        """(stream, status, rows, error) of the load history, oldest first."""
        return self.query("SELECT stream, status, rows, error FROM raw._load_history ORDER BY id")


@pytest.fixture
def warehouse(pg_server, make_database, tmp_path) -> Warehouse:
    """A fresh warehouse database and a config file for the target."""
    name = make_database("twr")
    config = {
        "host": pg_server.host,
        "port": pg_server.port,
        "user": pg_server.user,
        "database": name,
        "progress_interval": 0,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return Warehouse(config, path, pg_server.dsn(name))


@dataclass
class Run:
    """What one run of the target produced."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def states(self) -> list[dict]:
        """STATE values written to stdout."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def singer(*messages: dict | str) -> str:
    """Singer text from message dicts (strings are taken as raw lines)."""
    return "".join((m if isinstance(m, str) else json.dumps(m)) + "\n" for m in messages)


@pytest.fixture
def run_target(warehouse) -> Callable[..., Run]:
    """Pipe Singer text (or a .singer file under data/) into the real executable."""

    def run(
        source: str | Path,
        *,
        config: dict | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> Run:
        text = source.read_text() if isinstance(source, Path) else source
        config_path = warehouse.config_path
        if config:
            config_path = warehouse.config_path.with_name("config-extra.json")
            config_path.write_text(json.dumps({**warehouse.config, **config}))
        done = subprocess.run(
            [executable("target-warehouse-raw"), "--config", str(config_path)],
            input=text.encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **(env or {})},
        )
        return Run(done.returncode, done.stdout.decode(), done.stderr.decode())

    return run


def schema_message(stream: str, properties: dict, keys: list[str] | None = None, **extra) -> dict:
    """A SCHEMA message."""
    return {
        "type": "SCHEMA",
        "stream": stream,
        "key_properties": keys if keys is not None else [],
        "schema": {"type": "object", "properties": properties, **extra},
    }


def record(stream: str, data: dict, **extra) -> dict:
    """A RECORD message."""
    return {"type": "RECORD", "stream": stream, "record": data, **extra}
