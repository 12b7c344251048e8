"""Change streams (LOG_BASED): applied in order by key, deletes included, one commit per run.

The input follows the contract in docs/value-encoding.md ("Change streams"): `_sdc_lsn` as the
bookmark property, `_sdc_deleted_at` set on deletes, snapshots as versioned records closed by
ACTIVATE_VERSION.
"""

from __future__ import annotations

import pytest

from testkit.singer import record_message, schema_message, singer

pytestmark = pytest.mark.integration

DELETED = "2026-11-30T12:00:00+00:00"
PROPS = {
    "id": {"type": ["integer"]},
    "name": {"type": ["string", "null"]},
    "note": {"type": ["string", "null"]},
    "_sdc_lsn": {"type": ["integer"]},
    "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"},
}


def schema() -> dict:
    message = schema_message("parts", PROPS, ["id"])
    message["bookmark_properties"] = ["_sdc_lsn"]
    return message


def state(lsn: int) -> dict:
    return {"type": "STATE", "value": {"bookmarks": {"parts": {"replication_key_value": lsn}}}}


def row(key: int, name: str | None, lsn: int, note: str | None = "n", **extra) -> dict:
    data = {"id": key, "name": name, "note": note, "_sdc_lsn": lsn, "_sdc_deleted_at": None}
    return record_message("parts", data, **extra)


def delete(key: int, lsn: int) -> dict:
    data = {"id": key, "name": None, "note": None, "_sdc_lsn": lsn, "_sdc_deleted_at": DELETED}
    return record_message("parts", data)


def snapshot(*rows: tuple[int, str], version: int, lsn: int = 100) -> list[dict]:
    return [
        *(row(key, name, lsn, version=version) for key, name in rows),
        {"type": "ACTIVATE_VERSION", "stream": "parts", "version": version},
        state(lsn),
    ]


def table(warehouse) -> list[tuple]:
    return warehouse.query(
        'SELECT id, name, note, "_sdc_lsn", "_sdc_deleted_at" IS NOT NULL FROM raw.parts '
        "ORDER BY id"
    )


@pytest.fixture
def loaded(warehouse, run_target):
    run = run_target(singer(schema(), *snapshot((1, "a"), (2, "b"), (3, "c"), version=1)))
    assert run.returncode == 0, run.stderr
    assert "Stream 'parts': partial extract (bookmark properties ['_sdc_lsn']), loaded by " \
        "apply-changes" in run.stderr  # fmt: skip
    assert table(warehouse) == [(1, "a", "n", 100, False), (2, "b", "n", 100, False),
                                (3, "c", "n", 100, False)]  # fmt: skip
    return warehouse


CHANGES = [
    row(4, "d", 200),  # insert
    row(2, "B", 210),  # update
    delete(3, 220),  # delete
    delete(1, 230),  # a key change: the old key goes ...
    row(10, "a", 230),  # ... and the new one comes
    row(5, "e", 240),  # inserted, updated and deleted in the same run
    row(5, "E", 250),
    delete(5, 260),
    delete(99, 270),  # a delete of a row the warehouse never had
    row(6, "f", 280),
    state(281),
]
AFTER = [(2, "B", "n", 210, False), (4, "d", "n", 200, False), (6, "f", "n", 280, False),
         (10, "a", "n", 230, False)]  # fmt: skip


@pytest.mark.parametrize("batch_size_rows", [20_000, 2])
def test_changes_are_applied_in_order_and_state_follows_the_commit(
    loaded, run_target, batch_size_rows
):
    run = run_target(singer(schema(), *CHANGES), config={"batch_size_rows": batch_size_rows})
    assert run.returncode == 0, run.stderr
    assert table(loaded) == AFTER
    assert run.states == [{"bookmarks": {"parts": {"replication_key_value": 281}}}]
    history = "SELECT load_method, status, rows FROM raw._load_history ORDER BY id DESC LIMIT 1"
    assert loaded.query(history) == [("apply-changes", "applied", 10)]


def test_the_same_changes_applied_twice_give_the_same_table(loaded, run_target):
    assert run_target(singer(schema(), *CHANGES)).returncode == 0
    again = run_target(singer(schema(), *CHANGES))
    assert again.returncode == 0, again.stderr
    assert table(loaded) == AFTER


def test_a_record_without_a_property_keeps_that_column(loaded, run_target):
    unchanged_note = {"id": 2, "name": "B", "_sdc_lsn": 300, "_sdc_deleted_at": None}
    run = run_target(
        singer(schema(), row(2, "x", 290, note="new"), record_message("parts", unchanged_note))
    )
    assert run.returncode == 0, run.stderr
    assert table(loaded)[1] == (2, "B", "new", 300, False)  # note kept from the row before


def test_a_snapshot_in_a_change_stream_replaces_the_table_inside_the_run(loaded, run_target):
    """A TRUNCATE at the source: the changes before it, then a fresh snapshot."""
    text = singer(schema(), row(4, "d", 200), *snapshot((7, "g"), version=2, lsn=400))
    run = run_target(text)
    assert run.returncode == 0, run.stderr
    assert table(loaded) == [(7, "g", "n", 400, False)]
    empty = run_target(singer(schema(), row(8, "h", 500), *snapshot(version=3, lsn=600)))
    assert empty.returncode == 0, empty.stderr
    assert table(loaded) == []


def test_deleted_rows_are_marked_when_asked(loaded, run_target):
    run = run_target(singer(schema(), delete(3, 220), state(221)),
                     config={"mark_deleted_rows": True})  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert table(loaded)[2] == (3, "c", "n", 220, True)


def test_a_failure_commits_none_of_the_run(loaded, run_target):
    broken = singer(
        schema(), row(4, "d", 200), delete(2, 210), '{"type": "RECORD", "stream": "parts"'
    )
    run = run_target(broken, config={"batch_size_rows": 1})
    assert run.returncode == 1
    assert run.states == []
    assert [r[0] for r in table(loaded)] == [1, 2, 3]


def test_a_change_stream_without_a_key_is_refused(warehouse, run_target):
    keyless = schema()
    keyless["key_properties"] = []
    run = run_target(singer(keyless, row(1, "a", 100)))
    assert run.returncode == 1
    assert "load_method 'apply-changes' needs key properties" in run.stderr


def test_a_delete_carries_null_in_columns_the_source_declares_not_null(warehouse, run_target):
    strict = schema()
    strict["schema"]["properties"]["name"] = {"type": ["string"]}  # NOT NULL at the source
    assert run_target(singer(strict, *snapshot((1, "a"), (2, "b"), version=1))).returncode == 0
    run = run_target(singer(strict, delete(1, 200), state(201)))
    assert run.returncode == 0, run.stderr
    assert [r[0] for r in table(warehouse)] == [2]
