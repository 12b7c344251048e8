"""The warehouse connection goes away mid-load, and no password ever reaches the output.

The target's backend is found by its application_name and ended with `pg_terminate_backend`
while the load is held mid-COPY (insert phase) or inside COMMIT. Every case also runs with a
real password set (a login role created for the test) and checks it is never printed.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from testkit.faults import (
    Gate,
    assert_same_content,
    count,
    feed,
    finish,
    install_gate,
    remove_gate,
    wait_for_backend,
    wait_until,
)
from testkit.postgres import Db
from testkit.processes import executable
from testkit.singer import record_message, schema_message, singer, state_message

pytestmark = [pytest.mark.integration, pytest.mark.fault]

PROPS = {"id": {"type": "integer"}, "label": {"type": ["string", "null"]}}


def stream_text(generation: int, rows: int) -> str:
    return singer(
        schema_message("parts", PROPS, ["id"]),
        *(record_message("parts", {"id": i, "label": f"g{generation}"}) for i in range(rows)),
        state_message({"generation": generation}),
    )


def assert_secret_hidden(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text, "the password was printed"


@pytest.fixture
def with_password(secret_role, fault_warehouse):
    """The warehouse reached as a login role with a real password."""
    role, password = secret_role
    fault_warehouse.config.update(user=role, password=password)
    return fault_warehouse, password


@pytest.mark.parametrize(
    "check",
    ["data", "message"],
)
@pytest.mark.parametrize("phase", ["insert", "commit"])
def test_warehouse_connection_terminated_mid_load(with_password, phase, check):
    warehouse, password = with_password
    db = warehouse.db
    assert warehouse.run(stream_text(1, 100)).returncode == 0
    before = db.snapshot()
    install_gate(db, "parts", at_commit=phase == "commit")
    gate = Gate(db)
    process = warehouse.start()
    feed(process, stream_text(2, 150))
    process.stdin.close()
    process.stdin = None
    pid = wait_for_backend(db, "parts", phase=phase, lock_wait=True)
    db.query("SELECT pg_terminate_backend(%s)", (pid,))
    gate.open()
    done = finish(process)
    count("fault scenarios")
    remove_gate(db, "parts")
    if check == "message":
        assert "stream 'parts'" in done.stderr
        assert "Traceback" not in done.stderr
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stdout == ""
    assert_secret_hidden(password, done.stdout, done.stderr)
    assert_same_content(before, db.snapshot())
    again = warehouse.run(stream_text(2, 150))
    assert again.returncode == 0, again.stderr[-3000:]
    assert db.checksum("parts")[0] == 150
    assert "running" not in {status for _s, status, _r, _e in db.history()}


def test_warehouse_refusing_connections_and_a_login_refused(with_password, pg_server):
    warehouse, password = with_password
    assert warehouse.run(stream_text(1, 10)).returncode == 0
    before = warehouse.db.snapshot()
    role = warehouse.config["user"]
    Db(pg_server.dsn()).execute(f"ALTER ROLE {role} NOLOGIN")  # trust auth: a refused login
    try:
        refused = warehouse.run(stream_text(2, 10))
    finally:
        Db(pg_server.dsn()).execute(f"ALTER ROLE {role} LOGIN")
    wrong_port = warehouse.run(stream_text(2, 10), port=1)
    for done in (refused, wrong_port):
        count("fault scenarios")
        assert done.returncode == 1, done.stderr[-3000:]
        assert "cannot connect" in done.stderr
        assert "Traceback" not in done.stderr
        assert_secret_hidden(password, done.stdout, done.stderr)
    assert "not permitted to log in" in refused.stderr
    assert_same_content(before, warehouse.db.snapshot())
    assert warehouse.run(stream_text(2, 10)).returncode == 0


def test_bad_input_and_signals_never_print_the_password(with_password):
    warehouse, password = with_password
    assert warehouse.run(stream_text(1, 10)).returncode == 0
    bad = warehouse.run(stream_text(2, 5) + '{"type": "RECORD", "stream": "parts", "rec\n')
    cast = warehouse.run(singer(schema_message("parts", PROPS, ["id"]),
                                record_message("parts", {"id": "not a number"})))  # fmt: skip
    process = warehouse.start()
    feed(process, stream_text(3, 50).rsplit("\n", 2)[0] + "\n")
    wait_until(lambda: warehouse.db.backends("target-warehouse-raw:parts:%"), "the load")
    process.terminate()
    process.wait(timeout=60)
    terminated = finish(process)
    for done in (bad, cast, terminated):
        count("fault scenarios")
        assert done.returncode != 0
        assert_secret_hidden(password, done.stdout, done.stderr)
    history = warehouse.db.query(
        "SELECT coalesce(string_agg(error, ' '), '') FROM raw._load_history"
    )
    assert_secret_hidden(password, history[0][0])


def test_about_output_never_shows_the_password(with_password, tmp_path):
    warehouse, password = with_password
    tap_config = tmp_path / "tap.json"
    tap_config.write_text(json.dumps({"sources": {"refills": {"port": 1, "password": password}}}))
    runs = [
        [executable("target-warehouse-raw"), "--about", "--config", str(warehouse.config_file())],
        [executable("target-warehouse-raw"), "--about", "--format=json"],
        [executable("tap-manufacturing"), "--about", "--config", str(tap_config)],
        [executable("tap-manufacturing"), "--config", str(tap_config)],  # refused source
        [executable("target-warehouse-raw-check"), "--config", str(warehouse.config_file(port=1))],
    ]
    for argv in runs:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        count("fault scenarios")
        assert_secret_hidden(password, done.stdout, done.stderr)
    assert done.returncode == 2
