"""One timed run of each method, from the same source tables into its own warehouse schema.

  copy           the physical limit: `psql \\copy (SELECT ...) TO STDOUT | psql \\copy ...
                 FROM STDIN`, one table after the other, into tables of the same column types
                 and the same primary key as the target's tables, emptied by TRUNCATE
                 (untimed) before the run
  pipe           `tap-manufacturing --config tap.json | target-warehouse-raw --config ...`
  meltano        `meltano run tap-manufacturing target-warehouse-raw` (discovery included)
  pipe+batch, meltano+batch   the same two with BATCH mode on (the tap's `batch_config`;
                 PIPELINE_BATCH_DIR under Meltano): records travel in files and only a BATCH
                 message per 10,000 records goes through the pipe and Meltano's relay
  target         `target-warehouse-raw --config ... < file`: the target alone, fed the tap's
                 output captured once before the series (see singer_file)

Each run returns its wall time, the CPU seconds of the client processes (wait4 on each, so
children reaped by them count too), the peak RSS of the tap and of the target, and the
target's record-path counts when it logs them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from psycopg2 import sql

from pen_factory.cli import demo_environment
from pen_factory.demo_data import SOURCES
from pipebench import singer_file
from pipebench.datasets import DataSet
from pipebench.probes import RunProbe
from pipebench.server import BenchServer, TableStats, psql

PROJECT_ROOT = Path(__file__).resolve().parents[2]
METHODS = ("copy", "pipe", "pipe+batch", "meltano", "meltano+batch", "target")
# One schema per method, so that each method's series of loads is its own.
SCHEMAS = {method: "bench_" + method.replace("+", "_") for method in METHODS}

# The line the target logs at the end of a run: how many records each conversion path took
# (exact = the slow, general fallback). Summed when it appears more than once.
RECORD_PATHS = re.compile(r"record paths: (\d+) compiled, (\d+) typed, (\d+) exact")


@dataclass
class RunResult:
    """What one run of one method measured."""

    method: str
    run: int
    wall_s: float
    client_cpu_s: float
    tap_rss_kib: int | None = None
    target_rss_kib: int | None = None
    record_paths: tuple[int, int, int] | None = None
    ratio: float | None = None  # wall / wall of the raw copy of the same round
    server_cpu_s: float | None = None
    wal_bytes: int | None = None
    tables: dict[str, TableStats] = field(default_factory=dict)


def record_paths(log: str) -> tuple[int, int, int] | None:
    """The target's record-path counts (compiled, typed, exact) in a log, or None."""
    found = RECORD_PATHS.findall(log)
    if not found:
        return None
    compiled, typed, exact = (sum(int(match[i]) for match in found) for i in range(3))
    return compiled, typed, exact


def _cpu_s(usage: os.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def _wait(process: subprocess.Popen) -> os.struct_rusage:
    """wait4 the process: its exit status and its own (and its reaped children's) usage."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage


def _executable(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def _tail(path: Path, characters: int = 3000) -> str:
    return path.read_text(errors="replace")[-characters:] if path.exists() else ""


class Runner:
    """Runs the methods for one server, data set and scratch folder."""

    def __init__(
        self,
        server: BenchServer,
        data_set: DataSet,
        workdir: Path,
        target_settings: dict[str, str] | None = None,
    ) -> None:
        self.server = server
        self.data_set = data_set
        self.workdir = workdir
        # Extra target settings (--target-setting), as text: the target's config parsing and
        # Meltano's environment both take settings as strings.
        self.target_settings = dict(target_settings or {})
        self._singer_file = workdir / "tap-output.singer"  # written by capture_tap_output
        self._escape_non_ascii: bool | None = None  # None: not captured

    # -- the raw copy ------------------------------------------------------------------------
    def prepare_copy_tables(self) -> None:
        """Empty tables with each source table's column types and primary key, the way the
        target builds its tables from the tap's exact types and key properties."""
        schema = SCHEMAS["copy"]
        self.server.reset_schema(schema)
        with self.server.autocommit(self.server.warehouse) as warehouse:
            warehouse.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            for source in SOURCES:
                columns, key = self._source_definition(source)
                warehouse.execute(
                    sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY ({}))").format(
                        sql.Identifier(schema, source),
                        sql.SQL(columns),
                        sql.SQL(", ").join(map(sql.Identifier, key)),
                    )
                )

    def _source_definition(self, source: str) -> tuple[str, list[str]]:
        table = f"public.{self.data_set.table(source)}"
        with self.server.autocommit(self.server.database(source)) as cursor:
            cursor.execute(
                """
                SELECT string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod),
                                  ', ' ORDER BY attnum)
                FROM pg_attribute
                WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped
                """,
                (table,),
            )
            columns = cursor.fetchone()[0]
            cursor.execute(
                """
                SELECT array_agg(a.attname ORDER BY k.ord)
                FROM pg_index i
                CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                WHERE i.indrelid = %s::regclass AND i.indisprimary
                """,
                (table,),
            )
            return columns, cursor.fetchone()[0]

    def run_copy(self, run: int) -> RunResult:
        """(a) psql COPY out | psql COPY in, per table, into the emptied keyed tables."""
        schema = SCHEMAS["copy"]
        with self.server.autocommit(self.server.warehouse) as cursor:
            for source in SOURCES:
                cursor.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(schema, source)))
        address = self.server.address
        base = [psql(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", address.host]
        base += ["-p", str(address.port), "-U", address.user]
        cpu = 0.0
        started = time.perf_counter()
        for source in SOURCES:
            table = self.data_set.table(source)
            out = subprocess.Popen(
                [*base, "-d", self.server.database(source), "-c",
                 f"\\copy (SELECT * FROM public.{table}) TO STDOUT"],
                stdout=subprocess.PIPE,
            )  # fmt: skip
            into = subprocess.Popen(
                [*base, "-d", self.server.warehouse, "-c", f"\\copy {schema}.{source} FROM STDIN"],
                stdin=out.stdout,
            )
            assert out.stdout is not None
            out.stdout.close()
            cpu += _cpu_s(_wait(out)) + _cpu_s(_wait(into))
            if into.returncode != 0 or out.returncode != 0:
                raise RuntimeError(f"psql COPY pipe failed for {source}")
        return RunResult("copy", run, time.perf_counter() - started, cpu)

    # -- tap | target ------------------------------------------------------------------------
    def _batch_config(self) -> dict:
        return {
            "encoding": {"format": "jsonl", "compression": "none"},
            "storage": {"root": (self.workdir / "batches").as_uri()},
        }

    def _tap_argv(self, *, batch: bool) -> list[str]:
        """The tap's command line, its config (this data set's tables) written beside."""
        address = self.server.address
        config: dict = {
            "sources": {
                source: {
                    "host": address.host,
                    "port": address.port,
                    "database": self.server.database(source),
                    "user": address.user,
                    "table": self.data_set.table(source),
                }
                for source in SOURCES
            }
        }
        if batch:
            config["batch_config"] = self._batch_config()
        path = self.workdir / "tap.json"
        path.write_text(json.dumps(config))
        return [_executable("tap-manufacturing"), "--config", str(path)]

    def _target_argv(self, method: str) -> list[str]:
        """The target's command line, loading into `method`'s schema."""
        address = self.server.address
        config = {
            "host": address.host,
            "port": address.port,
            "database": self.server.warehouse,
            "user": address.user,
            "schema": SCHEMAS[method],
            **self.target_settings,
        }
        path = self.workdir / "target.json"
        path.write_text(json.dumps(config))
        return [_executable("target-warehouse-raw"), "--config", str(path)]

    def run_pipe(self, run: int, *, batch: bool) -> RunResult:
        """(b) tap | target, piped directly; peak RSS and CPU of each from wait4."""
        method = "pipe+batch" if batch else "pipe"
        tap_argv, target_argv = self._tap_argv(batch=batch), self._target_argv(method)
        tap_log, target_log = self.workdir / "tap.log", self.workdir / "target.log"
        started = time.perf_counter()
        with tap_log.open("wb") as tap_err, target_log.open("wb") as target_err:
            tap = subprocess.Popen(tap_argv, stdout=subprocess.PIPE, stderr=tap_err)
            target = subprocess.Popen(
                target_argv, stdin=tap.stdout, stdout=subprocess.DEVNULL, stderr=target_err
            )
            assert tap.stdout is not None
            tap.stdout.close()
            tap_usage = _wait(tap)
            target_usage = _wait(target)
        elapsed = time.perf_counter() - started
        if tap.returncode != 0 or target.returncode != 0:
            raise RuntimeError(
                f"pipe failed: tap exit {tap.returncode}, target exit {target.returncode}\n"
                f"tap: {_tail(tap_log)}\ntarget: {_tail(target_log)}"
            )
        return RunResult(
            method,
            run,
            elapsed,
            _cpu_s(tap_usage) + _cpu_s(target_usage),
            tap_rss_kib=tap_usage.ru_maxrss,
            target_rss_kib=target_usage.ru_maxrss,
            record_paths=record_paths(target_log.read_text(errors="replace")),
        )

    # -- the target alone ----------------------------------------------------------------------
    def capture_tap_output(self, *, escape_non_ascii: bool) -> None:
        """Untimed, before the series: the tap's output to a file, the `target` method's
        input (every non-ASCII character \\u-escaped with `escape_non_ascii`); taken again
        by `recapture_tap_output` after the sources changed."""
        self._escape_non_ascii = escape_non_ascii
        self._singer_file = singer_file.capture(
            self._tap_argv(batch=False), self.workdir / "tap-output.singer", escape=escape_non_ascii
        )

    def recapture_tap_output(self) -> None:
        """The sources changed: capture the tap's output again (if the series uses it)."""
        if self._escape_non_ascii is not None:
            self.capture_tap_output(escape_non_ascii=self._escape_non_ascii)

    def run_target(self, run: int) -> RunResult:
        """The target alone, reading the captured tap output from a file."""
        target_log = self.workdir / "target.log"
        started = time.perf_counter()
        with self._singer_file.open("rb") as stdin, target_log.open("wb") as target_err:
            target = subprocess.Popen(
                self._target_argv("target"),
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=target_err,
            )
            usage = _wait(target)
        elapsed = time.perf_counter() - started
        if target.returncode != 0:
            raise RuntimeError(f"target failed (exit {target.returncode}):\n{_tail(target_log)}")
        return RunResult(
            "target",
            run,
            elapsed,
            _cpu_s(usage),
            target_rss_kib=usage.ru_maxrss,
            record_paths=record_paths(target_log.read_text(errors="replace")),
        )

    # -- meltano run -------------------------------------------------------------------------
    def meltano_env(self, *, batch: bool = False) -> dict[str, str]:
        """The environment for Meltano: everything on the bench server, this data set's
        tables, the meltano schema; any pipeline variable the user has set is dropped."""
        env = demo_environment(self.server.address, project_dir=PROJECT_ROOT)
        address = self.server.address
        for source in SOURCES:
            prefix = source.upper()
            env[f"{prefix}_DB"] = self.server.database(source)
            env[f"{prefix}_USER"] = address.user
            env[f"{prefix}_TABLE"] = self.data_set.table(source)
        env.update(
            {
                "WAREHOUSE_DB": self.server.warehouse,
                "WAREHOUSE_USER": address.user,
                "WAREHOUSE_SCHEMA": SCHEMAS["meltano+batch" if batch else "meltano"],
                "MELTANO_DATABASE_URI": f"sqlite:///{self.workdir / 'meltano.db'}",
            }
        )
        for name, value in self.target_settings.items():
            env[f"TARGET_WAREHOUSE_RAW_{name.upper()}"] = value
        if batch:
            env["PIPELINE_BATCH_DIR"] = str(self.workdir / "batches")
        return env

    def install_meltano_plugins(self) -> None:
        """`meltano install` before the first run, so that no run pays for building plugins."""
        result = subprocess.run(
            [_executable("meltano"), "install"],
            cwd=PROJECT_ROOT,
            env=self.meltano_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"meltano install failed:\n{result.stderr[-3000:]}")

    def run_meltano(self, run: int, probe: RunProbe, *, batch: bool) -> RunResult:
        """(c) `meltano run tap-manufacturing target-warehouse-raw`; the plugins' peak RSS is
        sampled (Meltano starts them), the CPU is that of the whole process tree."""
        log = self.workdir / "meltano.log"
        started = time.perf_counter()
        with log.open("wb") as err:
            meltano = subprocess.Popen(
                [_executable("meltano"), "run", "tap-manufacturing", "target-warehouse-raw"],
                cwd=PROJECT_ROOT,
                env=self.meltano_env(batch=batch),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            probe.watch_client(meltano.pid)
            usage = _wait(meltano)
        elapsed = time.perf_counter() - started
        if meltano.returncode != 0:
            raise RuntimeError(f"meltano run failed:\n{_tail(log)}")
        return RunResult(
            "meltano+batch" if batch else "meltano",
            run,
            elapsed,
            _cpu_s(usage),
            record_paths=record_paths(log.read_text(errors="replace")),
        )

    def run(self, method: str, run: int, probe: RunProbe) -> RunResult:
        """One timed run of `method`."""
        batch = method.endswith("+batch")
        if method == "copy":
            return self.run_copy(run)
        if method == "target":
            return self.run_target(run)
        if method.startswith("pipe"):
            return self.run_pipe(run, batch=batch)
        result = self.run_meltano(run, probe, batch=batch)
        result.tap_rss_kib = probe.plugin_rss_kib.get("tap-manufacturing")
        result.target_rss_kib = probe.plugin_rss_kib.get("target-warehouse-raw")
        return result
