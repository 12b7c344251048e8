"""BATCH mode (`batch_config`): the same records, in JSON Lines files announced by BATCH."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from testkit.tap import TAP_EXECUTABLE, TapRun, terminate_tap_connections

pytestmark = pytest.mark.integration

INCREMENTAL = {"replication_method": "INCREMENTAL", "replication_key": "updated_at"}


def batch_config(folder: Path, compression: str = "none", **extra) -> dict:
    return {
        "encoding": {"format": "jsonl", "compression": compression},
        "storage": {"root": folder.as_uri()},
        **extra,
    }


def batch_records(run: TapRun, stream: str) -> list[dict]:
    """The records of every BATCH file of one stream, in message order."""
    records = []
    for message in run.of_type("BATCH", stream):
        for url in message["manifest"]:
            data = Path(urlparse(url).path).read_bytes()
            if message["encoding"]["compression"] == "gzip":
                data = gzip.decompress(data)
            records += [json.loads(line) for line in data.splitlines()]
    return records


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_batch_files_hold_exactly_the_records_of_a_plain_run(
    factory, run_tap, tmp_path, compression
):
    plain = run_tap(factory.config())
    folder = tmp_path / "batches"
    run = run_tap({**factory.config(), "batch_config": batch_config(folder, compression,
                                                                    batch_size=7)})  # fmt: skip
    assert not run.of_type("RECORD")
    for stream in ("refills", "bodies", "springs"):
        assert batch_records(run, stream) == plain.records(stream)
        batches = run.of_type("BATCH", stream)
        assert len(batches) == 3  # 20 rows in files of at most 7
        version = run.of_type("ACTIVATE_VERSION", stream)[0]["version"]
        assert {b["version"] for b in batches} == {version}
        kinds = [m["type"] for m in run.messages if m.get("stream") == stream]
        assert kinds == ["SCHEMA", "BATCH", "BATCH", "BATCH", "ACTIVATE_VERSION"]
    names = sorted(path.name for path in folder.iterdir())
    assert len(names) == 9
    assert not any(name.endswith(".partial") for name in names)


def test_incremental_state_follows_the_batch_that_holds_its_rows(factory, run_tap, tmp_path):
    config = {
        **factory.config(refills=INCREMENTAL),
        "state_interval": 5,
        "batch_config": batch_config(tmp_path / "batches"),
    }
    run = run_tap(config)
    seen = None
    checked = 0
    for message in run.messages:
        if message["type"] == "BATCH" and message["stream"] == "refills":
            data = Path(urlparse(message["manifest"][0]).path).read_bytes()
            seen = json.loads(data.splitlines()[-1])["updated_at"]
        elif message["type"] == "STATE":
            value = message["value"]["bookmarks"].get("refills", {}).get("replication_key_value")
            if value is not None:
                assert seen is not None
                assert value <= seen
                checked += 1
    assert checked >= 4


def test_an_unset_storage_root_leaves_batch_mode_off(factory, run_tap):
    # What meltano.yml produces while PIPELINE_BATCH_DIR is unset.
    config = {**factory.config(), "batch_config": {"encoding": {"format": "jsonl"}, "storage": {}}}
    run = run_tap(config)
    assert not run.of_type("BATCH")
    assert len(run.records("refills")) == 20


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"encoding": {"format": "parquet"}, "storage": {"root": "/tmp/x"}},
         "batch_config.encoding.format': only jsonl is written, not 'parquet'"),
        ({"encoding": {"compression": "zstd"}, "storage": {"root": "/tmp/x"}},
         "'zstd' is not one of ['gzip', 'none'] in config['batch_config']"),  # the SDK's check
        ({"storage": {"root": "s3://bucket/batches"}},
         "batch_config.storage.root' must be a local folder"),
        ({"storage": {"root": "/tmp/x", "prefix": "a/b"}},
         "batch_config.storage.prefix' must not contain a path separator"),
    ],
)  # fmt: skip
def test_batch_settings_the_tap_cannot_honour_are_refused(factory, run_tap, setting, message):
    run = run_tap({**factory.config(), "batch_config": setting}, check=False)
    assert run.returncode != 0
    assert message in run.stderr, run.stderr[-2000:]
    assert not run.of_type("BATCH")
    assert not run.of_type("RECORD")


def test_a_read_that_fails_mid_stream_announces_only_whole_files(factory, run_tap, tmp_path):
    # The source connection dies while a file is being written: that file is removed, the
    # files announced before it are whole, and no ACTIVATE_VERSION tells a target the
    # stream is complete (so a versioned target keeps its old table).
    factory.insert_rows("refills", 21, 150_000)
    folder = tmp_path / "batches"
    config = {**factory.config(), "fetch_size": 500,
              "batch_config": batch_config(folder, batch_size=5_000)}  # fmt: skip
    config["sources"] = {"refills": config["sources"]["refills"]}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    process = subprocess.Popen(
        [TAP_EXECUTABLE, "--config", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None
    lines = [process.stdout.readline()]  # SCHEMA
    lines.append(process.stdout.readline())  # the first BATCH
    terminate_tap_connections(factory.dsn("refills"), "refills")
    rest = process.stdout.read()
    process.wait(timeout=60)
    assert process.returncode != 0
    run = TapRun(process.returncode, (b"".join(lines) + rest).decode(), "")
    assert not run.of_type("ACTIVATE_VERSION")
    announced = run.of_type("BATCH", "refills")
    assert 1 <= len(announced) < 30  # 150,000 rows in files of 5,000
    files = sorted(path.name for path in folder.iterdir())
    assert files == sorted(Path(urlparse(m["manifest"][0]).path).name for m in announced)
    assert all(len(Path(urlparse(m["manifest"][0]).path).read_bytes().splitlines()) == 5_000
               for m in announced)  # fmt: skip


def test_batch_files_left_by_a_failed_run_are_removed_after_a_day(factory, run_tap, tmp_path):
    folder = tmp_path / "batches"
    folder.mkdir()
    old = folder / "refills-0123456789ab-00007.jsonl"
    old_partial = folder / "refills-0123456789ab-00008.jsonl.partial"
    recent = folder / "refills-ba9876543210-00001.jsonl"  # perhaps still to be read
    other = folder / "refills-notes.jsonl"  # not a name the tap writes
    for path in (old, old_partial, recent, other):
        path.write_text("{}\n")
    two_days_ago = time.time() - 2 * 86400
    for path in (old, old_partial, other):
        os.utime(path, (two_days_ago, two_days_ago))
    config = {**factory.config(), "batch_config": batch_config(folder)}
    config["sources"] = {"refills": config["sources"]["refills"]}
    run = run_tap(config)
    assert not old.exists()
    assert not old_partial.exists()
    assert recent.exists()
    assert other.exists()
    assert "Removed 2 batch file(s) of 'refills' left by an earlier run" in run.stderr


def test_a_batch_folder_that_cannot_be_used_is_one_clear_error(factory, run_tap, tmp_path):
    not_a_folder = tmp_path / "batches"
    not_a_folder.write_text("a file where the folder should be")
    run = run_tap({**factory.config(), "batch_config": batch_config(not_a_folder)}, check=False)
    assert run.returncode == 1
    assert f"batch_config.storage.root: cannot use the batch folder {not_a_folder}" in run.stderr
    assert "Traceback" not in run.stderr
    assert not run.of_type("BATCH")
    assert not run.of_type("ACTIVATE_VERSION")
