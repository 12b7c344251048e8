"""Bad input, signals and concurrent readers: every table keeps its last good content."""

# ruff: noqa: E501 - long expected-value literals read better on one line
from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time

import psycopg2
import pytest

from testkit.processes import executable
from testkit.singer import record_message, schema_message, singer

pytestmark = pytest.mark.integration

PROPS = {"id": {"type": "integer"}, "qty": {"type": ["integer", "null"]},
         "price": {"type": ["number", "string", "null"], "x-sql-datatype": "numeric(8,2)"}}  # fmt: skip


def good(n: int = 3) -> str:
    return singer(schema_message("parts", PROPS, ["id"]),
                  *(record_message("parts", {"id": i, "qty": i, "price": 1.5}) for i in range(1, n + 1)),
                  {"type": "STATE", "value": {"parts": n}})  # fmt: skip


BAD = {
    "malformed JSON": ('{"type": "RECORD", "stream": "parts", "record": {"id": 9',
                       "input line 3: malformed JSON"),
    "record before schema": ('{"type": "RECORD", "stream": "other", "record": {"id": 1}}',
                             "stream 'other', input line 3: RECORD before any SCHEMA"),
    "wrong JSON type": ('{"type": "RECORD", "stream": "parts", "record": {"id": 9, "qty": "x"}}',
                        "stream 'parts', input line 3, column 'qty': JSON type string is not "
                        "allowed by the schema (allowed: null, number)"),
    "null key": ('{"type": "RECORD", "stream": "parts", "record": {"id": null}}',
                 "stream 'parts', input line 3, column 'id': key property is missing or null"),
    "cast error": ('{"type": "RECORD", "stream": "parts", "record": {"id": 9, "price": "abc"}}',
                   "stream 'parts', input line 3, column 'price': invalid input syntax for "
                   'type numeric: "abc"'),
    "value too big": ('{"type": "RECORD", "stream": "parts", "record": {"id": 9, "price": 1e9}}',
                      "stream 'parts', input line 3, column 'price': numeric field overflow"),
    "not an integer": ('{"type": "RECORD", "stream": "parts", "record": {"id": 9, "qty": 1.5}}',
                       "stream 'parts', input line 3, column 'qty': invalid input syntax for "
                       'type bigint: "1.5"'),
    "NUL character": ('{"type": "RECORD", "stream": "parts", "record": {"id": 9, "price": "\\u0000"}}',
                      "stream 'parts', input line 3, column 'price': text contains a NUL"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_with_stream_line_problem_and_keeps_the_table(warehouse, run_target, case):
    assert run_target(good(3)).returncode == 0
    line, message = BAD[case]
    text = singer(schema_message("parts", PROPS, ["id"]),
                  record_message("parts", {"id": 100, "qty": 1}), line,
                  {"type": "STATE", "value": {"parts": 100}})  # fmt: skip
    run = run_target(text, config={"password": "never-print-me"})
    assert run.returncode == 1
    assert message in run.stderr
    assert run.stdout == ""  # no STATE
    assert "never-print-me" not in run.stderr
    assert warehouse.table("parts") == [(1, 1, 1.5), (2, 2, 1.5), (3, 3, 1.5)]
    assert warehouse.history()[-1][1] == "failed"


def test_error_in_a_later_batch_names_the_right_line(warehouse, run_target):
    rows = [record_message("parts", {"id": i, "qty": i}) for i in range(1, 2001)]
    rows[1500]["record"]["price"] = "oops"
    run = run_target(singer(schema_message("parts", PROPS, ["id"]), *rows),
                     config={"batch_size_rows": 700})  # fmt: skip
    assert run.returncode == 1
    assert "stream 'parts', input line 1502, column 'price': invalid input syntax" in run.stderr
    assert warehouse.query("SELECT to_regclass('raw.parts')") == [(None,)]


def test_unreachable_warehouse_is_a_clear_error_without_password(warehouse, run_target):
    run = run_target(good(1), config={"port": 1, "password": "never-print-me"})
    assert run.returncode == 1
    assert "cannot connect to postgres@" in run.stderr
    assert "never-print-me" not in run.stderr


def _slow_feed(warehouse, n: int, *, batch: int = 2000):
    """Start the target and feed it a large stream; returns the process."""
    config = warehouse.config_path.with_name("config-slow.json")
    config.write_text(
        warehouse.config_path.read_text().replace("}", f', "batch_size_rows": {batch}}}')
    )
    process = subprocess.Popen(
        [executable("target-warehouse-raw"), "--config", str(config)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    header = singer(schema_message("parts", PROPS, ["id"]))
    process.stdin.write(header.encode())
    body = singer(
        *(record_message("parts", {"id": i, "qty": i, "price": 2}) for i in range(1, n + 1))
    )
    process.stdin.write(body.encode())
    process.stdin.write(singer({"type": "STATE", "value": {"parts": "new"}}).encode())
    process.stdin.flush()
    return process


def _finish(process: subprocess.Popen) -> tuple[bytes, bytes]:
    """Close the target's input (end of stream) and collect its output."""
    with contextlib.suppress(BrokenPipeError):
        process.stdin.close()
    out, err = process.stdout.read(), process.stderr.read()
    process.wait(timeout=120)
    return out, err


def _wait_for_phase(warehouse, phases: tuple[str, ...], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = warehouse.query(
            "SELECT application_name FROM pg_stat_activity "
            "WHERE application_name LIKE 'target-warehouse-raw:parts:%%' "
            "AND datname = current_database()"
        )
        for (name,) in rows:
            if name.rsplit(":", 1)[1] in phases:
                return name
        time.sleep(0.02)
    raise AssertionError("the load never reached " + ", ".join(phases))


@pytest.mark.fault
@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGKILL, -9), (signal.SIGTERM, 143), (signal.SIGINT, 130)]
)
def test_kill_mid_load_keeps_the_old_table(warehouse, run_target, sig, code):
    assert run_target(good(3)).returncode == 0
    process = _slow_feed(warehouse, 20_000)
    _wait_for_phase(warehouse, ("copy", "validate", "insert"))
    process.send_signal(sig)
    out, err = _finish(process)
    assert process.returncode == code, err.decode()[-2000:]
    assert out == b""  # no STATE for the interrupted stream
    assert warehouse.table("parts") == [(1, 1, 1.5), (2, 2, 1.5), (3, 3, 1.5)]
    if sig != signal.SIGKILL:
        assert b"interrupted by SIG" in err
        assert warehouse.history()[-1][1] == "interrupted", err.decode()[-3000:]
    # the next run converges and marks a killed run's row interrupted
    assert run_target(good(4)).returncode == 0
    assert len(warehouse.table("parts")) == 4
    statuses = [h[1] for h in warehouse.history()]
    assert "running" not in statuses
    assert statuses[-1] == "replaced"
    # (this database only: other runs may share the server)
    assert warehouse.query("SELECT count(*) FROM pg_stat_activity WHERE application_name "
                           "LIKE 'target-warehouse-raw:%%' AND datname = current_database()"
                           ) == [(0,)]  # fmt: skip


@pytest.mark.fault
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_with_the_end_of_input_still_rolls_back(warehouse, run_target, sig, code):
    """Every batch is loaded and the reader waits for input when the signal and the end of
    input arrive together: the signal wins, nothing is committed."""
    assert run_target(good(3)).returncode == 0
    process = _slow_feed(warehouse, 3_000, batch=1_000)
    _wait_for_phase(warehouse, ("copy", "insert"))
    time.sleep(0.5)  # all batches loaded; the reader is blocked on its input
    process.send_signal(sig)
    out, err = _finish(process)
    assert process.returncode == code, err.decode()[-2000:]
    assert out == b""
    assert warehouse.table("parts") == [(1, 1, 1.5), (2, 2, 1.5), (3, 3, 1.5)]
    assert warehouse.history()[-1][1] == "interrupted", err.decode()[-2000:]


@pytest.mark.fault
def test_reader_sees_only_old_or_new_count_and_is_never_blocked(warehouse, run_target):
    assert run_target(good(500)).returncode == 0
    seen: list[int] = []
    waits: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        conn = psycopg2.connect(warehouse.dsn)
        conn.autocommit = True
        with conn.cursor() as cursor:
            while not stop.is_set():
                started = time.monotonic()
                cursor.execute("SELECT count(*) FROM raw.parts")
                seen.append(cursor.fetchone()[0])
                waits.append(time.monotonic() - started)
        conn.close()

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        process = _slow_feed(warehouse, 30_000)
        out, err = _finish(process)
    finally:
        stop.set()
        thread.join()
    assert process.returncode == 0, err.decode()[-2000:]
    assert set(seen) <= {500, 30_000}
    assert seen[0] == 500
    assert seen[-1] == 30_000
    assert max(waits) < 1.0
    assert [json.loads(line) for line in out.decode().splitlines()] == [{"parts": "new"}]


@pytest.mark.fault
def test_two_loads_of_one_stream_do_not_interleave(warehouse, run_target):
    first = _slow_feed(warehouse, 20_000)
    _wait_for_phase(warehouse, ("copy", "validate", "insert"))
    second = subprocess.Popen(
        [executable("target-warehouse-raw"), "--config", str(warehouse.config_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    second.stdin.write(good(2).encode())
    second.stdin.close()
    _wait_for_phase(warehouse, ("wait-lock",))
    _first_out, _ = _finish(first)
    _second_out, second_err = second.stdout.read(), second.stderr.read()
    second.wait(timeout=120)
    assert first.returncode == 0
    assert second.returncode == 0
    assert b"another load" in second_err
    assert warehouse.table("parts") == [(1, 1, 1.5), (2, 2, 1.5)]  # the later commit wins


def _bins(version: int | None, n: int, *, close: bool) -> list[dict]:
    extra = {} if version is None else {"version": version}
    messages: list[dict] = [schema_message("bins", {"code": {"type": "string"}}, ["code"])]
    messages += [record_message("bins", {"code": f"{version}-{i}"}, **extra) for i in range(n)]
    if close:
        messages.append({"type": "ACTIVATE_VERSION", "stream": "bins", "version": version})
    return messages


def test_a_failure_at_the_last_flush_rolls_back_every_open_stream(warehouse, run_target):
    assert run_target(singer(*_bins(None, 2, close=False)) + good(3)).returncode == 0
    before = (warehouse.table("bins"), warehouse.table("parts"))
    # bins is complete and open (no ACTIVATE_VERSION); the cast error in parts' last batch is
    # only found when that batch is loaded at end of input, before anything is committed.
    text = singer(*_bins(None, 5, close=False), schema_message("parts", PROPS, ["id"]),
                  record_message("parts", {"id": 1, "price": "abc"}))  # fmt: skip
    run = run_target(text)
    assert run.returncode == 1
    assert "stream 'parts', input line 8, column 'price'" in run.stderr
    assert (warehouse.table("bins"), warehouse.table("parts")) == before
    # ... while a stream closed by its ACTIVATE_VERSION was committed by the tap's word.
    run = run_target(singer(*_bins(3, 4, close=True)) + text.split("\n", 6)[-1])
    assert run.returncode == 1
    assert [row[0] for row in warehouse.table("bins")] == [f"3-{i}" for i in range(4)]
    assert warehouse.table("parts") == before[1]


def test_input_that_ends_before_the_closing_activate_version_is_refused(warehouse, run_target):
    assert run_target(singer(*_bins(1, 2, close=True))).returncode == 0
    run = run_target(singer(*_bins(2, 5, close=False), {"type": "STATE", "value": {"b": 2}}))
    assert run.returncode == 1
    assert (
        "stream 'bins': input ended before ACTIVATE_VERSION for version 2 — the tap did not "
        "finish; table left unchanged" in run.stderr
    )
    assert run.stdout == ""
    assert [row[0] for row in warehouse.table("bins")] == ["1-0", "1-1"]
    # A tap that announces its version before the records (the SDK) never closes it: the end
    # of input is the end of the stream, as for streams without versions.
    announced = [{"type": "ACTIVATE_VERSION", "stream": "bins", "version": 4}]
    messages = _bins(4, 3, close=False)
    assert run_target(singer(messages[0], *announced, *messages[1:])).returncode == 0
    assert [row[0] for row in warehouse.table("bins")] == ["4-0", "4-1", "4-2"]


def test_too_many_columns_is_one_clear_error(warehouse, run_target):
    props = {"id": {"type": "integer"}} | {f"c{i}": {"type": "integer"} for i in range(1600)}
    run = run_target(
        singer(schema_message("wide", props, ["id"]), record_message("wide", {"id": 1}))
    )
    assert run.returncode == 1
    assert (
        "stream 'wide', input line 1: the schema has 1601 columns; PostgreSQL tables can have "
        "at most 1600 columns" in run.stderr
    )
    assert "Traceback" not in run.stderr
    assert warehouse.query("SELECT to_regclass('raw.wide')") == [(None,)]
