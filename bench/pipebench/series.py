"""A series of runs on one warehouse, and what is checked and measured around each run.

Every series starts from an empty warehouse (the methods' schemas are dropped), so run 1 is
a user's first load and every later run replaces tables that already hold the same rows,
which is what users live with. Within a run the methods go one after the other, the raw
copy first, so a noisy shared machine hurts all methods of a round alike and each method's
ratio is taken against the copy of its own round.

Two conditions between runs (and, with `--change-percent P`, P % of each source table's rows
updated before every run after the first, so that a replace has changes to write):
  steady state (`--runs N`)  only a CHECKPOINT: dead rows left by a replace stay until the
                             product or autovacuum reclaims them, exactly as on a server with
                             autovacuum off or with loads faster than autovacuum;
  rounds (`--rounds N`)      VACUUM of the method's tables and a CHECKPOINT: every run starts
                             from the tidy server an eager autovacuum would leave (the
                             benchmark's earlier mode, kept for comparison).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from psycopg2 import sql

from pen_factory.demo_data import SOURCES
from pipebench.datasets import DataSet, change_sources
from pipebench.methods import SCHEMAS, Runner, RunResult
from pipebench.probes import RunProbe
from pipebench.server import BenchServer

Checksum = tuple[int, Decimal]


def checksum(server: BenchServer, database: str, table: sql.Composable) -> Checksum:
    """Row count and an order-independent sum of the rows' text hashes (UTC session)."""
    with server.autocommit(database) as cursor:
        cursor.execute(
            sql.SQL(
                "SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 15))::bit(60)::bigint),"
                " 0) FROM {} AS t"
            ).format(table)
        )
        count, digest = cursor.fetchone()
        return int(count), Decimal(digest)


class Series:
    """Runs `methods` (after the raw copy) `runs` times over one warehouse."""

    def __init__(
        self,
        server: BenchServer,
        data_set: DataSet,
        runner: Runner,
        rows: int,
        *,
        vacuum_between: bool,
        change_percent: float = 0.0,
    ) -> None:
        self.server = server
        self.data_set = data_set
        self.runner = runner
        self.rows = rows
        self.vacuum_between = vacuum_between
        self.change_percent = change_percent
        self._source_checksums: dict[str, Checksum] = {}

    def run(
        self, methods: list[str], runs: int, progress: Callable[[RunResult], None]
    ) -> list[RunResult]:
        """Every run of every method, in the order they ran."""
        self.runner.prepare_copy_tables()
        for method in methods:
            self.server.reset_schema(SCHEMAS[method])
        postmaster = self.server.postmaster_pid()
        results: list[RunResult] = []
        for run in range(1, runs + 1):
            if run > 1 and self.change_percent:
                change_sources(self.server, self.data_set, self.change_percent, run)
                self._source_checksums.clear()
                self.runner.recapture_tap_output()
            copy_wall = 0.0
            for method in ("copy", *methods):
                schema = SCHEMAS[method]
                self.server.settle(schema, vacuum=self.vacuum_between)
                lsn = self.server.wal_lsn()
                with RunProbe(postmaster, self.server.databases()) as probe:
                    result = self.runner.run(method, run, probe)
                result.wal_bytes = self.server.wal_bytes_since(lsn)
                result.server_cpu_s = probe.server_cpu_s
                self.verify(method, full=run in (1, runs))
                result.tables = self.server.table_stats(schema, SOURCES)
                if method == "copy":
                    copy_wall = result.wall_s
                result.ratio = result.wall_s / copy_wall
                results.append(result)
                progress(result)
        return results

    def verify(self, method: str, *, full: bool) -> None:
        """Every row landed (each run); with `full`, every value too (first and last run).

        The full check compares an order-independent checksum of the rows' text in the
        source and in the warehouse: the escapes, multi-byte text, jsonb and NULLs of the
        realistic data arrive unchanged, or the bench stops.
        """
        schema = SCHEMAS[method]
        with self.server.autocommit(self.server.warehouse) as cursor:
            for source in SOURCES:
                cursor.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, source))
                )
                landed = cursor.fetchone()[0]
                if landed != self.rows:
                    raise RuntimeError(f"{schema}.{source} holds {landed} rows, not {self.rows}")
        if full:
            for source in SOURCES:
                expected = self._source_checksum(source)
                found = checksum(self.server, self.server.warehouse, sql.Identifier(schema, source))
                if found != expected:
                    raise RuntimeError(
                        f"{schema}.{source} differs from its source table "
                        f"(rows, checksum {found} against {expected})"
                    )
        batches = self.runner.workdir / "batches"
        left = list(batches.glob("*")) if batches.is_dir() else []
        if left:
            raise RuntimeError(f"{method}: {len(left)} batch file(s) left behind")

    def _source_checksum(self, source: str) -> Checksum:
        if source not in self._source_checksums:
            table = sql.Identifier("public", self.data_set.table(source))
            self._source_checksums[source] = checksum(
                self.server, self.server.database(source), table
            )
        return self._source_checksums[source]
