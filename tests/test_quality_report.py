"""`pen-factory quality-report` without dbt: settings, rendering, exit codes, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pen_factory import quality_report
from pen_factory.quality_report import Finding, Report, ReportError, WarehouseSettings


def test_settings_come_from_the_warehouse_variables_with_the_targets_defaults():
    assert WarehouseSettings.from_env({}) == WarehouseSettings(
        "localhost", 5432, "warehouse", "postgres", "", None, "raw", "analytics"
    )
    empty = {f"WAREHOUSE_{name}": "" for name in ("HOST", "PORT", "DB", "USER", "SCHEMA")}
    assert WarehouseSettings.from_env(empty) == WarehouseSettings()
    settings = WarehouseSettings.from_env(
        {
            "WAREHOUSE_HOST": "dwh", "WAREHOUSE_PORT": "6432", "WAREHOUSE_DB": "factory",
            "WAREHOUSE_USER": "reporter", "WAREHOUSE_PASSWORD": "s3cret",
            "WAREHOUSE_SSLMODE": "require", "WAREHOUSE_SCHEMA": "landing",
            "WAREHOUSE_ANALYTICS_SCHEMA": "marts",
        }
    )  # fmt: skip
    assert (settings.host, settings.port, settings.database, settings.user) == (
        "dwh", 6432, "factory", "reporter",
    )  # fmt: skip
    assert (settings.sslmode, settings.raw_schema, settings.models_schema) == (
        "require", "landing", "marts",
    )  # fmt: skip
    assert "s3cret" not in repr(settings)
    assert settings.describe() == "reporter@dwh:6432/factory"
    with pytest.raises(ReportError, match="WAREHOUSE_PORT must be a port number, not 'x'"):
        WarehouseSettings.from_env({"WAREHOUSE_PORT": "x"})


def _finding(table: str, measure: str, level: str, column: str | None = None) -> Finding:
    return Finding(
        table=table, measure=measure, column=column, level=level, value=150,
        expected=(240, 360), fail_outside=(180, 420), history_loads=3, history=(300, 300),
        load_id=7, loaded_at="2026-01-01T00:00:00+00:00", message=f"raw.{table}: {measure}",
    )  # fmt: skip


def _report(*findings: Finding) -> Report:
    thresholds = {"row_count": {"kind": "relative", "warn": 0.2, "fail": 0.4}}
    return Report(WarehouseSettings(), "2026-01-01T00:00:00+00:00", findings, thresholds)


def test_status_exit_code_and_json_follow_the_worst_level():
    ok = _report(
        _finding("bodies", "row_count", "ok"), _finding("refills", "null_rate", "learning")
    )
    warned = _report(
        _finding("springs", "row_count", "warn"), _finding("bodies", "row_count", "ok")
    )
    failed = _report(
        _finding("bodies", "row_count", "ok"), _finding("refills", "row_count", "fail")
    )
    assert [r.status for r in (ok, warned, failed)] == ["ok", "warn", "fail"]
    assert [quality_report.exit_code(r, "fail") for r in (ok, warned, failed)] == [0, 0, 1]
    assert [quality_report.exit_code(r, "warn") for r in (ok, warned, failed)] == [0, 1, 1]
    document = json.loads(quality_report.render_json(failed))
    assert document["status"] == "fail"
    assert document["counts"]["fail"] == 1
    assert document["counts"]["ok"] == 1
    assert document["findings"] == [
        {
            "table": "refills", "measure": "row_count", "column": None, "level": "fail",
            "value": 150, "expected": {"low": 240, "high": 360},
            "fail_outside": {"low": 180, "high": 420},
            "history": {"loads": 3, "min": 300, "max": 300}, "load_id": 7,
            "loaded_at": "2026-01-01T00:00:00+00:00", "message": "raw.refills: row_count",
        }
    ]  # fmt: skip
    assert len(json.loads(quality_report.render_json(failed, everything=True))["findings"]) == 2


def test_text_lists_what_needs_attention_first_then_a_summary():
    report = _report(
        _finding("springs", "row_count", "warn"),
        _finding("bodies", "row_count", "ok"),
        _finding("refills", "profile", "not_profiled"),
        _finding("bodies", "null_rate", "fail", "inspector"),
    )
    assert quality_report.render_text(report).splitlines() == [
        "FAIL         raw.bodies: null_rate",
        "WARN         raw.springs: row_count",
        "NOT_PROFILED raw.refills: profile",
        "quality report: FAIL - 3 tables, 4 measures (1 fail, 1 warn, 1 not_profiled, 1 ok)",
    ]


def _pen_factory(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    beside = Path(sys.executable).parent / "pen-factory"
    return subprocess.run(
        [str(beside) if beside.exists() else "pen-factory", "quality-report", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_an_unreachable_warehouse_is_exit_2_with_one_line_and_no_password():
    env = {"PATH": "/usr/bin:/bin", "WAREHOUSE_HOST": "127.0.0.1", "WAREHOUSE_PORT": "1",
           "WAREHOUSE_PASSWORD": "s3cret"}  # fmt: skip
    result = _pen_factory(env, "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(
        "pen-factory: error: cannot reach the warehouse postgres@127.0.0.1:1/warehouse: "
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert "s3cret" not in result.stderr


@pytest.mark.integration
def test_a_warehouse_without_the_models_says_to_build_them(pg_server, make_database):
    database = make_database("warehouse")
    env = {"PATH": "/usr/bin:/bin", "WAREHOUSE_HOST": pg_server.host,
           "WAREHOUSE_PORT": str(pg_server.port), "WAREHOUSE_USER": pg_server.user,
           "WAREHOUSE_DB": database}  # fmt: skip
    result = _pen_factory(env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"pen-factory: error: analytics.load_anomalies does not exist in {database}: build the "
        "dbt models first (`meltano invoke dbt-postgres:build`, or `meltano run manufacturing-el`)"
    )
