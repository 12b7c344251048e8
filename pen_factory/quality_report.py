"""`pen-factory quality-report`: the anomaly checks of the latest loads, as text or JSON.

The checks themselves are the dbt model `load_anomalies` (transform/models/quality/): each load
of a raw table is profiled by the `dbt build` that follows it, and the latest profile is
compared with the table's earlier ones, with thresholds from transform/dbt_project.yml. This
command reads that view, so it prints exactly what the build judged, and adds what the view
cannot know: a load that committed after the last build and is not profiled yet.

It is the interface an alerting system or an agent calls: `--json` prints one JSON document,
and the exit code says what to do (0: nothing failed; 1: a measure failed, or warned with
`--fail-on warn`; 2: the report could not be made). No model, service or network access
beyond the warehouse is needed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg2
from psycopg2 import sql

LEVELS = ("fail", "warn", "not_profiled", "ok", "learning", "no_data")
# What makes the report's overall status: the worst of these present (else ok).
_SEVERITY = {"fail": 2, "warn": 1, "not_profiled": 1}
_SUCCESS = ("replaced", "upserted", "appended")


class ReportError(RuntimeError):
    """The report could not be made; the message says why and what to do."""


@dataclass(frozen=True)
class WarehouseSettings:
    """Where the warehouse and its two schemas are, from the variables the plugins read."""

    host: str = "localhost"
    port: int = 5432
    database: str = "warehouse"
    user: str = "postgres"
    password: str = field(default="", repr=False)
    sslmode: str | None = None
    raw_schema: str = "raw"
    models_schema: str = "analytics"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WarehouseSettings:
        """WAREHOUSE_* variables (as for the target and the dbt profile); empty means unset."""
        env = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            return env.get(f"WAREHOUSE_{name}") or default

        port = get("PORT", "5432")
        if not port.isdigit():
            raise ReportError(f"WAREHOUSE_PORT must be a port number, not {port!r}")
        return cls(
            host=get("HOST", "localhost"),
            port=int(port),
            database=get("DB", "warehouse"),
            user=get("USER", "postgres"),
            password=get("PASSWORD", ""),
            sslmode=env.get("WAREHOUSE_SSLMODE") or None,
            raw_schema=get("SCHEMA", "raw"),
            models_schema=get("ANALYTICS_SCHEMA", "analytics"),
        )

    def describe(self) -> str:
        """user@host:port/database, for messages (never the password)."""
        return f"{self.user}@{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class Finding:
    """One measure of one table's latest load, as judged."""

    table: str
    measure: str
    column: str | None
    level: str
    value: float | int | None
    expected: tuple[float | int | None, float | int | None]
    fail_outside: tuple[float | int | None, float | int | None]
    history_loads: int
    history: tuple[float | int | None, float | int | None]
    load_id: int | None
    loaded_at: str | None
    message: str

    def as_json(self) -> dict[str, Any]:
        """The finding as a JSON object."""
        return {
            "table": self.table,
            "measure": self.measure,
            "column": self.column,
            "level": self.level,
            "value": self.value,
            "expected": {"low": self.expected[0], "high": self.expected[1]},
            "fail_outside": {"low": self.fail_outside[0], "high": self.fail_outside[1]},
            "history": {
                "loads": self.history_loads,
                "min": self.history[0],
                "max": self.history[1],
            },
            "load_id": self.load_id,
            "loaded_at": self.loaded_at,
            "message": self.message,
        }


@dataclass(frozen=True)
class Report:
    """Every judged measure, plus loads not profiled yet."""

    settings: WarehouseSettings
    generated_at: str
    findings: tuple[Finding, ...]
    thresholds: dict[str, dict[str, Any]]

    @property
    def status(self) -> str:
        """fail, warn or ok: the worst level present."""
        worst = max((_SEVERITY.get(f.level, 0) for f in self.findings), default=0)
        return {2: "fail", 1: "warn", 0: "ok"}[worst]

    def counts(self) -> dict[str, int]:
        """Measures per level."""
        counts = dict.fromkeys(LEVELS, 0)
        for finding in self.findings:
            counts[finding.level] = counts.get(finding.level, 0) + 1
        return counts

    def as_json(self, *, everything: bool = False) -> dict[str, Any]:
        """The report as a JSON document: the findings that need attention (all of them with
        `everything`), counts per level and the thresholds they were judged by."""
        shown = [f for f in self.findings if everything or f.level in _SEVERITY]
        return {
            "status": self.status,
            "generated_at": self.generated_at,
            "warehouse": {
                "database": self.settings.database,
                "raw_schema": self.settings.raw_schema,
                "models_schema": self.settings.models_schema,
            },
            "counts": self.counts(),
            "thresholds": self.thresholds,
            "findings": [finding.as_json() for finding in _ordered(shown)],
        }


def _number(value: Decimal | None) -> float | int | None:
    if value is None:
        return None
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ordered(findings: list[Finding]) -> list[Finding]:
    rank = {level: index for index, level in enumerate(LEVELS)}
    return sorted(
        findings, key=lambda f: (rank.get(f.level, 99), f.table, f.measure, f.column or "")
    )


_ANOMALIES = """
SELECT table_name, measure, column_name, level, value, expected_low, expected_high,
       fail_low, fail_high, history_loads, history_min, history_max, load_id, loaded_at,
       message, tolerance_kind, warn_tolerance, fail_tolerance
FROM {view}
"""

# Loads that committed after the latest profile of their table: the build that would judge
# them has not run (or failed before profiling).
_UNPROFILED = """
SELECT h.table_name, h.id, h.finished_at
FROM (
    SELECT DISTINCT ON (table_name) table_name, id, finished_at
    FROM {history} WHERE status = ANY(%s) ORDER BY table_name, id DESC
) AS h
LEFT JOIN (SELECT table_name, max(load_id) AS load_id FROM {profiles} GROUP BY table_name) AS p
    ON p.table_name = h.table_name
WHERE p.load_id IS NULL OR p.load_id < h.id
ORDER BY h.table_name
"""


def _exists(cursor: psycopg2.extensions.cursor, schema: str, name: str) -> bool:
    cursor.execute("SELECT to_regclass(%s)", (sql.Identifier(schema, name).as_string(cursor),))
    return cursor.fetchone()[0] is not None


def _read(cursor: psycopg2.extensions.cursor, settings: WarehouseSettings) -> Report:
    models = settings.models_schema
    for name in ("load_anomalies", "load_profiles"):
        if not _exists(cursor, models, name):
            raise ReportError(
                f"{models}.{name} does not exist in {settings.database}: build the dbt models "
                "first (`meltano invoke dbt-postgres:build`, or `meltano run manufacturing-el`)"
            )
    cursor.execute(sql.SQL(_ANOMALIES).format(view=sql.Identifier(models, "load_anomalies")))
    findings = []
    thresholds: dict[str, dict[str, Any]] = {}
    for row in cursor.fetchall():
        (table, measure, column, level, value, low, high, fail_low, fail_high, loads,
         history_min, history_max, load_id, loaded_at, message, kind, warn, fail) = row  # fmt: skip
        thresholds[measure] = {"kind": kind, "warn": _number(warn), "fail": _number(fail)}
        findings.append(
            Finding(
                table=table,
                measure=measure,
                column=column,
                level=level,
                value=_number(value),
                expected=(_number(low), _number(high)),
                fail_outside=(_number(fail_low), _number(fail_high)),
                history_loads=int(loads),
                history=(_number(history_min), _number(history_max)),
                load_id=load_id,
                loaded_at=_iso(loaded_at),
                message=message,
            )
        )
    if _exists(cursor, settings.raw_schema, "_load_history"):
        cursor.execute(
            sql.SQL(_UNPROFILED).format(
                history=sql.Identifier(settings.raw_schema, "_load_history"),
                profiles=sql.Identifier(models, "load_profiles"),
            ),
            (list(_SUCCESS),),
        )
        for table, load_id, finished_at in cursor.fetchall():
            findings.append(
                Finding(
                    table=table,
                    measure="profile",
                    column=None,
                    level="not_profiled",
                    value=None,
                    expected=(None, None),
                    fail_outside=(None, None),
                    history_loads=0,
                    history=(None, None),
                    load_id=load_id,
                    loaded_at=_iso(finished_at),
                    message=(
                        f"{settings.raw_schema}.{table}: load {load_id} ({_iso(finished_at)}) "
                        "is not profiled yet, so no anomaly check has seen it: run dbt build"
                    ),
                )
            )
    cursor.execute("SELECT now()")
    generated = cursor.fetchone()[0]
    return Report(settings, _iso(generated), tuple(findings), dict(sorted(thresholds.items())))


def fetch_report(settings: WarehouseSettings) -> Report:
    """Read the anomaly checks from the warehouse (one read-only transaction)."""
    try:
        connection = psycopg2.connect(
            host=settings.host,
            port=settings.port,
            dbname=settings.database,
            user=settings.user,
            password=settings.password or None,
            sslmode=settings.sslmode,
            connect_timeout=10,
            application_name="pen-factory quality-report",
        )
    except psycopg2.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no reason given"
        raise ReportError(f"cannot reach the warehouse {settings.describe()}: {reason}") from None
    try:
        connection.set_session(readonly=True)
        with connection, connection.cursor() as cursor:
            cursor.execute("SET TimeZone = 'UTC'")
            return _read(cursor, settings)
    finally:
        connection.close()


def render_json(report: Report, *, everything: bool = False) -> str:
    """The JSON document `--json` prints."""
    return json.dumps(report.as_json(everything=everything), indent=2)


def render_text(report: Report, *, everything: bool = False) -> str:
    """One line per finding that needs attention (all with `everything`), then a summary."""
    shown = _ordered([f for f in report.findings if everything or f.level in _SEVERITY])
    lines = [f"{finding.level.upper():<12} {finding.message}" for finding in shown]
    counts = ", ".join(f"{count} {level}" for level, count in report.counts().items() if count)
    tables = len({finding.table for finding in report.findings})
    lines.append(
        f"quality report: {report.status.upper()} - {tables} tables, "
        f"{len(report.findings)} measures ({counts or 'none yet'})"
    )
    return "\n".join(lines)


def exit_code(report: Report, fail_on: str) -> int:
    """1 when a measure is at `fail_on` level or worse, else 0."""
    worst = max((_SEVERITY.get(f.level, 0) for f in report.findings), default=0)
    return 1 if worst >= {"fail": 2, "warn": 1}[fail_on] else 0
