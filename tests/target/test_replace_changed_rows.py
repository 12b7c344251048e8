"""A replace of a keyed table that already holds rows writes only the rows that changed.

The table still ends up exactly as the run sent it; what these tests add is that a row sent
again byte for byte is left where it was (same `xmin`, the transaction that wrote it), while
a row whose stored bytes differ in any column, even where `=` calls the values equal, is
written anew.
"""

# ruff: noqa: E501 - one record per line reads better than wrapped dicts
from __future__ import annotations

import pytest

from testkit.singer import record_message, schema_message, singer

pytestmark = pytest.mark.integration

PROPERTIES = {
    "id": {"type": "integer"},
    "order": {"type": ["string", "null"]},  # a reserved word
    "qty": {"type": ["number", "null"]},
    "doc": {"type": ["object", "array", "null"]},
    "note": {"type": ["string", "null"]},
    "ok": {"type": ["boolean", "null"]},
}
TABLE = 'SELECT id, "order", qty::text, doc::text, note, ok FROM raw."Parts list" ORDER BY id'
WRITERS = 'SELECT id, xmin::text FROM raw."Parts list" ORDER BY id'


def parts(*records: dict, properties: dict = PROPERTIES, version: int | None = None) -> str:
    """A full-table stream of the given records (a version and its ACTIVATE_VERSION if asked)."""
    messages = [schema_message("Parts list", properties, ["id"])]
    messages += [record_message("Parts list", record, version=version) for record in records]
    if version is not None:
        messages.append({"type": "ACTIVATE_VERSION", "stream": "Parts list", "version": version})
    return singer(*messages)


FIRST = [
    {"id": 1, "order": "A-1", "qty": 1.5, "doc": {"a": 1, "b": [1, 2]}, "note": "tab\there", "ok": True},
    {"id": 2, "order": "A-2", "qty": 2, "doc": None, "note": "Zürich → 東京 🖊️", "ok": False},
    {"id": 3, "order": "A-3", "qty": 1.5, "doc": {}, "note": 'quote " and \\', "ok": None},
    {"id": 4, "order": None, "qty": None, "doc": None, "note": None, "ok": None},
    {"id": 5, "order": "A-5", "qty": 0, "doc": [], "note": "gone next time", "ok": True},
    {"id": 6, "order": "A-6", "qty": -0.25, "doc": {"x": "y", "k": None}, "note": "", "ok": True},
]  # fmt: skip


FILLER = [{"id": 100 + n, "order": f"F-{n}"} for n in range(10)]
"""Unchanged rows sent first, so that the first batch is mostly unchanged (see the switch)."""


def test_unchanged_rows_stay_and_changed_ones_are_rewritten(warehouse, run_target):
    assert run_target(parts(*FILLER, *FIRST)).returncode == 0
    before = dict(warehouse.query(WRITERS))
    second = [
        *FILLER,
        FIRST[0],  # the same record
        {**FIRST[1], "note": "Zürich → 東京 🖊️!"},  # a changed value
        FIRST[2],  # its qty written 1.50 below: = 1.5, but a change a reader can see
        FIRST[3],  # NULL in every column but the key
        # 5 is gone
        {"id": 6, "ok": True, "note": "", "doc": {"k": None, "x": "y"}, "qty": -0.25, "order": "A-6"},
        {"id": 7, "order": "A-7", "qty": 7, "doc": {"new": True}, "note": "new", "ok": False},
    ]  # fmt: skip
    text = "\n".join(
        line.replace('"qty": 1.5,', '"qty": 1.50,') if '"id": 3,' in line else line
        for line in parts(*second).splitlines()
    )
    run = run_target(text)
    assert run.returncode == 0, run.stderr
    assert warehouse.query(TABLE) == [
        (1, "A-1", "1.5", '{"a": 1, "b": [1, 2]}', "tab\there", True),
        (2, "A-2", "2", None, "Zürich → 東京 🖊️!", False),
        (3, "A-3", "1.50", "{}", 'quote " and \\', None),
        (4, None, None, None, None, None),
        (6, "A-6", "-0.25", '{"k": null, "x": "y"}', "", True),
        (7, "A-7", "7", '{"new": true}', "new", False),
        *[(100 + n, f"F-{n}", None, None, None, None) for n in range(10)],
    ]
    after = dict(warehouse.query(WRITERS))
    kept = {key for key in after if after[key] == before.get(key)}
    assert kept == {
        1,
        4,
        6,
        *range(100, 110),
    }  # jsonb stores {"k":..,"x":..} the same in either key order
    assert "Stream 'Parts list': 3 rows changed or new, 3 changed or gone" in run.stderr
    assert [h[:3] for h in warehouse.history()][-1] == ("Parts list", "replaced", 16)


def test_the_same_input_twice_writes_nothing_and_leaves_no_dead_row(warehouse, run_target):
    text = parts(*FIRST, version=1)
    assert run_target(text).returncode == 0
    before = warehouse.query(WRITERS)
    run = run_target(text)
    assert run.returncode == 0, run.stderr
    assert warehouse.query(WRITERS) == before
    assert "0 rows changed or new, 0 changed or gone" in run.stderr
    assert warehouse.query(
        "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'raw.\"Parts list\"'::regclass"
    ) == [(0,)]


def test_repeated_keys_across_batches_last_record_wins(warehouse, run_target):
    assert run_target(parts(*FIRST)).returncode == 0
    records = [
        {"id": 1, "order": "first"}, {"id": 2, "order": "two"}, {"id": 1, "order": "second"},
        {"id": 3, "order": "three"}, {"id": 1, "order": "last"}, {"id": 3, "order": "three!"},
    ]  # fmt: skip
    run = run_target(parts(*records), config={"batch_size_rows": 2})
    assert run.returncode == 0, run.stderr
    assert warehouse.query('SELECT id, "order" FROM raw."Parts list" ORDER BY id') == [
        (1, "last"), (2, "two"), (3, "three!"),
    ]  # fmt: skip


def test_a_schema_change_mid_load_writes_every_row_and_loses_none(warehouse, run_target):
    assert run_target(parts(*FIRST)).returncode == 0
    wider = {**PROPERTIES, "batch": {"type": ["string", "null"]}}
    text = singer(
        schema_message("Parts list", PROPERTIES, ["id"]),
        record_message("Parts list", FIRST[0]),
        record_message("Parts list", {**FIRST[1], "note": "changed"}),
        schema_message("Parts list", wider, ["id"]),
        record_message("Parts list", {**FIRST[2], "batch": "B-7"}),
    )
    run = run_target(text, config={"batch_size_rows": 1})
    assert run.returncode == 0, run.stderr
    assert warehouse.query('SELECT id, "order", note, batch FROM raw."Parts list" ORDER BY id') == [
        (1, "A-1", "tab\there", None), (2, "A-2", "changed", None), (3, "A-3", 'quote " and \\', "B-7"),
    ]  # fmt: skip


def test_a_failed_replace_keeps_every_old_row(warehouse, run_target):
    assert run_target(parts(*FIRST)).returncode == 0
    before = warehouse.query(TABLE)
    text = parts({"id": 1, "order": "new"}, {"id": 2, "qty": "not a number"})
    run = run_target(text)
    assert run.returncode != 0
    assert "Load failed: stream 'Parts list', input line 3, column 'qty':" in run.stderr
    assert warehouse.query(TABLE) == before


def test_a_table_without_key_or_with_metadata_is_rewritten_whole(warehouse, run_target):
    unkeyed = singer(
        schema_message("loose", {"n": {"type": "integer"}}, []),
        *[record_message("loose", {"n": n}) for n in (1, 1, 2)],
    )
    assert run_target(unkeyed).returncode == 0
    assert run_target(unkeyed).returncode == 0
    assert warehouse.query("SELECT n FROM raw.loose ORDER BY n") == [(1,), (1,), (2,)]
    assert run_target(parts(*FIRST), config={"add_record_metadata": True}).returncode == 0
    before = dict(warehouse.query(WRITERS))
    run = run_target(parts(*FIRST), config={"add_record_metadata": True})
    assert run.returncode == 0, run.stderr
    assert "changed or new" not in run.stderr
    after = dict(warehouse.query(WRITERS))
    assert all(after[key] != before[key] for key in after)


def test_a_load_whose_first_batch_mostly_changed_writes_every_row(warehouse, run_target):
    assert run_target(parts(*FIRST)).returncode == 0
    before = dict(warehouse.query(WRITERS))
    changed = [{**record, "note": f"shift {record['id']}"} for record in FIRST]
    unchanged_later = [record for record in FIRST if record["id"] != 5]
    text = parts(*changed[:4], *unchanged_later)  # the first batch: 4 changed rows of 4
    run = run_target(text, config={"batch_size_rows": 4})
    assert run.returncode == 0, run.stderr
    assert "Stream 'Parts list': 4 of the first 4 rows changed; writing every row" in run.stderr
    assert warehouse.query(TABLE) == [
        (1, "A-1", "1.5", '{"a": 1, "b": [1, 2]}', "tab\there", True),
        (2, "A-2", "2", None, "Zürich → 東京 🖊️", False),
        (3, "A-3", "1.5", "{}", 'quote " and \\', None),
        (4, None, None, None, None, None),
        (6, "A-6", "-0.25", '{"k": null, "x": "y"}', "", True),
    ]
    after = dict(warehouse.query(WRITERS))
    assert all(after[key] != before[key] for key in after)  # every row written anew
