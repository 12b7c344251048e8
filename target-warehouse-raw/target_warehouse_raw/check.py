"""`target-warehouse-raw-check`: warehouse row counts, last loads, and source comparison.

Usage: `target-warehouse-raw-check --config FILE` or `--config ENV` (TARGET_WAREHOUSE_RAW_*
variables, the SDK's convention, which Meltano exports when it runs a plugin command).
Then, for each source whose replication slot exists (the tap reads it LOG_BASED), the slot's
lag: how much WAL the source keeps because the pipeline has not confirmed it yet.
Exit 0: all good; 1: a count mismatch, a table whose last load failed/was interrupted, or a
slot whose lag exceeds `check_max_slot_lag_mb` (or whose WAL is lost); 2: the warehouse is
unreachable or the config is unusable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import psycopg2
from singer_sdk.exceptions import ConfigValidationError

from target_warehouse_raw.config import ConfigError, SourceSettings
from target_warehouse_raw.schema.names import quote
from target_warehouse_raw.warehouse.db import WarehouseUnreachableError, connect, table_sql
from target_warehouse_raw.warehouse.history import history_sql

_LAST_LOADS = """
SELECT DISTINCT ON (table_name) table_name, stream, status, finished_at, started_at,
       (SELECT max(finished_at) FROM {h} ok WHERE ok.table_name = h.table_name
          AND ok.status IN ('replaced', 'upserted', 'appended')) AS last_success
FROM {h} h ORDER BY table_name, id DESC
"""


def _config(source: str) -> dict:
    from target_warehouse_raw.target import TargetWarehouseRaw

    if source == "ENV":
        target = TargetWarehouseRaw(config={}, parse_env_config=True, setup_mapper=False)
    else:
        import json
        from pathlib import Path

        config = json.loads(Path(source).read_text())
        target = TargetWarehouseRaw(config=config, setup_mapper=False)
    return target.warehouse_config


def _ask_source(
    source: SourceSettings, statement: str, params: tuple | None = None
) -> tuple | str | None:
    """The first row `statement` returns from the source database (None when it returns
    none), or a string saying why the source could not be asked."""
    try:
        conn = connect(source.connection, None, f"check:{source.name}")
    except WarehouseUnreachableError:
        return "unreachable"
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchone()
    except psycopg2.Error as exc:
        return f"error: {exc.diag.message_primary}"
    finally:
        conn.close()


def _source_count(source: SourceSettings) -> int | str:
    row = _ask_source(source, f"SELECT count(*) FROM {table_sql(source.schema, source.table)}")
    return row if isinstance(row, str) else row[0]


def run_check(cfg: object, out: object = sys.stdout) -> int:
    """Print one line per loaded table, then the slots' lag; return the exit code."""
    code = _check_tables(cfg, out)
    return max(code, _check_slots(cfg, out))


def _check_tables(cfg: object, out: object) -> int:
    """One line per loaded table; 1 on a mismatch or a failed last load."""
    conn = connect(cfg.connection, None, "check")
    conn.autocommit = True
    sources = {source.name: source for source in cfg.check_sources}
    rows = []
    problems = 0
    with conn.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", (history_sql(cfg.schema),))
        if cursor.fetchone()[0] is None:
            print(f"no load history in schema {cfg.schema} yet", file=out)
            conn.close()
            return 0
        cursor.execute(_LAST_LOADS.format(h=history_sql(cfg.schema)))
        for table, stream, status, finished, started, success in cursor.fetchall():
            cursor.execute("SELECT to_regclass(%s)", (table_sql(cfg.schema, table),))
            count: int | str = "missing"
            if cursor.fetchone()[0] is not None:
                cursor.execute(f"SELECT count(*) FROM {quote(cfg.schema)}.{quote(table)}")
                count = cursor.fetchone()[0]
            source = sources.get(stream)
            source_count: int | str = "-" if source is None else _source_count(source)
            match = "-"
            if isinstance(source_count, int):
                match = "yes" if source_count == count else "NO"
                problems += match == "NO"
            if status in ("failed", "interrupted"):
                problems += 1
            last = str(finished or started)
            rows.append(
                (table, str(count), status, last, str(success or "never"), str(source_count), match)
            )
    conn.close()
    header = ("table", "rows", "last status", "last load", "last success", "source rows", "match")
    _print_table(header, rows, out)
    return 1 if problems else 0


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]], out: object) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)


_SLOT_SQL = """
SELECT active, wal_status,
       pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint
FROM pg_replication_slots WHERE slot_name = %s
"""

MB = 1024 * 1024


def _slot_row(source: SourceSettings) -> tuple | str | None:
    """The slot's (active, wal_status, lag bytes, kept bytes); None when there is no such
    slot (the source is not read LOG_BASED); a string when the source cannot be asked."""
    return _ask_source(source, _SLOT_SQL, (source.slot_name,))


def _check_slots(cfg: object, out: object) -> int:
    """One line per source with a replication slot: its lag against the limit."""
    limit = cfg.check_max_slot_lag_mb
    rows = []
    problems = 0
    for source in cfg.check_sources:
        row = _slot_row(source)
        if row is None:
            continue
        if isinstance(row, str):
            rows.append((source.name, source.slot_name, "-", "-", "-", row, "-"))
            continue
        active, status, lag, kept = row
        lag_mb = (lag or 0) / MB
        ok = status != "lost" and lag_mb <= limit
        problems += not ok
        rows.append((source.name, source.slot_name, "yes" if active else "no",
                     f"{lag_mb:.1f}", f"{(kept or 0) / MB:.1f}", str(status),
                     "yes" if ok else "NO"))  # fmt: skip
    if rows:
        print(file=out)
        header = ("source", "slot", "active", "lag MB", "WAL kept MB", "wal status",
                  f"lag <= {limit:g} MB")  # fmt: skip
        _print_table(header, rows, out)
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    parser = argparse.ArgumentParser(prog="target-warehouse-raw-check", description=__doc__)
    parser.add_argument("--config", default="ENV", help="config JSON file, or ENV")
    args = parser.parse_args(argv)
    try:
        cfg = _config(args.config)
        code = run_check(cfg)
    except (WarehouseUnreachableError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except ConfigValidationError as exc:  # the SDK's message alone does not say which setting
        print(f"error: {'; '.join(exc.errors) or exc}", file=sys.stderr)
        code = 2
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
