"""A database on the test server: queries in fresh connections, tables, checksums, sessions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions


def run_sql(dsn: str, *statements: str, params: Any = None) -> None:
    """Run statements in one transaction."""
    connection = psycopg2.connect(dsn)
    try:
        with connection, connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement, params)
    finally:
        connection.close()


def admin_execute(dsn: str, sql: str) -> None:
    """One statement outside any transaction (CREATE DATABASE, DROP DATABASE, ...)."""
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def query(dsn: str, sql: str, params: Any = None) -> list[tuple]:
    """Rows of one query."""
    connection = psycopg2.connect(dsn)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


@dataclass
class Db:
    """One database on the test server, queried in fresh UTC connections; `schema` is the
    warehouse schema its table helpers look in."""

    dsn: str
    schema: str = "raw"

    def connect(self) -> psycopg2.extensions.connection:
        """A connection in UTC, named so that tests can tell it from the plugins'."""
        conn = psycopg2.connect(self.dsn, application_name="pipeline-tests")
        with conn.cursor() as cursor:
            cursor.execute("SET TimeZone = 'UTC'")
        conn.commit()
        return conn

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """All rows of one query (none for a statement)."""
        conn = self.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            conn.commit()
            conn.close()

    def execute(self, sql: str) -> None:
        """Run statements in autocommit."""
        admin_execute(self.dsn, sql)

    def table(self, name: str, order: str = "1") -> list[tuple]:
        """All rows of <schema>.<name>, ordered."""
        return self.query(f'SELECT * FROM "{self.schema}"."{name}" ORDER BY {order}')

    def columns(self, name: str) -> list[tuple[str, str]]:
        """(column, format_type) of <schema>.<name>, in order."""
        return self.query(
            """SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
               WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped
               ORDER BY attnum""",
            (f'"{self.schema}"."{name}"',),
        )

    def tables(self) -> list[str]:
        """Tables of the warehouse schema, without the load history."""
        rows = self.query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname <> '_load_history' "
            "ORDER BY 1",
            (self.schema,),
        )
        return [name for (name,) in rows]

    def checksum(self, table: str) -> tuple[int, str]:
        """(rows, md5 of every row's text form in a stable order) of one table."""
        qualified = f'"{self.schema}"."{table}"'
        ((rows, digest),) = self.query(
            f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
            f"FROM {qualified} t"
        )
        return int(rows), str(digest)

    def snapshot(self) -> dict[str, tuple[int, str]]:
        """Checksum of every table in the schema."""
        return {table: self.checksum(table) for table in self.tables()}

    def history(self) -> list[tuple]:
        """(stream, status, rows, error) of the load history, oldest first."""
        return self.query(
            f'SELECT stream, status, rows, error FROM "{self.schema}"._load_history ORDER BY id'
        )

    def backends(self, pattern: str) -> list[tuple[int, str, str | None, str, str]]:
        """(pid, application_name, wait_event_type, query, state) of sessions LIKE pattern,
        in this database only: other test runs on the same server have sessions of that name."""
        return self.query(
            "SELECT pid, application_name, wait_event_type, query, state FROM pg_stat_activity "
            "WHERE application_name LIKE %s AND pid <> pg_backend_pid() "
            "AND datname = current_database()",
            (pattern,),
        )
