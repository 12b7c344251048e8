"""`dbt build` for real: installed by Meltano, on demo data loaded by the real pipeline.

Green on good data, with marts equal (row for row, type for type) to what the source
databases say; red on data made bad on purpose, with exactly the right tests named; and the
documentation covers every model column.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from pen_factory import demo_data
from testkit.dbt_runs import MODELS_SCHEMA, load, meltano, meltano_dbt, warehouse_sql
from testkit.pipeline import Pipeline, warehouse_rows
from testkit.processes import clean_environment

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

# What each line calls its produced and rejected units.
UNITS = {
    "refills": ("units_produced", "units_rejected"),
    "bodies": ("units_molded", "units_scrapped"),
    "springs": ("units_wound", "units_rejected"),
}


def _source_runs(pipeline: Pipeline) -> dict[str, list[tuple]]:
    """Per line: (UTC production date, line, shift, produced, rejected, qc_passed) per run."""
    runs = {}
    for source, (produced, rejected) in UNITS.items():
        connection = pipeline.sources[source].connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT (produced_at AT TIME ZONE 'UTC')::date, line, shift, {produced}, "
                    f"{rejected}, qc_passed FROM {source}_production"
                )
                runs[source] = cursor.fetchall()
        finally:
            connection.close()
    return runs


def expected_daily_line_output(runs: dict[str, list[tuple]]) -> list[tuple]:
    """The daily_line_output mart, computed here in Python from the sources' rows."""
    groups: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for component, rows in runs.items():
        for day, line, shift, produced, rejected, passed in rows:
            group = groups[(day, component, line, shift)]
            group[0] += 1
            group[1] += produced
            group[2] += rejected
            group[3] += 0 if passed else 1
    table = []
    for (day, component, line, shift), (count, produced, rejected, failed) in sorted(
        groups.items()
    ):
        rate = (Decimal(rejected) / Decimal(produced)).quantize(Decimal("0.0001"), ROUND_HALF_UP)
        table.append(
            (day, component, line, shift, count, produced, rejected, produced - rejected, rate,
             failed)
        )  # fmt: skip
    return table


def expected_pen_capacity(line_output: list[tuple]) -> list[tuple]:
    """The daily_pen_capacity mart, from the expected daily line output."""
    good: dict = defaultdict(lambda: {"refills": 0, "bodies": 0, "springs": 0})
    for day, component, _line, _shift, *_counts, units_good, _rate, _failed in line_output:
        good[day][component] += units_good
    table = []
    for day in sorted(good):
        counts = good[day]
        pens = min(counts.values())
        limiting = next(c for c in ("refills", "bodies", "springs") if counts[c] == pens)
        table.append((day, counts["refills"], counts["bodies"], counts["springs"], pens, limiting))
    return table


def _marts(pipeline: Pipeline) -> tuple[list[tuple], list[tuple]]:
    line_output = warehouse_rows(
        pipeline,
        f"SELECT * FROM {MODELS_SCHEMA}.daily_line_output "
        "ORDER BY production_date, component, line, shift",
    )
    capacity = warehouse_rows(
        pipeline, f"SELECT * FROM {MODELS_SCHEMA}.daily_pen_capacity ORDER BY production_date"
    )
    return line_output, capacity


def _column_types(pipeline: Pipeline, table: str) -> dict[str, str]:
    rows = warehouse_rows(
        pipeline,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = '{MODELS_SCHEMA}' AND c.relname = '{table}' AND a.attnum > 0 "
        "ORDER BY a.attnum",
    )
    return dict(rows)


def test_build_is_green_on_demo_data_and_red_with_the_right_tests_on_bad_data(pipeline):
    load(pipeline)
    green = meltano_dbt(pipeline, "build")
    assert "Completed successfully" in green.output
    assert set(s for s, _ in green.results.values()) == {"pass", "success"}, green.failing()
    # Every check ran: the generated source tests of each table, the hand-written rules and
    # the anomaly tests (learning: one load is no history yet).
    for table in demo_data.SOURCES:
        for test in (
            f"source_unique_raw_{table}_id",
            f"source_load_is_fresh_raw_{table}",
            f"source_rows_match_last_load_raw_{table}",
            f"rejects_not_above_production_stg_{table}",
        ):
            assert green.status(test) == "pass", test
    assert green.status("no_load_anomaly_at_fail_level") == "pass"

    runs = _source_runs(pipeline)
    line_output, capacity = _marts(pipeline)
    assert line_output == expected_daily_line_output(runs)
    assert capacity == expected_pen_capacity(line_output)
    assert sum(row[5] for row in line_output) == sum(
        produced for rows in runs.values() for *_, produced, _rejected, _passed in rows
    )
    assert _column_types(pipeline, "daily_line_output") == {
        "production_date": "date", "component": "text", "line": "text", "shift": "text",
        "runs": "bigint", "units_produced": "bigint", "units_rejected": "bigint",
        "units_good": "bigint", "reject_rate": "numeric", "runs_failed_qc": "bigint",
    }  # fmt: skip
    assert _column_types(pipeline, "daily_pen_capacity") == {
        "production_date": "date", "good_refills": "bigint", "good_bodies": "bigint",
        "good_springs": "bigint", "pens_possible": "bigint", "limiting_component": "text",
    }  # fmt: skip

    # Bad data. Two bodies runs report more scrap than they moulded (at the line, loaded as is).
    pipeline.source_sql(
        "bodies",
        "UPDATE bodies_production SET units_scrapped = units_molded + 7 WHERE id IN (5, 6)",
    )
    load(pipeline)
    # Two refills runs share a key, as in a table without a primary key that was loaded
    # twice in append-only mode.
    warehouse_sql(
        pipeline,
        "ALTER TABLE raw.refills DROP CONSTRAINT refills_pkey",
        "UPDATE raw.refills SET id = 1 WHERE id = 2",
    )
    # springs was last loaded successfully three days ago.
    warehouse_sql(
        pipeline,
        "UPDATE raw._load_history SET started_at = started_at - interval '3 days', "
        "finished_at = finished_at - interval '3 days' WHERE table_name = 'springs'",
    )
    red = meltano_dbt(pipeline, "build", expect=1)
    assert red.failing() == {
        "source_unique_raw_refills_id": 1,
        "source_load_is_fresh_raw_springs": 1,
        "rejects_not_above_production_stg_bodies": 2,
    }
    for line in (
        "Failure in test source_unique_raw_refills_id (models/sources.yml)",
        "Failure in test source_load_is_fresh_raw_springs (models/sources.yml)",
        "Failure in test rejects_not_above_production_stg_bodies (models/staging/staging.yml)",
        "Got 2 results, configured to fail if != 0",
    ):
        assert line in red.output, red.output[-6000:]
    # Nothing is built on rows that failed a row check: what depends on refills is skipped,
    # and the marts keep the last good build's rows. A stale table is old, not wrong: the
    # build fails, but springs' own model is still built (dbt blocks only on checks that
    # read the tested table alone; freshness also reads the load history).
    for model in ("stg_refills", "int_production_runs", "daily_line_output", "daily_pen_capacity"):
        assert red.status(model) == "skipped", model
    assert red.status("stg_bodies") == "success"
    assert red.status("stg_springs") == "success"
    assert _marts(pipeline) == (line_output, capacity)


def test_docs_cover_every_model_column(pipeline):
    load(pipeline)
    meltano_dbt(pipeline, "run")
    meltano_dbt(pipeline, "docs-generate")
    target = Path(pipeline.env["DBT_TARGET_PATH"])
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    models = {
        node_id: node
        for node_id, node in manifest["nodes"].items()
        if node["resource_type"] == "model"
    }
    assert {node["name"] for node in models.values()} == {
        "stg_refills", "stg_bodies", "stg_springs", "int_production_runs",
        "daily_line_output", "daily_pen_capacity", "load_profiles", "load_anomalies",
    }  # fmt: skip
    undocumented = []
    for node_id, node in models.items():
        if not node["description"]:
            undocumented.append(node["name"])
        built = catalog["nodes"][node_id]["columns"]  # the columns the warehouse really has
        for column in built:
            if not node["columns"].get(column, {}).get("description"):
                undocumented.append(f"{node['name']}.{column}")
    assert undocumented == []
    # The raw tables are documented from the sources' own comments.
    sources = {(s["source_name"], s["name"]): s for s in manifest["sources"].values()}
    refills = sources[("raw", "refills")]
    assert refills["columns"]["units_rejected"]["description"] == (
        "Refills of the run rejected by quality control."
    )


def test_the_profile_reads_the_warehouse_variables_with_the_targets_defaults(
    meltano_sys_dir, dbt_executable, tmp_path
):
    """With no variable set, dbt points where the target points; prod requires TLS."""
    env = {
        **clean_environment(),
        "MELTANO_SYS_DIR_ROOT": str(meltano_sys_dir),
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_TARGET_PATH": str(tmp_path / "dbt-target"),
        "DBT_LOG_PATH": str(tmp_path / "dbt-logs"),
    }
    dev = meltano(env, "invoke", "dbt-postgres:debug")
    for line in (
        "host: localhost", "port: 5432", "database: warehouse", "user: postgres",
        "schema: analytics", "sslmode: prefer",
    ):  # fmt: skip
        assert line in dev, dev[-4000:]
    prod = meltano(env, "--environment=prod", "invoke", "dbt-postgres:debug")
    assert "sslmode: require" in prod, prod[-4000:]
    assert "host: localhost" in prod
