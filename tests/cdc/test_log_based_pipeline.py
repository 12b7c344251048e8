"""Change data capture end to end: `meltano run` with one LOG_BASED source beside two
full-table ones, on a server with wal_level = logical; the warehouse equals the sources
after every run, and after a SIGKILL of the tap, the target or Meltano at a random point."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pen_factory import demo_data
from testkit.cdc import drop_database_with_slots
from testkit.pipeline import (
    Pipeline,
    assert_warehouse_equals_sources,
    pipeline_environment,
    start_meltano,
    warehouse_rows,
)
from testkit.postgres import admin_execute

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.integration]

RUN = ("run", "tap-manufacturing", "target-warehouse-raw")
ROWS = 300


@pytest.fixture
def cdc_pipeline(logical_server, meltano_sys_dir, tmp_path) -> Iterator[Pipeline]:
    """Demo sources and a warehouse on the logical server; refills read LOG_BASED."""
    base = demo_data.endpoints_on_server(logical_server.host, logical_server.port)
    suffix = uuid.uuid4().hex[:8]
    endpoints = {name: replace(e, database=f"{name}_{suffix}") for name, e in base.items()}
    for endpoint in endpoints.values():
        admin_execute(logical_server.dsn(), f'CREATE DATABASE "{endpoint.database}"')
    try:
        demo_data.generate_demo(endpoints, ROWS)
        sources = {name: endpoints[name] for name in demo_data.SOURCES}
        env = pipeline_environment(
            logical_server, sources, endpoints["warehouse"], meltano_sys_dir, tmp_path / "m.db"
        )
        env.update(
            REFILLS_REPLICATION_METHOD="LOG_BASED",
            REFILLS_SLOT_NAME=f"pf_{suffix}",
            REFILLS_PUBLICATION_NAME=f"pf_{suffix}",
            TAP_MANUFACTURING_LOG_BASED_MAX_WAIT="30",  # a decimal set by a variable
        )
        yield Pipeline(logical_server, sources, endpoints["warehouse"], env, meltano_sys_dir)
    finally:
        for endpoint in endpoints.values():
            drop_database_with_slots(logical_server, endpoint.database)


def _history(pipeline: Pipeline) -> list[tuple]:
    return warehouse_rows(
        pipeline,
        "SELECT stream, load_method, status FROM raw._load_history ORDER BY id",
    )


def test_three_sources_one_log_based_follow_every_change(cdc_pipeline: Pipeline):
    pipeline = cdc_pipeline
    pipeline.meltano(*RUN)  # the snapshot
    assert_warehouse_equals_sources(pipeline)
    # Inserts, updates and deletes, and a large transaction.
    pipeline.source_sql(
        "refills",
        "DELETE FROM refills_production WHERE id % 10 = 0",
        "UPDATE refills_production SET units_rejected = units_rejected + 1, "
        "defect_codes = ARRAY['BLOT'] WHERE id % 7 = 0",
        "INSERT INTO refills_production SELECT id + 100000, lot_code, batch_code, line, shift, "
        "produced_at, ink_color, ink_volume_ml, ink_volume_tolerance_ml, tip_diameter_mm, "
        "tip_tolerance_mm, tube_length_mm, units_produced, units_rejected, qc_passed, "
        "defect_codes, sensor_readings, operator_id, created_at, updated_at "
        "FROM refills_production",
    )
    pipeline.source_sql("bodies", "DELETE FROM bodies_production WHERE id <= 3")
    second = pipeline.meltano(*RUN)
    assert_warehouse_equals_sources(pipeline)
    assert "apply-changes" in second.output, second.output[-3000:]
    # A TOASTed value, then an update that leaves it alone; a new column.
    pipeline.source_sql(
        "refills",
        "UPDATE refills_production SET lot_code = repeat(md5(id::text), 200) WHERE id = 1",
    )
    pipeline.meltano(*RUN)
    pipeline.source_sql(
        "refills",
        "UPDATE refills_production SET units_produced = units_produced + 5 WHERE id = 1",
        "ALTER TABLE refills_production ADD COLUMN inspector text",
        "UPDATE refills_production SET inspector = 'A. Ng' WHERE id % 3 = 0",
    )
    pipeline.meltano(*RUN)
    assert_warehouse_equals_sources(pipeline)
    # TRUNCATE, then new rows: the table is read again as a snapshot.
    pipeline.source_sql(
        "refills",
        "INSERT INTO refills_production (id, lot_code, batch_code, line, shift, produced_at, "
        "ink_color, ink_volume_ml, ink_volume_tolerance_ml, tip_diameter_mm, tip_tolerance_mm, "
        "tube_length_mm, units_produced, units_rejected, qc_passed, created_at, updated_at) "
        "SELECT 900000, 'L', 'B', 'L1', 'A', now(), 'blue', 1, 0, 0.5, 0, 100, 10, 0, true, "
        "now(), now()",
    )
    pipeline.source_sql("refills", "TRUNCATE refills_production")
    pipeline.source_sql(
        "refills",
        "INSERT INTO refills_production (id, lot_code, batch_code, line, shift, produced_at, "
        "ink_color, ink_volume_ml, ink_volume_tolerance_ml, tip_diameter_mm, tip_tolerance_mm, "
        "tube_length_mm, units_produced, units_rejected, qc_passed, created_at, updated_at) "
        "SELECT g, 'L', 'B', 'L1', 'A', now(), 'blue', 1, 0, 0.5, 0, 100, 10, 0, true, now(), "
        "now() FROM generate_series(1, 5) g",
    )
    pipeline.meltano(*RUN)
    assert_warehouse_equals_sources(pipeline)
    refills = [row for row in _history(pipeline) if row[0] == "refills"]
    assert {method for _s, method, _st in refills} == {"apply-changes"}
    assert {status for _s, _m, status in refills} == {"applied"}
    # A run with nothing new changes nothing, and the check reports the slot.
    pipeline.meltano(*RUN)
    assert_warehouse_equals_sources(pipeline)
    check = pipeline.meltano("invoke", "target-warehouse-raw:check", check=False)
    assert check.returncode == 0, check.output[-3000:]


def _process_in_group(group: int, name: str, timeout: float = 60) -> int | None:
    """The pid of the process of the run's process group whose command line holds `name`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getpgid(int(entry.name)) != group:
                    continue
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, ProcessLookupError):
                continue
            if name in command:
                return int(entry.name)
        time.sleep(0.05)
    return None


@pytest.mark.parametrize("victim", ["tap-manufacturing", "target-warehouse-raw", "meltano"])
def test_a_killed_run_then_a_rerun_loses_and_duplicates_nothing(cdc_pipeline, victim):
    pipeline = cdc_pipeline
    pipeline.meltano(*RUN)
    chance = random.Random(f"{victim}-{os.getpid()}")
    for round_ in range(2):
        pipeline.source_sql(
            "refills",
            f"DELETE FROM refills_production WHERE id % 11 = {round_}",
            "UPDATE refills_production SET units_rejected = units_rejected + 1 "
            f"WHERE id % 5 = {round_}",
            f"INSERT INTO refills_production SELECT id + {200000 * (round_ + 1)}, lot_code, "
            "batch_code, line, shift, produced_at, ink_color, ink_volume_ml, "
            "ink_volume_tolerance_ml, tip_diameter_mm, tip_tolerance_mm, tube_length_mm, "
            "units_produced, units_rejected, qc_passed, defect_codes, sensor_readings, "
            "operator_id, created_at, updated_at FROM refills_production WHERE id < 100000",
        )
        process = start_meltano(pipeline, *RUN)
        if victim == "meltano":
            time.sleep(chance.uniform(1.0, 6.0))
            os.killpg(process.pid, signal.SIGKILL)
        else:
            pid = _process_in_group(process.pid, victim)
            if pid is not None:
                time.sleep(chance.uniform(0.0, 1.5))
                with contextlib.suppress(ProcessLookupError):  # it may have finished first
                    os.kill(pid, signal.SIGKILL)
        process.communicate(timeout=300)
        pipeline.meltano(*RUN, "--force")
        assert_warehouse_equals_sources(pipeline)
