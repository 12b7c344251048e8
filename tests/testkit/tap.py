"""Helpers for the tap tests: production tables, tap runs and their messages."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2

from testkit.postgres import run_sql

SOURCES = ("refills", "bodies", "springs")

PRODUCTION_DDL = """
CREATE TABLE {table} (
    id bigint PRIMARY KEY,
    batch_code varchar(20) NOT NULL,
    line text,
    produced_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    production_date date,
    shift_start time,
    cycle_time interval,
    diameter_mm numeric(10,4),
    length_mm numeric(10,4),
    weight_g double precision,
    temperature_c real,
    quantity integer,
    defect_count smallint,
    passed_qc boolean,
    operator_id uuid,
    tags text[],
    attributes jsonb
)
"""

PRODUCTION_ROWS = """
INSERT INTO {table}
SELECT i,
       'B-' || lpad(i::text, 8, '0'),
       'line ' || (i % 4),
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second',
       timestamptz '2024-02-01 00:00:00+00' + i * interval '1 second',
       date '2024-01-01' + (i % 365),
       time '06:00' + (i % 3) * interval '8 hours',
       (i % 90) * interval '1 second' + interval '0.25 seconds',
       round((i % 1000) / 7.0, 4),
       12.3400,
       (i % 500) / 3.0,
       (i % 40) / 4.0,
       i % 1000,
       (i % 5)::smallint,
       i % 7 <> 0,
       md5(i::text)::uuid,
       ARRAY['ink', 'tip-' || (i % 3)],
       jsonb_build_object('machine', 'M' || (i % 12), 'speed', (i % 30) / 2.0)
FROM generate_series({start}, {stop}) AS i
"""


@dataclass
class Factory:
    """Three source databases and the tap config that reaches them."""

    server: Any
    databases: dict[str, str]

    def dsn(self, source: str) -> str:
        """DSN of one source database."""
        return self.server.dsn(self.databases[source])

    def source_config(self, source: str, **extra: Any) -> dict[str, Any]:
        """Config of one source."""
        return {
            "host": self.server.host,
            "port": self.server.port,
            "user": self.server.user,
            "database": self.databases[source],
            **extra,
        }

    def config(self, **per_source: dict) -> dict[str, Any]:
        """Tap config for all sources; `refills={...}` adds settings to one source."""
        return {
            "sources": {
                name: self.source_config(name, **per_source.get(name, {}))
                for name in self.databases
            }
        }

    def insert_rows(self, source: str, start: int, stop: int) -> None:
        """Add generated production rows with ids start..stop."""
        table = f"{source}_production"
        run_sql(self.dsn(source), PRODUCTION_ROWS.format(table=table, start=start, stop=stop))


@dataclass
class TapRun:
    """Result of one tap process."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def messages(self) -> list[dict]:
        """Every Singer message on stdout, decoded."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def of_type(self, kind: str, stream: str | None = None) -> list[dict]:
        """Messages of one type (and stream)."""
        return [
            m
            for m in self.messages
            if m["type"] == kind and (stream is None or m.get("stream") == stream)
        ]

    def records(self, stream: str) -> list[dict]:
        """Record payloads of one stream."""
        return [m["record"] for m in self.of_type("RECORD", stream)]

    @property
    def final_state(self) -> dict:
        """The value of the last STATE message."""
        states = self.of_type("STATE")
        return states[-1]["value"] if states else {}


TAP_EXECUTABLE = str(Path(sys.executable).parent / "tap-manufacturing")


def create_production_databases(server: Any, rows: int = 20) -> dict[str, str]:
    """Create the three source databases (unique names) with `rows` production rows each."""
    databases = {}
    admin = psycopg2.connect(server.dsn())
    admin.autocommit = True
    try:
        for source in SOURCES:
            name = f"{source}_{uuid.uuid4().hex[:10]}"
            with admin.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
            databases[source] = name
            table = f"{source}_production"
            run_sql(
                server.dsn(name),
                PRODUCTION_DDL.format(table=table),
                PRODUCTION_ROWS.format(table=table, start=1, stop=rows),
            )
    finally:
        admin.close()
    return databases


def drop_databases(server: Any, names: Iterable[str]) -> None:
    """Drop databases made by create_production_databases."""
    admin = psycopg2.connect(server.dsn())
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            for name in names:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def terminate_tap_connections(dsn: str, source: str) -> None:
    """Cut the tap's connection to one source database, as a failing server would."""
    killer = psycopg2.connect(dsn)
    killer.autocommit = True
    try:
        with killer.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND datname = current_database()",
                (f"tap-manufacturing:{source}",),
            )
    finally:
        killer.close()


# A table of every type the tap carries (the type tests, the re-keying and LOG_BASED tests).
TYPES_DDL = """
CREATE TYPE mood AS ENUM ('ok', 'needs check', 'scrap');
CREATE DOMAIN positive_mm AS numeric(8,3) CHECK (VALUE > 0);
CREATE TYPE dimension AS (width numeric, label text);
CREATE TABLE refills_production (
    id integer PRIMARY KEY,
    n_exact numeric(10,4),
    n_free numeric,
    f4 real,
    f8 double precision,
    ts_tz timestamptz,
    ts timestamp,
    d date,
    t time,
    t_tz timetz,
    iv interval,
    u uuid,
    ip inet,
    net cidr,
    mac macaddr,
    bits bit(4),
    rng int4range,
    b bytea,
    j json,
    jb jsonb,
    ints integer[],
    texts text[],
    m mood,
    dm positive_mm,
    comp dimension,
    cash money,
    ok boolean,
    code varchar(5),
    fixed char(3),
    big bigint,
    small smallint
);
INSERT INTO refills_production VALUES
(1, 12.3400, 123456789012345678901234567890.123456789, 0.1, 0.1,
 '2024-01-02 03:04:05.123456+02', '2024-01-02 03:04:05.123456', '2024-01-02', '03:04:05.5',
 '03:04:05+02', '1 year 2 mons 3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
 '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', B'1010', '[1,5)', '\\x00ff10',
 '{"b": 1, "a": [1, 2.50]}', '{"k": "v\\"q", "u": "é€"}', '{{1,2},{3,4}}',
 '{"ink", NULL, "tip \\"x\\""}', 'needs check', 2.5, ROW(1.50, 'w'), 1234.56, true, 'ab',
 'x', 9223372036854775807, -32768),
(2, 'NaN', 'Infinity', 'Infinity', '-Infinity', 'infinity', '-infinity', '4713-01-01 BC',
 '24:00:00', '00:00:00-14:59', '-3 days -00:00:00.000001', '00000000-0000-0000-0000-000000000000',
 '::1', '2001:db8::/32', '00:00:00:00:00:00', B'0000', 'empty', '\\x',
 '[]', '[]', '{}', '{}', 'ok', 0.001, ROW(NULL, NULL), -0.01, false, '', '   ',
 -9223372036854775808, 0),
(3, -0.0001, '-Infinity', 'NaN', 'NaN', '12345-06-07 08:09:10.000001+00',
 '0044-03-15 12:00:00 BC', '12345-01-01', '23:59:59.999999', '12:00:00+14', '0 seconds',
 NULL, NULL, NULL, NULL, NULL, '(,3]', '\\x0a0d00', '"text with \\n newline"',
 '{"nested": {"deep": [true, false, null]}, "num": 1e-7}', '{{NULL,2},{3,NULL}}',
 '{"a,b", "{braces}"}', 'scrap', 99999.999, NULL, NULL, NULL, 'abcde', 'abc', NULL, NULL),
(4, NULL, NULL, NULL, 1.5e300, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL);
"""
