"""INCREMENTAL replication: bookmarks, periodic STATE, resume and reruns."""

from __future__ import annotations

import json
import subprocess

import pytest

from testkit.tap import TAP_EXECUTABLE, TapRun, terminate_tap_connections

pytestmark = pytest.mark.integration

INCREMENTAL = {"replication_method": "INCREMENTAL", "replication_key": "updated_at"}


def _updated_at(i: int) -> str:
    return f"2024-02-01T00:00:{i:02d}+00:00"


def test_bookmarks_and_periodic_state(factory, run_tap):
    config = {**factory.config(refills=INCREMENTAL), "state_interval": 5}
    run = run_tap(config)
    records = run.records("refills")
    assert [r["updated_at"] for r in records] == [_updated_at(i) for i in range(1, 21)]
    # Without a bookmark the whole table is read: a complete extract, as for full table.
    _assert_complete(run)

    # Each STATE covers only records already written before it.
    seen = None
    bookmarks = []
    for message in run.messages:
        if message["type"] == "RECORD" and message["stream"] == "refills":
            seen = message["record"]["updated_at"]
        elif message["type"] == "STATE":
            value = message["value"]["bookmarks"].get("refills", {}).get("replication_key_value")
            if value is not None:
                assert seen is not None
                assert value <= seen
                bookmarks.append(value)
    assert len(bookmarks) >= 4  # every 5 rows, then the final one
    final = run.final_state["bookmarks"]["refills"]
    assert final["replication_key"] == "updated_at"
    assert final["replication_key_value"] == _updated_at(20)
    # FULL_TABLE streams in the same run still get their version and ACTIVATE_VERSION.
    assert run.of_type("ACTIVATE_VERSION", "bodies")


def _assert_complete(run: TapRun) -> None:
    """A whole-table read: no bookmark properties, versioned records, closing ACTIVATE_VERSION."""
    schema = run.of_type("SCHEMA", "refills")[0]
    assert schema.get("bookmark_properties") in (None, [])
    versions = {m.get("version") for m in run.of_type("RECORD", "refills")}
    assert len(versions) == 1
    assert None not in versions
    assert run.messages.index(run.of_type("ACTIVATE_VERSION", "refills")[-1]) > max(
        run.messages.index(m) for m in run.of_type("RECORD", "refills")
    )
    assert run.of_type("ACTIVATE_VERSION", "refills")[-1]["version"] == versions.pop()


def _assert_partial(run: TapRun) -> None:
    """A read from a bookmark: bookmark properties named, no versions, no ACTIVATE_VERSION."""
    schema = run.of_type("SCHEMA", "refills")[0]
    assert schema["bookmark_properties"] == ["updated_at"]
    assert all("version" not in m for m in run.of_type("RECORD", "refills"))
    assert not run.of_type("ACTIVATE_VERSION", "refills")


def test_rerun_with_final_state_resends_only_the_bookmark_row(factory, run_tap):
    config = factory.config(refills=INCREMENTAL)
    first = run_tap(config)
    state = first.final_state
    again = run_tap(config, state=state)
    _assert_partial(again)
    # `>=` keeps rows that share the bookmark's timestamp; the one resent row is harmless
    # for an upserting target (same primary key, same values).
    assert [r["id"] for r in again.records("refills")] == [20]
    factory.insert_rows("refills", 21, 25)
    third = run_tap(config, state=again.final_state)
    assert [r["id"] for r in third.records("refills")] == [20, 21, 22, 23, 24, 25]
    assert third.final_state["bookmarks"]["refills"]["replication_key_value"] == _updated_at(25)


def test_incremental_from_catalog_metadata(factory, run_tap):
    config = factory.config()
    catalog = json.loads(run_tap(config, "--discover").stdout)
    entry = next(s for s in catalog["streams"] if s["tap_stream_id"] == "springs")
    root = next(m for m in entry["metadata"] if m["breadcrumb"] == [])
    # What Meltano's `metadata: {springs: {replication-method: ..., replication-key: ...}}`
    # does to the discovered catalog.
    root["metadata"].update({"replication-method": "INCREMENTAL", "replication-key": "id"})
    state = {"bookmarks": {"springs": {"replication_key": "id", "replication_key_value": 15}}}
    run = run_tap(config, catalog=catalog, state=state)
    assert [r["id"] for r in run.records("springs")] == [15, 16, 17, 18, 19, 20]
    assert run.final_state["bookmarks"]["springs"]["replication_key_value"] == 20
    assert len(run.records("refills")) == 20  # untouched streams stay FULL_TABLE


def test_catalog_can_turn_configured_incremental_back_to_full_table(factory, run_tap):
    config = factory.config(refills=INCREMENTAL)
    catalog = json.loads(run_tap(config, "--discover").stdout)
    entry = next(s for s in catalog["streams"] if s["tap_stream_id"] == "refills")
    assert entry["replication_key"] == "updated_at"
    root = next(m for m in entry["metadata"] if m["breadcrumb"] == [])
    root["metadata"]["replication-method"] = "FULL_TABLE"
    state = {"bookmarks": {"refills": {"replication_key": "updated_at",
                                       "replication_key_value": _updated_at(19)}}}  # fmt: skip
    run = run_tap(config, catalog=catalog, state=state)
    assert len(run.records("refills")) == 20
    assert run.of_type("ACTIVATE_VERSION", "refills")


@pytest.mark.fault
@pytest.mark.slow
def test_resume_after_connection_dropped_mid_read(factory, run_tap, tmp_path):
    """Kill the tap's server connection mid-stream; rerun from the last STATE it wrote."""
    factory.insert_rows("refills", 21, 60_000)
    config = {
        **factory.config(refills=INCREMENTAL),
        "fetch_size": 500,
        "state_interval": 500,
    }
    config["sources"] = {"refills": config["sources"]["refills"]}
    path = tmp_path / "interrupted.json"
    path.write_text(json.dumps(config))
    process = subprocess.Popen(
        [TAP_EXECUTABLE, "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines = []
    assert process.stdout is not None
    for raw in process.stdout:
        lines.append(raw)
        if raw.startswith(b'{"type":"STATE"') and b"replication_key_value" in raw:
            break
    terminate_tap_connections(factory.dsn("refills"), "refills")
    # Read on through the same buffered reader: communicate() would read the pipe's file
    # descriptor directly and skip what the line iterator has already buffered.
    rest = process.stdout.read()
    assert process.stderr is not None
    stderr = process.stderr.read()
    process.wait(timeout=60)
    assert process.returncode != 0
    interrupted = TapRun(process.returncode, (b"".join(lines) + rest).decode(), stderr.decode())
    error_lines = [x for x in interrupted.stderr.splitlines() if "ERROR" in x]
    assert any("source 'refills'" in x for x in error_lines), interrupted.stderr[-2000:]
    assert "Traceback" not in interrupted.stderr
    first_ids = [r["id"] for r in interrupted.records("refills")]
    assert 0 < len(first_ids) < 60_000
    state = interrupted.final_state
    resumed = run_tap(config, state=state)
    second_ids = [r["id"] for r in resumed.records("refills")]
    assert second_ids[-1] == 60_000
    assert set(first_ids) | set(second_ids) == set(range(1, 60_001))
    # The rerun starts exactly at the bookmark: rows written after the last STATE of the
    # interrupted run are sent again, nothing before it.
    bookmark = state["bookmarks"]["refills"]["replication_key_value"]
    at_bookmark = next(
        r["id"] for r in interrupted.records("refills") if r["updated_at"] == bookmark
    )
    assert second_ids[0] == at_bookmark


def test_metrics_report_the_true_record_count(factory, run_tap):
    """The fast path writes records past the SDK's loop; its record_count metric counts them."""
    run = run_tap(factory.config(refills=INCREMENTAL))
    counts = {}
    for line in run.stderr.splitlines():
        if "METRIC" in line and '"record_count"' in line:
            metric = json.loads(line[line.index("{") :])
            stream = metric["tags"]["stream"]
            counts[stream] = counts.get(stream, 0) + metric["value"]
    assert counts == {"refills": 20, "bodies": 20, "springs": 20}
