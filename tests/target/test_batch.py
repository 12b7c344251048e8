"""BATCH messages: records in JSON Lines files (plain or gzip) load exactly like RECORDs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from testkit.singer import record_message, schema_message, singer

pytestmark = pytest.mark.integration

PROPS = {
    "id": {"type": "integer"},
    "name": {"type": ["string", "null"]},
    "amount": {"type": ["number", "string", "null"], "x-sql-datatype": "numeric(12,4)"},
    "tags": {"type": ["array", "null"], "x-sql-datatype": "text[]"},
    "doc": {"type": ["object", "null"], "x-sql-datatype": "jsonb"},
}
ROWS = [
    {"id": 1, "name": "tab\there", "amount": 1.5, "tags": ["a", None], "doc": {"k": [1, 2]}},
    {"id": 2, "name": "ünï", "amount": "NaN", "tags": [], "doc": None},
    {"id": 3, "name": None, "amount": None, "tags": None, "doc": {"q": "x\\\\y"}},
]
VERSION = 1_700_000_000_000
ALL = "SELECT id, name, amount::text, tags, doc FROM raw.lines ORDER BY id"  # NaN != NaN


def write_batch(folder: Path, name: str, rows: list[dict], *, gzipped: bool = False) -> Path:
    """One JSON Lines batch file, as a tap writes it."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    path = folder / (name + (".jsonl.gz" if gzipped else ".jsonl"))
    path.write_bytes(gzip.compress(text) if gzipped else text)
    return path


def batch(stream: str, *paths: Path, compression: str = "none", **extra) -> dict:
    return {
        "type": "BATCH",
        "stream": stream,
        "encoding": {"format": "jsonl", "compression": compression},
        "manifest": [path.as_uri() for path in paths],
        **extra,
    }


def test_batch_files_land_exactly_as_record_messages_and_are_deleted(
    warehouse, run_target, tmp_path
):
    records = (record_message("lines", row) for row in ROWS)
    assert run_target(singer(schema_message("lines", PROPS, ["id"]), *records)).returncode == 0
    from_records = warehouse.query(ALL)
    plain = write_batch(tmp_path, "part-1", ROWS[:2])
    packed = write_batch(tmp_path, "part-2", ROWS[2:], gzipped=True)
    text = singer(
        schema_message("lines", PROPS, ["id"]),
        batch("lines", plain, version=VERSION),
        batch("lines", packed, compression="gzip", version=VERSION),
        {"type": "ACTIVATE_VERSION", "stream": "lines", "version": VERSION},
    )
    run = run_target(text)
    assert run.returncode == 0, run.stderr
    assert warehouse.query(ALL) == from_records
    assert not plain.exists()
    assert not packed.exists()
    assert warehouse.history()[-1][:3] == ("lines", "replaced", 3)


def test_batch_of_a_version_that_is_never_activated_changes_nothing(
    warehouse, run_target, tmp_path
):
    # A tap that dies after some BATCH files of version V never sends ACTIVATE_VERSION V:
    # the end of input is then a truncation, exactly as with versioned RECORD messages.
    assert run_target(singer(schema_message("lines", PROPS, ["id"]),
                             record_message("lines", ROWS[0]))).returncode == 0  # fmt: skip
    part = write_batch(tmp_path, "part-1", ROWS[1:])
    run = run_target(singer(schema_message("lines", PROPS, ["id"]),
                            batch("lines", part, version=VERSION)))  # fmt: skip
    assert run.returncode == 1
    assert "stream 'lines'" in run.stderr
    assert "table left unchanged" in run.stderr
    assert [row[0] for row in warehouse.table("lines")] == [1]


def test_a_bad_record_in_a_batch_file_is_named_by_file_and_record(warehouse, run_target, tmp_path):
    assert run_target(singer(schema_message("lines", PROPS, ["id"]),
                             record_message("lines", ROWS[0]))).returncode == 0  # fmt: skip
    part = write_batch(tmp_path, "part-1", [ROWS[1], {"id": "seven", "name": "x"}])
    run = run_target(singer(schema_message("lines", PROPS, ["id"]), batch("lines", part)))
    assert run.returncode == 1
    assert (
        f"stream 'lines', input line 2, column 'id': BATCH file {part}, record 2:" in run.stderr
    ), run.stderr
    assert [row[0] for row in warehouse.table("lines")] == [1]
    assert part.exists()  # kept: the load that needed it failed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"encoding": {"format": "parquet"}}, "BATCH files in format 'parquet' are not supported"),
        ({"encoding": {"format": "jsonl", "compression": "zstd"}}, "compression 'zstd'"),
        ({"manifest": ["s3://bucket/part-1.jsonl"]}, "is not a local file"),
        ({"manifest": "part-1.jsonl"}, "without a 'manifest' list"),
        ({"manifest": ["file:///nonexistent/part-1.jsonl"]}, "cannot open BATCH file"),
    ],
)
def test_unreadable_batches_fail_with_the_reason_and_change_nothing(
    warehouse, run_target, tmp_path, change, message
):
    assert run_target(singer(schema_message("lines", PROPS, ["id"]),
                             record_message("lines", ROWS[0]))).returncode == 0  # fmt: skip
    part = write_batch(tmp_path, "part-1", ROWS[1:])
    run = run_target(singer(schema_message("lines", PROPS, ["id"]),
                            {**batch("lines", part), **change}))  # fmt: skip
    assert run.returncode == 1
    assert "stream 'lines', input line 2: " in run.stderr, run.stderr
    assert message in run.stderr, run.stderr
    assert [row[0] for row in warehouse.table("lines")] == [1]


def test_batch_before_its_schema_is_refused(warehouse, run_target, tmp_path):
    part = write_batch(tmp_path, "part-1", ROWS)
    run = run_target(singer(batch("lines", part)))
    assert run.returncode != 0
    assert "stream 'lines', input line 1: BATCH before any SCHEMA" in run.stderr
