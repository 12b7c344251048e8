"""Anomaly checks: each load compared with the recent history of its table.

A history of normal loads, then a load with half the rows (and one with a quarter fewer),
then one with a column gone NULL: dbt fails (or warns) naming table, measure, expected range
and value, and `pen-factory quality-report --json` says the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from testkit.dbt_runs import anomaly_lines, direct_dbt, load, meltano_dbt, pen_factory
from testkit.pipeline import Pipeline
from testkit.processes import PROJECT_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


def _profile(dbt: Path, pipeline: Pipeline, *args: str) -> str:
    result = direct_dbt(dbt, pipeline, *args)
    assert result.returncode == 0, result.stdout[-6000:]
    return result.stdout


def _report(pipeline: Pipeline, *args: str) -> tuple[int, dict]:
    result = pen_factory(pipeline, "quality-report", "--json", *args)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def _null_rate(pipeline: Pipeline, source: str, column: str) -> float:
    connection = pipeline.sources[source].connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 - count({column})::numeric / count(*) FROM {source}_production"
            )
            return float(cursor.fetchone()[0])
    finally:
        connection.close()


def test_half_the_rows_and_a_column_gone_null_are_caught(pipeline, dbt_executable):
    # A history of three normal loads, each profiled by the dbt run that follows it.
    load(pipeline)
    _profile(dbt_executable, pipeline, "run")
    status, report = _report(pipeline)
    assert (status, report["status"], report["findings"]) == (0, "ok", [])
    assert report["counts"]["learning"] > 0
    assert report["counts"]["ok"] == 0
    for _ in range(2):
        load(pipeline)
        _profile(dbt_executable, pipeline, "run", "--select", "load_profiles")

    # A load with half the refills and a quarter fewer springs.
    pipeline.source_sql("refills", "DELETE FROM refills_production WHERE id % 2 = 0")
    pipeline.source_sql("springs", "DELETE FROM springs_production WHERE id % 4 = 0")
    load(pipeline)
    built = direct_dbt(dbt_executable, pipeline, "build", "--select", "load_profiles+")
    assert built.returncode == 1, built.stdout[-6000:]
    assert "Failure in test no_load_anomaly_at_fail_level" in built.stdout
    assert "Warning in test no_load_anomaly_at_warn_level" in built.stdout
    assert anomaly_lines(built.stdout) == [
        "Load anomaly (fail): raw.refills: row_count is 150, expected 240 to 360 "
        "(fails outside 180 to 420; the 3 earlier loads: 300 to 300)",
        "Load anomaly (warn): raw.springs: row_count is 225, expected 240 to 360 "
        "(fails outside 180 to 420; the 3 earlier loads: 300 to 300)",
    ]
    status, report = _report(pipeline)
    assert status == 1
    assert report["status"] == "fail"
    keys = ("table", "measure", "column", "level", "value", "expected", "fail_outside", "history")
    findings = [{key: finding[key] for key in keys} for finding in report["findings"]]
    assert findings == [
        {
            "table": "refills", "measure": "row_count", "column": None, "level": "fail",
            "value": 150, "expected": {"low": 240, "high": 360},
            "fail_outside": {"low": 180, "high": 420},
            "history": {"loads": 3, "min": 300, "max": 300},
        },
        {
            "table": "springs", "measure": "row_count", "column": None, "level": "warn",
            "value": 225, "expected": {"low": 240, "high": 360},
            "fail_outside": {"low": 180, "high": 420},
            "history": {"loads": 3, "min": 300, "max": 300},
        },
    ]  # fmt: skip
    assert report["findings"][0]["message"] == anomaly_lines(built.stdout)[0].split(": ", 1)[1]
    # The thresholds reported are the ones the project sets.
    project = yaml.safe_load((PROJECT_ROOT / "transform" / "dbt_project.yml").read_text())
    assert report["thresholds"] == project["vars"]["quality_thresholds"]

    # A load in which the bodies' inspector column has gone NULL, run as the job runs dbt.
    earlier = _null_rate(pipeline, "bodies", "inspector")
    assert 0.05 < earlier < 0.2
    pipeline.source_sql("bodies", "UPDATE bodies_production SET inspector = NULL")
    load(pipeline)
    build = meltano_dbt(pipeline, "build", expect=1)
    assert build.failing() == {"no_load_anomaly_at_fail_level": 1}
    low, high = round(earlier - 0.05, 4), round(earlier + 0.05, 4)
    fail_high = round(earlier + 0.2, 4)
    expected_line = (
        f"Load anomaly (fail): raw.bodies: null_rate of inspector is 1, expected {low:g} to "
        f"{high:g} (fails outside 0 to {fail_high:g}; the 4 earlier loads: "
        f"{round(earlier, 4):g} to {round(earlier, 4):g})"
    )
    assert anomaly_lines(build.output) == [expected_line]
    status, report = _report(pipeline)
    assert status == 1
    found = [
        (f["table"], f["measure"], f["column"], f["level"], f["value"]) for f in report["findings"]
    ]
    assert found == [("bodies", "null_rate", "inspector", "fail", 1)]
    # The persisting half-size refills table is the new normal, no longer an anomaly.
    every = _report(pipeline, "--all")[1]["findings"]
    refills_rows = next(f for f in every if (f["table"], f["measure"]) == ("refills", "row_count"))
    assert (refills_rows["level"], refills_rows["value"]) == ("ok", 150)

    # A load that no build has profiled yet is reported as such, table by table.
    load(pipeline)
    text = pen_factory(pipeline, "quality-report")
    assert text.returncode == 1
    lines = text.stdout.splitlines()
    assert lines[0].startswith("FAIL         raw.bodies: null_rate of inspector is 1, expected")
    assert [line.split(":")[0] for line in lines[1:4]] == [
        "NOT_PROFILED raw.bodies", "NOT_PROFILED raw.refills", "NOT_PROFILED raw.springs",
    ]  # fmt: skip
    assert "is not profiled yet, so no anomaly check has seen it: run dbt build" in lines[1]
    assert lines[-1].startswith("quality report: FAIL - 3 tables, ")
