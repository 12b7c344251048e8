"""LOG_BASED replication: large transactions, TOAST, TRUNCATE and column changes."""

from __future__ import annotations

import select

import psycopg2.extras
import pytest

from tap_manufacturing.logical import pgoutput
from testkit.cdc import STREAM, TABLE, apply, bookmark, full_table, run_tap
from testkit.tap import PRODUCTION_ROWS

pytestmark = pytest.mark.integration


def _kinds(run) -> list[str]:
    return [m["type"] for m in run.messages]


@pytest.mark.slow
def test_large_transaction_is_written_in_batches_and_state_follows_its_commit(cdc_source, tmp_path):
    first = run_tap(tmp_path, cdc_source.config())
    cdc_source.sql(PRODUCTION_ROWS.format(table=TABLE, start=1001, stop=51_000))
    config = cdc_source.config(fetch_size=1000, state_interval=1000)
    run = run_tap(tmp_path, config, state=first.final_state)
    kinds = _kinds(run)
    assert kinds.count("RECORD") == 50_000
    # One transaction: no STATE between its records, one after its commit.
    assert kinds[-1] == "STATE"
    last_record = len(kinds) - 1 - kinds[::-1].index("RECORD")
    assert "STATE" not in kinds[kinds.index("RECORD") : last_record]
    ids = [r["id"] for r in run.records(STREAM)]
    assert ids == list(range(1001, 51_001))
    assert len({r["_sdc_lsn"] for r in run.records(STREAM)}) == 1
    assert bookmark(run.final_state) > run.records(STREAM)[0]["_sdc_lsn"]


def _toast_table(source) -> str:
    """A 3000-character value stored out of line (TOAST), uncompressed."""
    source.sql(
        f"ALTER TABLE {TABLE} ADD COLUMN notes text",
        f"ALTER TABLE {TABLE} ALTER COLUMN notes SET STORAGE EXTERNAL",
        f"UPDATE {TABLE} SET notes = repeat('0123456789', 300) || id",
    )
    return "0123456789" * 300


def test_unchanged_toast_value_keeps_its_value(cdc_source, tmp_path):
    big = _toast_table(cdc_source)
    first = run_tap(tmp_path, cdc_source.config())
    # id 1: updated, the TOASTed notes untouched (pgoutput does not send them): filled
    # from the row at the source. id 2: the same, then deleted in a later transaction:
    # the property is left out (the target keeps what it has; the delete follows).
    cdc_source.sql(f"UPDATE {TABLE} SET quantity = 500 WHERE id IN (1, 2)")
    cdc_source.sql(f"DELETE FROM {TABLE} WHERE id = 2")
    run = run_tap(tmp_path, cdc_source.config(), state=first.final_state)
    one, two, gone = run.records(STREAM)
    assert (one["id"], one["quantity"], one["notes"]) == (1, 500, big + "1")
    assert two["id"] == 2
    assert two["quantity"] == 500
    assert "notes" not in two
    assert gone["id"] == 2
    assert gone["_sdc_deleted_at"] is not None
    assert apply(apply({}, first.messages), run.messages) == full_table(tmp_path, cdc_source)


def test_unchanged_toast_value_comes_from_the_old_row_with_replica_identity_full(
    cdc_source, tmp_path
):
    big = _toast_table(cdc_source)
    cdc_source.sql(f"ALTER TABLE {TABLE} REPLICA IDENTITY FULL")
    first = run_tap(tmp_path, cdc_source.config())
    cdc_source.sql(f"UPDATE {TABLE} SET quantity = 500 WHERE id = 1")
    cdc_source.sql(f"UPDATE {TABLE} SET notes = 'short now' WHERE id = 1")
    run = run_tap(tmp_path, cdc_source.config(), state=first.final_state)
    # The first update carries the value of its time (from the old row the server sent),
    # not the row's current one.
    assert [(r["quantity"], r["notes"]) for r in run.records(STREAM)] == [
        (500, big + "1"),
        (500, "short now"),
    ]


def test_truncate_is_followed_by_a_new_snapshot(cdc_source, tmp_path):
    first = run_tap(tmp_path, cdc_source.config())
    cdc_source.sql(f"UPDATE {TABLE} SET line = 'before' WHERE id = 1")
    cdc_source.sql(f"TRUNCATE {TABLE}")
    cdc_source.sql(PRODUCTION_ROWS.format(table=TABLE, start=500, stop=502))
    run = run_tap(tmp_path, cdc_source.config(), state=first.final_state)
    kinds = _kinds(run)
    # The change before the TRUNCATE, then the table as a versioned snapshot, then STATE.
    assert kinds == ["STATE", "SCHEMA", "RECORD"] + ["RECORD"] * 3 + ["ACTIVATE_VERSION", "STATE"]
    before, *snapshot = run.of_type("RECORD", STREAM)
    assert "version" not in before
    assert before["record"]["line"] == "before"
    version = run.of_type("ACTIVATE_VERSION", STREAM)[0]["version"]
    assert [(m["record"]["id"], m["version"]) for m in snapshot] == [
        (500, version),
        (501, version),
        (502, version),
    ]
    point = bookmark(run.final_state)
    assert {m["record"]["_sdc_lsn"] for m in snapshot} == {point}
    assert apply(apply({}, first.messages), run.messages) == full_table(tmp_path, cdc_source)
    # The next run starts at the new snapshot's position: only what came after it.
    cdc_source.sql(f"UPDATE {TABLE} SET line = 'after' WHERE id = 501")
    later = run_tap(tmp_path, cdc_source.config(), state=run.final_state)
    assert [(r["id"], r["line"]) for r in later.records(STREAM)] == [(501, "after")]
    assert later.records(STREAM)[0]["_sdc_lsn"] >= point


def test_new_column_gives_a_new_schema_before_its_first_record(cdc_source, tmp_path):
    first = run_tap(tmp_path, cdc_source.config())
    cdc_source.sql(f"UPDATE {TABLE} SET line = 'old shape' WHERE id = 1")
    cdc_source.sql(f"ALTER TABLE {TABLE} ADD COLUMN grade numeric(4,1)")
    cdc_source.sql(f"UPDATE {TABLE} SET grade = 9.5 WHERE id = 2")
    run = run_tap(tmp_path, cdc_source.config(), state=first.final_state)
    kinds = [m["type"] for m in run.messages]
    assert kinds == ["STATE", "SCHEMA", "RECORD", "SCHEMA", "RECORD", "STATE"]
    old, new = run.of_type("RECORD", STREAM)
    assert "grade" not in old["record"]
    assert new["record"]["grade"] == 9.5
    schema = run.of_type("SCHEMA", STREAM)[1]
    assert schema["schema"]["properties"]["grade"] == {
        "type": ["number", "string", "null"],
        "x-sql-datatype": "numeric(4,1)",
    }
    assert schema["key_properties"] == ["id"]
    assert schema["bookmark_properties"] == ["_sdc_lsn"]
    # The next run knows the new shape: no new snapshot, only the new change.
    cdc_source.sql(f"UPDATE {TABLE} SET grade = 1.0 WHERE id = 3")
    later = run_tap(tmp_path, cdc_source.config(), state=run.final_state)
    assert [(r["id"], r["grade"]) for r in later.records(STREAM)] == [(3, 1.0)]
    assert not later.of_type("ACTIVATE_VERSION")


def test_new_column_with_a_default_reads_the_table_again(cdc_source, tmp_path):
    first = run_tap(tmp_path, cdc_source.config())
    # Existing rows get 'A' without any row change in the log (a "fast default").
    cdc_source.sql(f"ALTER TABLE {TABLE} ADD COLUMN shift text NOT NULL DEFAULT 'A'")
    run = run_tap(tmp_path, cdc_source.config(), state=first.final_state)
    assert len(run.of_type("ACTIVATE_VERSION", STREAM)) == 1
    assert {r["shift"] for r in run.records(STREAM)} == {"A"}
    assert len(run.records(STREAM)) == 20
    assert apply(apply({}, first.messages), run.messages) == full_table(tmp_path, cdc_source)


def test_start_position_past_the_slots_confirmed_one_skips_to_it(cdc_source, tmp_path):
    """What the next run after a re-snapshot relies on (PostgreSQL's protocol docs:
    START_REPLICATION starts at the given position or the slot's confirmed_flush_lsn,
    whichever is greater), checked on the server itself, without the tap's slot advance."""
    run_tap(tmp_path, cdc_source.config())
    cdc_source.sql(f"UPDATE {TABLE} SET line = 'skipped' WHERE id = 1")
    middle = int(cdc_source.rows("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0])
    cdc_source.sql(f"UPDATE {TABLE} SET line = 'sent' WHERE id = 2")
    assert cdc_source.slot_row()["confirmed"] < middle
    connection = psycopg2.connect(
        cdc_source.dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection
    )
    try:
        cursor = connection.cursor()
        cursor.start_replication(
            slot_name=cdc_source.slot,
            decode=False,
            start_lsn=middle,
            options={"proto_version": "1", "publication_names": cdc_source.slot},
        )
        updates = []
        while not any(isinstance(m, pgoutput.Commit) for m in updates):
            message = cursor.read_message()
            if message is None:
                select.select([cursor], [], [], 5)
                continue
            decoded = pgoutput.decode(message.payload)
            if isinstance(decoded, (pgoutput.Update, pgoutput.Commit)):
                updates.append(decoded)
    finally:
        connection.close()
    assert [(u.new[0], u.new[2]) for u in updates if isinstance(u, pgoutput.Update)] == [
        ("2", "sent")
    ]
