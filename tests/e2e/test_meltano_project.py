"""The Meltano project end to end: `meltano run`, the job, the schedule, config and the check."""

from __future__ import annotations

import json
import re

import pytest

from pen_factory import demo_data
from testkit.dbt_runs import isolate_dbt_output
from testkit.pipeline import DEMO_ROWS, Pipeline, assert_warehouse_equals_sources, warehouse_rows
from testkit.processes import clean_environment

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

MAIN_JOB = ("run", "tap-manufacturing", "target-warehouse-raw")


def test_first_load_equals_the_sources(pipeline: Pipeline):
    result = pipeline.meltano(*MAIN_JOB)
    assert_warehouse_equals_sources(pipeline)
    # The target's run summary names every stream and what happened to it.
    for source in demo_data.SOURCES:
        assert re.search(rf"\b{source}\b.*\breplaced\b", result.output), result.output[-3000:]


def test_second_run_follows_deleted_updated_added_rows_and_a_new_column(pipeline: Pipeline):
    pipeline.meltano(*MAIN_JOB)
    pipeline.source_sql(
        "refills",
        "DELETE FROM refills_production WHERE id % 10 = 0",
        "UPDATE refills_production SET units_rejected = units_rejected + 1, "
        "qc_passed = false, defect_codes = ARRAY['BLOT'], updated_at = now() "
        "WHERE id % 7 = 0",
        "INSERT INTO refills_production SELECT id + 100000, lot_code, batch_code, line, shift, "
        "produced_at, ink_color, ink_volume_ml, ink_volume_tolerance_ml, tip_diameter_mm, "
        "tip_tolerance_mm, tube_length_mm, units_produced, units_rejected, qc_passed, "
        "defect_codes, sensor_readings, operator_id, created_at, updated_at "
        "FROM refills_production WHERE id <= 25",
    )
    pipeline.source_sql(
        "bodies",
        "ALTER TABLE bodies_production ADD COLUMN inspection_note text, "
        "ADD COLUMN gloss_units numeric(10,4)",
        "UPDATE bodies_production SET inspection_note = 'rechecked', gloss_units = 87.5000 "
        "WHERE id % 3 = 0",
    )
    pipeline.source_sql("springs", "DELETE FROM springs_production")
    pipeline.meltano(*MAIN_JOB)
    assert_warehouse_equals_sources(pipeline)


def test_widened_source_columns_are_followed_and_no_value_is_rounded(pipeline: Pipeline):
    pipeline.meltano(*MAIN_JOB)
    pipeline.source_sql(
        "refills",
        "ALTER TABLE refills_production ALTER COLUMN ink_volume_ml TYPE numeric(14,6), "
        "ALTER COLUMN units_produced TYPE bigint",
        "UPDATE refills_production SET ink_volume_ml = ink_volume_ml + 0.000012, "
        "units_produced = units_produced + 3000000000 WHERE id % 2 = 0",
    )
    pipeline.meltano(*MAIN_JOB)
    assert_warehouse_equals_sources(pipeline)  # types via format_type, values via ::text


def test_the_job_runs_and_the_schedule_is_listed(pipeline: Pipeline, dbt_executable, tmp_path):
    isolate_dbt_output(pipeline, tmp_path)
    run = pipeline.meltano("run", "manufacturing-el")
    assert_warehouse_equals_sources(pipeline)
    # After the loads, dbt built the models and ran the checks ...
    assert "Completed successfully" in run.output, run.output[-4000:]
    marts = warehouse_rows(pipeline, "SELECT sum(runs) FROM analytics.daily_line_output")
    assert marts == [(3 * DEMO_ROWS,)]
    for source in demo_data.SOURCES:  # ... and the job ended with the check's report
        assert re.search(rf"\b{source}\s+300\s+replaced\s.*\s300\s+yes\b", run.output)
    listed = pipeline.meltano("schedule", "list", "--format=json")
    schedules = json.loads(listed.stdout)["schedules"]["job"]
    daily = {schedule["name"]: schedule for schedule in schedules}["manufacturing-el-daily"]
    assert daily["interval"] == "@daily"
    assert daily["job"]["name"] == "manufacturing-el"
    assert daily["job"]["tasks"] == [
        "tap-manufacturing--refills target-warehouse-raw",
        "tap-manufacturing--bodies target-warehouse-raw",
        "tap-manufacturing--springs target-warehouse-raw",
        "dbt-postgres:build",
        "warehouse-check:test",
    ]


def test_the_job_fails_when_a_source_fails_and_meltano_test_when_counts_differ(
    pipeline: Pipeline,
):
    pipeline.meltano(*MAIN_JOB)
    passed = pipeline.meltano("test", "--all", check=False)
    assert passed.returncode == 0, passed.output[-4000:]
    assert "warehouse-check:test" in passed.output
    assert re.search(r"^refills\s+300\s.*\s300\s+yes\s*$", passed.output, re.M), passed.output
    pipeline.source_sql("springs", "DELETE FROM springs_production WHERE id <= 5")
    failed = pipeline.meltano("test", "--all", check=False)
    assert failed.returncode == 1, failed.output[-4000:]
    assert re.search(r"^springs\s+300\s.*\s295\s+NO\s*$", failed.output, re.M), failed.output
    # A source that cannot be reached fails the job (non-zero), whatever the other tasks did.
    pipeline.env["REFILLS_PORT"] = "1"
    job = pipeline.meltano("run", "manufacturing-el", check=False)
    assert job.returncode != 0
    assert "source 'refills' (host=" in job.output, job.output[-4000:]


def test_one_source_plugin_runs_while_another_source_is_down(pipeline: Pipeline):
    """Each per-source plugin reads only its own source: discovery never touches the others."""
    pipeline.env["BODIES_PORT"] = "1"
    pipeline.meltano("run", "tap-manufacturing--springs", "target-warehouse-raw")
    rows = warehouse_rows(pipeline, "SELECT stream, status, rows FROM raw._load_history")
    assert rows == [("springs", "replaced", 300)]


def test_the_job_fails_when_a_data_quality_check_fails(
    pipeline: Pipeline, dbt_executable, tmp_path
):
    """A scheduled run fails on a failed test: the exit code says so, and the log which test."""
    isolate_dbt_output(pipeline, tmp_path)
    pipeline.source_sql(
        "springs", "UPDATE springs_production SET units_rejected = units_wound + 1 WHERE id = 3"
    )
    run = pipeline.meltano("run", "manufacturing-el", check=False)
    assert run.returncode == 1, run.output[-4000:]
    assert "Failure in test rejects_not_above_production_stg_springs" in run.output
    assert "Got 1 result, configured to fail if != 0" in run.output


def test_check_passes_after_a_load_and_fails_after_a_source_changes(pipeline: Pipeline):
    pipeline.meltano(*MAIN_JOB)
    good = pipeline.meltano("invoke", "target-warehouse-raw:check", check=False)
    assert good.returncode == 0, good.output[-4000:]
    for source in demo_data.SOURCES:  # one line per table: rows, status, source rows, match
        assert re.search(rf"^{source}\s+300\s.*\s300\s+yes\s*$", good.stdout, re.M), good.stdout
    pipeline.source_sql("springs", "DELETE FROM springs_production WHERE id <= 5")
    bad = pipeline.meltano("invoke", "target-warehouse-raw:check", check=False)
    assert bad.returncode == 1, bad.output[-4000:]
    assert re.search(r"^springs\s+300\s.*\s295\s+NO\s*$", bad.stdout, re.M), bad.stdout
    assert re.search(r"^refills\s+300\s.*\syes\s*$", bad.stdout, re.M), bad.stdout
    # A reload brings the warehouse back in line with the source, and the check with it.
    pipeline.meltano(*MAIN_JOB)
    again = pipeline.meltano("invoke", "target-warehouse-raw:check", check=False)
    assert again.returncode == 0, again.output[-4000:]


def test_config_comes_from_the_factory_variables_and_hides_passwords(pipeline: Pipeline):
    pipeline.env.update(
        REFILLS_PASSWORD="refills-secret",
        WAREHOUSE_PASSWORD="warehouse-secret",
        REFILLS_SSLMODE="disable",
    )
    for plugin in ("tap-manufacturing", "target-warehouse-raw"):
        listed = pipeline.meltano("config", "list", plugin)
        assert "secret" not in listed.output
    tap = json.loads(pipeline.meltano("invoke", "--dump=config", "tap-manufacturing").stdout)
    refills = tap["sources"]["refills"]
    assert refills["database"] == pipeline.sources["refills"].database
    assert refills["port"] == pipeline.server.port
    assert refills["password"] == "refills-secret"
    target = json.loads(pipeline.meltano("invoke", "--dump=config", "target-warehouse-raw").stdout)
    assert target["database"] == pipeline.warehouse.database
    assert target["schema"] == "raw"
    # The check reaches the source as the tap does: same address, login, TLS and timeout.
    assert target["check_sources"]["refills"] == {
        key: refills[key]
        for key in ("host", "port", "database", "user", "password", "sslmode", "connect_timeout")
    }
    assert refills["sslmode"] == "disable"


def test_unset_variables_fall_back_to_the_plugin_defaults(pipeline: Pipeline):
    """Meltano drops an unset `$VAR`; every source block must survive, defaults apply."""
    pipeline.env = {**clean_environment(), **{
        key: value for key, value in pipeline.env.items() if key.startswith("MELTANO_")
    }}  # fmt: skip
    tap = json.loads(pipeline.meltano("invoke", "--dump=config", "tap-manufacturing").stdout)
    assert set(tap["sources"]) == set(demo_data.SOURCES)
    for block in tap["sources"].values():
        assert set(block) <= {"connect_timeout"}
    target = json.loads(pipeline.meltano("invoke", "--dump=config", "target-warehouse-raw").stdout)
    assert not {"host", "port", "database", "user", "password", "schema"} & set(target)
    from tap_manufacturing.config import parse_settings

    settings = parse_settings(tap)
    refills = settings.source("refills")
    assert (refills.host, refills.port, refills.database, refills.user) == (
        "localhost", 5432, "refills", "postgres",
    )  # fmt: skip
    assert (refills.schema, refills.table) == ("public", "refills_production")


def test_meltano_own_variables_override_the_project(pipeline: Pipeline):
    pipeline.env["TAP_MANUFACTURING_SOURCES_BODIES_TABLE"] = "bodies_v2"
    pipeline.env["TARGET_WAREHOUSE_RAW_SCHEMA"] = "raw_override"
    tap = json.loads(pipeline.meltano("invoke", "--dump=config", "tap-manufacturing").stdout)
    assert tap["sources"]["bodies"]["table"] == "bodies_v2"
    target = json.loads(pipeline.meltano("invoke", "--dump=config", "target-warehouse-raw").stdout)
    assert target["schema"] == "raw_override"


@pytest.mark.parametrize("load_method", ["", "upsert"], ids=["default-load-method", "upsert"])
def test_incremental_mode_reads_only_changed_rows_and_upserts_them(
    pipeline: Pipeline, load_method: str
):
    # With the load method left at its default, the second run once *replaced* the table with
    # the changed rows alone; now a partial extract is merged whatever the default.
    pipeline.env.update(
        REFILLS_REPLICATION_METHOD="INCREMENTAL",
        REFILLS_REPLICATION_KEY="updated_at",
        WAREHOUSE_LOAD_METHOD=load_method,
    )
    pipeline.meltano(*MAIN_JOB)
    assert_warehouse_equals_sources(pipeline)
    later = "timestamptz '2030-01-01 00:00:00+00'"
    pipeline.source_sql(
        "refills",
        f"UPDATE refills_production SET units_rejected = units_rejected + 100, "
        f"updated_at = {later} WHERE id % 10 = 0",
        f"INSERT INTO refills_production SELECT id + 100000, lot_code, batch_code, line, shift, "
        f"produced_at, ink_color, ink_volume_ml, ink_volume_tolerance_ml, tip_diameter_mm, "
        f"tip_tolerance_mm, tube_length_mm, units_produced, units_rejected, qc_passed, "
        f"defect_codes, sensor_readings, operator_id, created_at, {later} "
        f"FROM refills_production WHERE id <= 5",
    )
    second = pipeline.meltano(*MAIN_JOB)
    assert_warehouse_equals_sources(pipeline)
    read = re.search(r"Finished stream 'refills': (\d+) rows", second.output)
    assert read, second.output[-3000:]
    # Only the 30 changed and 5 new rows, not all 305; plus the row(s) at the old bookmark,
    # which the tap re-reads (key >= bookmark) so that rows sharing that value are never lost.
    assert 35 <= int(read.group(1)) <= 40


@pytest.mark.parametrize("reload", ["--full-refresh", "state clear"])
def test_a_full_refresh_reloads_an_incremental_table_exactly(pipeline: Pipeline, reload: str):
    pipeline.env.update(
        REFILLS_REPLICATION_METHOD="INCREMENTAL", REFILLS_REPLICATION_KEY="updated_at"
    )
    pipeline.meltano(*MAIN_JOB)
    pipeline.source_sql("refills", "DELETE FROM refills_production WHERE id % 10 = 0")
    pipeline.meltano(*MAIN_JOB)  # incremental: rows deleted at the source stay
    assert warehouse_rows(pipeline, "SELECT count(*) FROM raw.refills") == [(300,)]
    if reload == "--full-refresh":
        pipeline.meltano("run", "--full-refresh", *MAIN_JOB[1:])
    else:
        state_id = "dev:tap-manufacturing-to-target-warehouse-raw"
        pipeline.meltano("state", "clear", "--force", state_id)
        pipeline.meltano(*MAIN_JOB)
    assert_warehouse_equals_sources(pipeline)  # the deleted rows are gone
    last = warehouse_rows(
        pipeline,
        "SELECT load_method, status, rows FROM raw._load_history WHERE stream = 'refills' "
        "ORDER BY id DESC LIMIT 1",
    )
    assert last == [("overwrite", "replaced", 270)]  # one transactional replace


def test_plugin_virtualenvs_are_byte_compiled_at_install(meltano_sys_dir):
    # meltano.yml asks uv for .pyc files at install time: without them every plugin process
    # (three per run) compiles the SDK again wherever PYTHONDONTWRITEBYTECODE is set.
    for kind, name in (("extractors", "tap-manufacturing"), ("loaders", "target-warehouse-raw")):
        packages = meltano_sys_dir / kind / name / "venv" / "lib"
        compiled = list(packages.glob("python3*/site-packages/singer_sdk/__pycache__/*.pyc"))
        assert compiled, f"{name}: no .pyc files in its virtualenv's singer_sdk"


def test_batch_mode_under_meltano_loads_the_same_tables_and_leaves_no_files(
    pipeline: Pipeline, tmp_path
):
    folder = tmp_path / "batches"
    pipeline.env["PIPELINE_BATCH_DIR"] = str(folder)
    result = pipeline.meltano(*MAIN_JOB)
    assert_warehouse_equals_sources(pipeline)
    assert re.search(r"\b[1-9]\d* batch manifests", result.output), result.output[-3000:]
    assert list(folder.iterdir()) == []  # the target deleted every file it loaded
