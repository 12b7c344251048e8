"""Change-capture benchmark: N updates and deletes on a large table, extracted and applied.

Generates the demo `refills` table with --rows rows (default 1,000,000) on a PostgreSQL with
wal_level = logical (an embedded one, started here, unless --host/--port point at one), loads
it once (untimed) into two warehouse schemas of the same server, `cdc_apply` by the LOG_BASED
snapshot and `cdc_replace` by a FULL_TABLE read, then makes --updates updates and --deletes
deletes in transactions of --per-transaction changes, and times, alternating in every round:

  tap, changes        `tap-manufacturing` LOG_BASED from the snapshot's STATE: the N changes
  tap, full table     `tap-manufacturing` FULL_TABLE: every row of the table
  apply changes       tap LOG_BASED | `target-warehouse-raw` (apply-changes) into cdc_apply
  replace table       tap FULL_TABLE | `target-warehouse-raw` (replace) into cdc_replace

Every round reads the same changes again (the state is not advanced), so the apply rounds
also show that applying the same changes twice gives the same table. The tap-alone runs
write to a counting pipe; the record counts are checked every round, and after every round
both warehouse tables must equal the source (row count and an order-independent checksum of
the source's columns). It prints the median seconds, records/s and the peak RSS of each.

    python bench/bench_cdc.py                                  # 1M rows, 10k updates, 1k deletes
    python bench/bench_cdc.py --rows 100000 --updates 50000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from pen_factory.demo_data import Endpoint, create_source_table, ensure_database  # noqa: E402
from pen_factory.embedded import (  # noqa: E402
    EmbeddedPostgres,
    ServerAddress,
    wait_until_ready,
)

DATABASE = "bench_cdc_refills"
WAREHOUSE = "bench_cdc_warehouse"
SLOT = "bench_cdc_refills"
TAP = str(Path(sys.executable).parent / "tap-manufacturing")
TARGET = str(Path(sys.executable).parent / "target-warehouse-raw")
SCHEMAS = {"LOG_BASED": "cdc_apply", "FULL_TABLE": "cdc_replace"}
LOGICAL = "-c wal_level=logical -c max_replication_slots=10 -c synchronous_commit=on"


def _server(args: argparse.Namespace) -> tuple[ServerAddress, EmbeddedPostgres | None]:
    if args.host:
        return ServerAddress(args.host, args.port, args.user), None
    embedded = EmbeddedPostgres(PROJECT_ROOT / ".demo" / "bench-logical-pgdata", LOGICAL)
    address = embedded.start()
    wait_until_ready(address)
    return address, embedded


def _execute(server: ServerAddress, *statements: str, database: str = DATABASE) -> None:
    connection = psycopg2.connect(server.dsn(database))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


def prepare(server: ServerAddress, rows: int) -> None:
    """A fresh source table and no slot or publication of an earlier run."""
    endpoint = Endpoint(server.host, server.port, DATABASE, server.user)
    if not ensure_database(endpoint):
        _execute(
            server,
            f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            f"WHERE slot_name = '{SLOT}'",
            f"DROP PUBLICATION IF EXISTS {SLOT}",
        )
    warehouse = Endpoint(server.host, server.port, WAREHOUSE, server.user)
    if not ensure_database(warehouse):
        _execute(
            server,
            *(f"DROP SCHEMA IF EXISTS {schema} CASCADE" for schema in SCHEMAS.values()),
            database=WAREHOUSE,
        )
    started = time.monotonic()
    create_source_table(endpoint, "refills", rows)
    _execute(server, "VACUUM (FREEZE, ANALYZE) public.refills_production")
    print(f"generated {rows} rows in {time.monotonic() - started:.1f} s", flush=True)


def make_changes(server: ServerAddress, updates: int, deletes: int, per_transaction: int) -> None:
    """`updates` updates of the first rows, then `deletes` deletes of the rows after them."""
    started = time.monotonic()
    for first in range(1, updates + 1, per_transaction):
        last = min(first + per_transaction - 1, updates)
        _execute(
            server,
            "UPDATE refills_production SET units_rejected = units_rejected + 1, "
            f"updated_at = now() WHERE id BETWEEN {first} AND {last}",
        )
    for first in range(updates + 1, updates + deletes + 1, per_transaction):
        last = min(first + per_transaction - 1, updates + deletes)
        _execute(server, f"DELETE FROM refills_production WHERE id BETWEEN {first} AND {last}")
    print(
        f"made {updates} updates and {deletes} deletes in {time.monotonic() - started:.1f} s",
        flush=True,
    )


def _config(server: ServerAddress, method: str, folder: Path) -> Path:
    source = {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "database": DATABASE,
        "replication_method": method,
        "slot_name": SLOT,
        "publication_name": SLOT,
    }
    path = folder / f"{method}.json"
    path.write_text(json.dumps({"sources": {"refills": source}, "fetch_size": 5000}))
    return path


def _target_config(server: ServerAddress, method: str, folder: Path) -> Path:
    path = folder / f"target-{method}.json"
    target = {"host": server.host, "port": server.port, "user": server.user}
    path.write_text(json.dumps({**target, "database": WAREHOUSE, "schema": SCHEMAS[method]}))
    return path


def run_pipe(tap_config: Path, target_config: Path, state: Path | None) -> tuple[float, int]:
    """(seconds, peak RSS KiB of the target) of one tap | target run."""
    tap_command = [TAP, "--config", str(tap_config)] + (["--state", str(state)] if state else [])
    started = time.monotonic()
    tap = subprocess.Popen(tap_command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    target = subprocess.Popen(
        [TARGET, "--config", str(target_config)],
        stdin=tap.stdout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert tap.stdout is not None
    assert target.stderr is not None
    tap.stdout.close()
    target_log = target.stderr.read()
    _, tap_status, _ = os.wait4(tap.pid, 0)
    _, target_status, usage = os.wait4(target.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(tap_status) or os.waitstatus_to_exitcode(target_status):
        raise SystemExit(f"tap | target failed: {tap_command}\n{target_log[-3000:].decode()}")
    return seconds, usage.ru_maxrss


def _fingerprint(server: ServerAddress, database: str, table: str, columns: str) -> tuple:
    """(rows, order-independent checksum of the rows' text over `columns`)."""
    connection = psycopg2.connect(server.dsn(database))
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT count(*), coalesce(sum(hashtextextended(({columns})::text, 0)), 0) "
                f"FROM {table}"
            )
            return cursor.fetchone()
    finally:
        connection.close()


def check_warehouse(server: ServerAddress) -> None:
    """Both warehouse tables hold exactly the source's rows (over the source's columns)."""
    connection = psycopg2.connect(server.dsn(DATABASE))
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
                "WHERE attrelid = 'public.refills_production'::regclass AND attnum > 0 "
                "AND NOT attisdropped"
            )
            columns = "ROW(" + cursor.fetchone()[0] + ")"
    finally:
        connection.close()
    source = _fingerprint(server, DATABASE, "public.refills_production", columns)
    for schema in SCHEMAS.values():
        loaded = _fingerprint(server, WAREHOUSE, f"{schema}.refills", columns)
        if loaded != source:
            raise SystemExit(f"{schema}.refills differs from the source: {loaded} != {source}")


def run_tap(config: Path, state: Path | None) -> tuple[float, int, dict, int]:
    """(seconds, RECORD lines, last STATE value, peak RSS KiB) of one tap run."""
    command = [TAP, "--config", str(config)] + (["--state", str(state)] if state else [])
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    records = 0
    last_state: dict = {}
    for line in process.stdout:
        if line.startswith(b'{"type":"RECORD"'):
            records += 1
        elif line.startswith(b'{"type":"STATE"'):
            last_state = json.loads(line)["value"]
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"tap failed (exit {os.waitstatus_to_exitcode(status)}): {command}")
    return seconds, records, last_state, usage.ru_maxrss


def measure(
    server: ServerAddress, args: argparse.Namespace, folder: Path
) -> dict[str, list[tuple[float, int, int]]]:
    """The untimed initial loads and changes, then the timed rounds: {method: [(seconds,
    records, peak RSS KiB)]} (the RSS is the tap's alone, the target's in a pipe)."""
    log_config = _config(server, "LOG_BASED", folder)
    full_config = _config(server, "FULL_TABLE", folder)
    seconds, records, state, _rss = run_tap(log_config, None)
    print(f"snapshot: {records} rows in {seconds:.1f} s (untimed setup)", flush=True)
    state_path = folder / "state.json"
    state_path.write_text(json.dumps(state))
    targets = {method: _target_config(server, method, folder) for method in SCHEMAS}
    seconds, _rss = run_pipe(log_config, targets["LOG_BASED"], None)
    print(f"initial load, LOG_BASED snapshot: {seconds:.1f} s (untimed)", flush=True)
    seconds, _rss = run_pipe(full_config, targets["FULL_TABLE"], None)
    print(f"initial load, FULL_TABLE: {seconds:.1f} s (untimed)", flush=True)
    make_changes(server, args.updates, args.deletes, args.per_transaction)
    changes, remaining = args.updates + args.deletes, args.rows - args.deletes
    results: dict[str, list[tuple[float, int, int]]] = {}
    for round_number in range(1, args.rounds + 1):
        for name, config, state_file, wanted in (
            ("tap, changes", log_config, state_path, changes),
            ("tap, full table", full_config, None, remaining),
        ):
            seconds, records, _state, rss = run_tap(config, state_file)
            if records != wanted:
                raise SystemExit(f"{name}: {records} records, expected {wanted}")
            results.setdefault(name, []).append((seconds, records, rss))
            print(f"round {round_number} {name}: {seconds:.2f} s", flush=True)
        for name, method, state_file, records in (
            ("apply changes", "LOG_BASED", state_path, changes),
            ("replace table", "FULL_TABLE", None, remaining),
        ):
            tap_config = log_config if method == "LOG_BASED" else full_config
            seconds, rss = run_pipe(tap_config, targets[method], state_file)
            results.setdefault(name, []).append((seconds, records, rss))
            print(f"round {round_number} {name}: {seconds:.2f} s", flush=True)
        check_warehouse(server)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--deletes", type=int, default=1_000)
    parser.add_argument("--per-transaction", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--host", help="a server with wal_level = logical (default: embedded)")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    args = parser.parse_args()
    server, embedded = _server(args)
    try:
        prepare(server, args.rows)
        with tempfile.TemporaryDirectory(prefix="bench-cdc-") as folder:
            results = measure(server, args, Path(folder))
        print()
        print(f"{'method':<16} {'records':>9} {'median s':>9} {'records/s':>10} {'peak RSS':>9}")
        for name, runs in results.items():
            median = statistics.median(s for s, _, _ in runs)
            records = runs[0][1]
            rss = max(r for _, _, r in runs) // 1024
            print(f"{name:<16} {records:>9} {median:>9.2f} {records / median:>10.0f} "
                  f"{rss:>6} MiB")  # fmt: skip
    finally:
        if embedded is not None:
            _execute(
                server,
                f"SELECT pg_drop_replication_slot('{SLOT}') FROM pg_replication_slots "
                f"WHERE slot_name = '{SLOT}'",
            )
            embedded.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
