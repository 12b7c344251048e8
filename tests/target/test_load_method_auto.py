"""`load_method: auto` (the default): a complete extract replaces, a partial one is merged.

A partial extract (an incremental stream: SCHEMA `bookmark_properties`, records without a
version) must never replace a table: that would delete every row the run did not send.
"""

from __future__ import annotations

import pytest

from testkit.singer import record_message, schema_message, singer

pytestmark = pytest.mark.integration

PROPERTIES = {"id": {"type": "integer"}, "name": {"type": "string"}, "updated": {"type": "integer"}}


def full_table(*rows: tuple[int, str, int], version: int = 1) -> str:
    """A full-table stream as our tap writes it: versioned records, closing ACTIVATE_VERSION."""
    return singer(
        schema_message("orders", PROPERTIES, ["id"]),
        *(
            record_message("orders", {"id": i, "name": n, "updated": u}, version=version)
            for i, n, u in rows
        ),
        {"type": "ACTIVATE_VERSION", "stream": "orders", "version": version},
        {"type": "STATE", "value": {"bookmarks": {"orders": {"full": version}}}},
    )


def incremental(*rows: tuple[int, str, int], keys: list[str] | None = None) -> str:
    """An incremental stream as SDK taps write it: bookmark properties, unversioned records."""
    schema = schema_message("orders", PROPERTIES, ["id"] if keys is None else keys)
    schema["bookmark_properties"] = ["updated"]
    last = max((u for _, _, u in rows), default=0)
    return singer(
        schema,
        *(record_message("orders", {"id": i, "name": n, "updated": u}) for i, n, u in rows),
        {"type": "STATE", "value": {"bookmarks": {"orders": {"replication_key_value": last}}}},
    )


def test_an_incremental_extract_is_merged_never_replacing_the_table(warehouse, run_target):
    assert run_target(full_table((1, "a", 1), (2, "b", 1), (3, "c", 1))).returncode == 0
    run = run_target(incremental((2, "B", 5), (4, "d", 6)))
    assert run.returncode == 0, run.stderr
    assert warehouse.table("orders") == [(1, "a", 1), (2, "B", 5), (3, "c", 1), (4, "d", 6)]
    assert run.states == [{"bookmarks": {"orders": {"replication_key_value": 6}}}]
    history = "SELECT load_method, status, rows FROM raw._load_history ORDER BY id"
    assert warehouse.query(history) == [("overwrite", "replaced", 3), ("upsert", "upserted", 2)]
    assert "partial extract (bookmark properties ['updated']), loaded by upsert" in run.stderr


def test_an_incremental_run_without_changes_leaves_the_table_alone(warehouse, run_target):
    assert run_target(full_table((1, "a", 1), (2, "b", 1))).returncode == 0
    run = run_target(incremental())
    assert run.returncode == 0, run.stderr
    assert warehouse.table("orders") == [(1, "a", 1), (2, "b", 1)]


def test_an_incremental_extract_without_a_key_is_appended(warehouse, run_target):
    assert run_target(incremental((1, "a", 1), keys=[])).returncode == 0
    assert run_target(incremental((1, "A", 2), keys=[])).returncode == 0
    assert warehouse.table("orders", order="updated") == [(1, "a", 1), (1, "A", 2)]


def test_a_complete_extract_still_replaces_the_table(warehouse, run_target):
    """Full-table streams, ours (closing ACTIVATE_VERSION) and plain ones, are replaced."""
    assert run_target(full_table((1, "a", 1), (2, "b", 1))).returncode == 0
    assert run_target(full_table((2, "B", 2), version=2)).returncode == 0
    assert warehouse.table("orders") == [(2, "B", 2)]
    plain = singer(
        schema_message("orders", PROPERTIES, ["id"]),
        record_message("orders", {"id": 9, "name": "z", "updated": 3}),
    )
    assert run_target(plain).returncode == 0
    assert warehouse.table("orders") == [(9, "z", 3)]


def test_a_stream_that_names_bookmarks_is_merged_even_with_versions(warehouse, run_target):
    """Bookmark properties say the extract may be partial: never replaced, whatever else it
    carries (a tap's full read says so by sending its SCHEMA without them)."""
    assert run_target(full_table((1, "a", 1), (2, "b", 1), (3, "c", 1))).returncode == 0
    refresh = full_table((2, "B", 1), version=7).replace(
        '"key_properties": ["id"]', '"key_properties": ["id"], "bookmark_properties": ["updated"]'
    )
    assert '"bookmark_properties"' in refresh
    run = run_target(refresh)
    assert run.returncode == 0, run.stderr
    rows = warehouse.query('SELECT id, name, "_sdc_deleted_at" IS NULL FROM raw.orders ORDER BY 1')
    assert rows == [(1, "a", False), (2, "B", True), (3, "c", False)]  # older versions marked


@pytest.mark.parametrize("rows", [[(2, "B", 5)], []], ids=["with-records", "no-records"])
def test_overwrite_of_a_partial_extract_is_refused_and_changes_nothing(warehouse, run_target, rows):
    assert run_target(full_table((1, "a", 1), (2, "b", 1))).returncode == 0
    run = run_target(incremental(*rows), config={"load_method": "overwrite"})
    assert run.returncode == 1
    assert "stream 'orders'" in run.stderr
    assert "load_method 'overwrite' would replace the table with a partial extract" in run.stderr
    assert "meltano run --full-refresh" in run.stderr
    if rows:  # no STATE covering a refused record (one that covers none is harmless)
        assert run.states == []
    assert warehouse.table("orders") == [(1, "a", 1), (2, "b", 1)]


def test_a_per_stream_load_method_overrides_the_global_one(warehouse, run_target):
    other = singer(
        schema_message("parts", {"id": {"type": "integer"}}, ["id"]),
        record_message("parts", {"id": 1}),
    )
    config = {"stream_load_methods": {"parts": "upsert"}}
    assert run_target(full_table((1, "a", 1)) + other, config=config).returncode == 0
    second = full_table((2, "b", 2), version=2) + other.replace('"id": 1}}', '"id": 2}}')
    run = run_target(second, config=config)
    assert run.returncode == 0, run.stderr
    assert warehouse.table("orders") == [(2, "b", 2)]  # replaced (auto)
    assert warehouse.table("parts") == [(1,), (2,)]  # upserted (its override)
    assert "Stream 'parts': complete extract, loaded by upsert" in run.stderr


def test_default_target_schema_is_the_sdk_name_of_schema(warehouse, run_target):
    run = run_target(full_table((1, "a", 1)), config={"default_target_schema": "landing"})
    assert run.returncode == 0, run.stderr
    assert warehouse.query("SELECT id FROM landing.orders") == [(1,)]
    clash = run_target(
        full_table((1, "a", 1)), config={"schema": "raw", "default_target_schema": "x"}
    )
    assert clash.returncode == 1
    assert "settings 'schema' and 'default_target_schema' name different schemas" in clash.stderr
