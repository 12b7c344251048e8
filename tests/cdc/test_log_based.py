"""LOG_BASED replication, message by message: snapshot, then changes in commit order."""

from __future__ import annotations

import json

import pytest

from testkit.cdc import STREAM, TABLE, apply, bookmark, full_table, run_tap
from testkit.tap import PRODUCTION_ROWS

pytestmark = pytest.mark.integration


def _types(messages: list[dict]) -> list[str]:
    return [m["type"] for m in messages]


def test_first_run_is_a_snapshot_consistent_with_the_slot(cdc_source, tmp_path):
    run = run_tap(tmp_path, cdc_source.config())
    messages = run.messages
    assert _types(messages) == ["SCHEMA"] + ["RECORD"] * 20 + ["ACTIVATE_VERSION", "STATE"]
    schema = messages[0]
    assert schema["key_properties"] == ["id"]
    assert schema["bookmark_properties"] == ["_sdc_lsn"]
    properties = schema["schema"]["properties"]
    assert properties["_sdc_lsn"] == {"type": ["integer"]}
    assert properties["_sdc_deleted_at"] == {"type": ["string", "null"], "format": "date-time"}
    assert properties["diameter_mm"]["x-sql-datatype"] == "numeric(10,4)"
    # The slot's consistent point is the bookmark and every snapshot row's position.
    point = bookmark(run.final_state)
    assert point == cdc_source.slot_row()["confirmed"]
    version = messages[-2]["version"]
    records = [m for m in messages if m["type"] == "RECORD"]
    assert {m["version"] for m in records} == {version}
    assert {m["record"]["_sdc_lsn"] for m in records} == {point}
    assert {m["record"]["_sdc_deleted_at"] for m in records} == {None}
    # Exactly the values of a full-table read.
    reference = full_table(tmp_path, cdc_source)
    assert apply({}, messages) == reference


def test_changes_in_commit_order_with_deletes(cdc_source, tmp_path):
    first = run_tap(tmp_path, cdc_source.config())
    start = bookmark(first.final_state)
    cdc_source.sql(PRODUCTION_ROWS.format(table=TABLE, start=21, stop=22))
    cdc_source.sql(
        f"UPDATE {TABLE} SET line = 'moved', quantity = 7 WHERE id = 3",
        f"DELETE FROM {TABLE} WHERE id = 4",
    )
    cdc_source.sql(f"UPDATE {TABLE} SET line = 'again' WHERE id = 21")
    cdc_source.sql(f"UPDATE {TABLE} SET id = 100 WHERE id = 5")  # a key change
    run = run_tap(tmp_path, cdc_source.config(), state=first.final_state)
    changes = [m for m in run.messages if m["type"] in ("RECORD", "STATE", "SCHEMA")]
    assert _types(changes) == ["STATE", "SCHEMA"] + ["RECORD"] * 7 + ["STATE"]
    records = [m for m in changes if m["type"] == "RECORD"]
    assert all("version" not in m for m in records)
    summary = [(m["record"]["id"], m["record"]["_sdc_deleted_at"] is not None) for m in records]
    assert summary == [
        (21, False), (22, False),  # first transaction
        (3, False), (4, True),  # second
        (21, False),  # third
        (5, True), (100, False),  # fourth: the old key goes, the new one comes
    ]  # fmt: skip
    positions = [m["record"]["_sdc_lsn"] for m in records]
    assert positions == sorted(positions)
    assert len(set(positions)) == 4  # one position per transaction
    assert positions[0] > start
    delete = records[3]["record"]
    assert {k for k, v in delete.items() if v is not None} == {"id", "_sdc_lsn", "_sdc_deleted_at"}
    assert delete["_sdc_deleted_at"].endswith("+00:00")
    assert bookmark(run.final_state) > positions[-1]
    # Applied in order, the changes give exactly what a full-table read gives now.
    reference = full_table(tmp_path, cdc_source)
    assert apply(apply({}, first.messages), run.messages) == reference


def test_rerun_with_final_state_sends_nothing_and_the_slot_only_confirms_stored_state(
    cdc_source, tmp_path
):
    first = run_tap(tmp_path, cdc_source.config())
    cdc_source.sql(f"UPDATE {TABLE} SET quantity = quantity + 1 WHERE id <= 5")
    second = run_tap(tmp_path, cdc_source.config(), state=first.final_state)
    assert len(second.records(STREAM)) == 5
    change_position = second.records(STREAM)[0]["_sdc_lsn"]
    # The run wrote changes, but the slot was not advanced past them: Meltano has not
    # stored that STATE yet as far as the tap knows.
    assert cdc_source.slot_row()["confirmed"] < change_position
    # So a rerun from the first state (the second's STATE was lost) sends them again ...
    again = run_tap(tmp_path, cdc_source.config(), state=first.final_state)
    assert again.records(STREAM) == second.records(STREAM)
    # ... and a run from the stored final state confirms it and sends nothing.
    third = run_tap(tmp_path, cdc_source.config(), state=second.final_state)
    assert third.records(STREAM) == []
    assert cdc_source.slot_row()["confirmed"] >= bookmark(second.final_state)
    assert bookmark(third.final_state) >= bookmark(second.final_state)
    reference = full_table(tmp_path, cdc_source)
    assert apply(apply({}, first.messages), second.messages) == reference


def test_every_type_is_encoded_as_in_full_table_mode(cdc_source, tmp_path):
    """The type table of the full-table tests, sent as changes: byte-identical values."""
    from testkit.tap import TYPES_DDL

    cdc_source.sql(f"DROP TABLE {TABLE}", TYPES_DDL)
    first = run_tap(tmp_path, cdc_source.config())
    assert sorted(r["id"] for r in first.records(STREAM)) == [1, 2, 3, 4]
    # The same rows as changes: moved to new keys (deletes + inserts), then updated.
    cdc_source.sql(f"UPDATE {TABLE} SET id = id + 100")
    cdc_source.sql(f"UPDATE {TABLE} SET ok = ok")
    run = run_tap(tmp_path, cdc_source.config(), state=first.final_state)
    full = run_tap(tmp_path, cdc_source.config(source={"replication_method": "FULL_TABLE"}))
    full_texts = {
        json.loads(line)["record"]["id"]: _record_text(line)
        for line in full.stdout.splitlines()
        if line.startswith('{"type":"RECORD"')
    }
    assert sorted(full_texts) == [101, 102, 103, 104]
    upserts = 0
    for line in run.stdout.splitlines():
        message = json.loads(line)
        if message["type"] != "RECORD" or message["record"]["_sdc_deleted_at"] is not None:
            continue
        upserts += 1
        suffix = f',"_sdc_lsn":{message["record"]["_sdc_lsn"]},"_sdc_deleted_at":null}}'
        text = _record_text(line)
        assert text.endswith(suffix)
        assert text[: -len(suffix)] + "}" == full_texts[message["record"]["id"]]
    assert upserts == 8


def _record_text(line: str) -> str:
    """The text of a RECORD line's record object, exactly as written."""
    text = line.split('"record":', 1)[1]
    envelope = ',"version":' if ',"version":' in text else ',"time_extracted":'
    return text[: text.rindex(envelope)]
