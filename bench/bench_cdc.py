"""Change-capture benchmark, tap side: N updates and deletes on a large table, extracted.

Generates the demo `refills` table with --rows rows (default 1,000,000) on a PostgreSQL with
wal_level = logical (an embedded one, started here, unless --host/--port point at one), takes
the LOG_BASED snapshot once (untimed), then makes --updates updates and --deletes deletes in
transactions of --per-transaction changes, and times, alternating in every round:

  (a) changes    `tap-manufacturing` LOG_BASED from the snapshot's STATE: the N changes
                 (every round reads the same changes again: the state is not advanced)
  (b) full table `tap-manufacturing` FULL_TABLE: every row of the table

Output goes to /dev/null through a counting pipe; the record counts are checked every round.
It prints the median seconds, records/s and the tap's peak RSS of each. The comparison with
applying the changes in the warehouse (against a full-table replace) needs the target's
change-stream support and is added on top of this script.

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
SLOT = "bench_cdc_refills"
TAP = str(Path(sys.executable).parent / "tap-manufacturing")
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
            folder_path = Path(folder)
            log_config = _config(server, "LOG_BASED", folder_path)
            full_config = _config(server, "FULL_TABLE", folder_path)
            seconds, records, state, _rss = run_tap(log_config, None)
            print(f"snapshot: {records} rows in {seconds:.1f} s (untimed setup)", flush=True)
            state_path = folder_path / "state.json"
            state_path.write_text(json.dumps(state))
            make_changes(server, args.updates, args.deletes, args.per_transaction)
            expected = {"changes": args.updates + args.deletes, "full table": None}
            results: dict[str, list[tuple[float, int, int]]] = {name: [] for name in expected}
            for round_number in range(1, args.rounds + 1):
                for name, config, state_file in (
                    ("changes", log_config, state_path),
                    ("full table", full_config, None),
                ):
                    seconds, records, _state, rss = run_tap(config, state_file)
                    wanted = expected[name] or args.rows - args.deletes
                    if records != wanted:
                        raise SystemExit(f"{name}: {records} records, expected {wanted}")
                    results[name].append((seconds, records, rss))
                    print(f"round {round_number} {name}: {seconds:.2f} s", flush=True)
        print()
        print(f"{'method':<12} {'records':>9} {'median s':>9} {'records/s':>10} {'peak RSS':>9}")
        for name, runs in results.items():
            median = statistics.median(s for s, _, _ in runs)
            records = runs[0][1]
            rss = max(r for _, _, r in runs) // 1024
            print(f"{name:<12} {records:>9} {median:>9.2f} {records / median:>10.0f} "
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
