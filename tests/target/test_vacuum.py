"""Repeated replaces keep a table's size bounded: the dead rows of each are vacuumed and their
space reused (this machine's PostgreSQL, like many, runs with autovacuum off)."""

from __future__ import annotations

import pytest

from testkit.singer import record_message, schema_message, singer

pytestmark = pytest.mark.integration


def _load(rows: int, run: int) -> str:
    props = {"id": {"type": "integer"}, "payload": {"type": "string"}}
    return singer(
        schema_message("parts", props, ["id"]),
        *(record_message("parts", {"id": i, "payload": f"run {run} row {i} " + "x" * 80})
          for i in range(rows)),
    )  # fmt: skip


def _size(warehouse) -> int:
    return warehouse.query("SELECT pg_total_relation_size('raw.parts')")[0][0]


@pytest.mark.parametrize("vacuum", ["after-load", "before-load"])
def test_ten_replaces_keep_the_table_near_twice_its_size(warehouse, run_target, vacuum):
    config = {"vacuum": vacuum}
    assert run_target(_load(3000, 0), config=config).returncode == 0
    first = _size(warehouse)
    for run in range(1, 10):
        done = run_target(_load(3000, run), config=config)
        assert done.returncode == 0, done.stderr
    assert warehouse.query("SELECT count(*), min(payload) FROM raw.parts") == [
        (3000, "run 9 row 0 " + "x" * 80)
    ]
    assert _size(warehouse) <= 2.5 * first, (_size(warehouse), first)


def test_vacuum_after_load_is_logged_and_can_be_turned_off(warehouse, run_target):
    done = run_target(_load(10, 0))
    assert done.returncode == 0, done.stderr
    assert """Stream 'parts': vacuum of "raw"."parts" """ in done.stderr
    quiet = run_target(_load(10, 1), config={"vacuum": "off"})
    assert quiet.returncode == 0, quiet.stderr
    assert "vacuum of" not in quiet.stderr
