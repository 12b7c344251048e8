"""The session's control connection: autocommit, for load-history bookkeeping and type lookups.

Separate from every stream's own connection, so a history row ("running", "failed") and a
type lookup never wait for, or join, a stream's data transaction.
"""

from __future__ import annotations

import contextlib
import logging

import psycopg2
import psycopg2.extensions

from target_warehouse_raw.config import ConnectionSettings
from target_warehouse_raw.schema.columns import TypeInfo
from target_warehouse_raw.warehouse import history
from target_warehouse_raw.warehouse.db import connect

logger = logging.getLogger("target-warehouse-raw")

_TYPE_SQL = """SELECT t.typname, t.typcategory, e.typname FROM pg_type t
   LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
   WHERE t.oid = to_regtype(%s)"""


class ControlConnection:
    """Opened on first use; creates the schema and the history table then."""

    def __init__(self, settings: ConnectionSettings, schema: str) -> None:
        self._settings = settings
        self._schema = schema
        self._conn: psycopg2.extensions.connection | None = None
        self._types: dict[str, TypeInfo | None] = {}

    def cursor(self) -> psycopg2.extensions.cursor:
        """A cursor on the (autocommit) control connection."""
        if self._conn is None:
            self._conn = connect(self._settings, None, "control")
            self._conn.autocommit = True
            with self._conn.cursor() as cursor:
                history.ensure_history(cursor, self._schema)
        return self._conn.cursor()

    def resolve_type(self, type_text: str) -> TypeInfo | None:
        """Is `type_text` a real type in the warehouse? (cached; safe against bad input)."""
        if type_text in self._types:
            return self._types[type_text]
        cursor = self.cursor()
        info = None
        try:
            cursor.execute(_TYPE_SQL, (type_text,))
            row = cursor.fetchone()
            if row is not None:
                # to_regtype ignores type modifiers: check the full text parses too.
                cursor.execute(f"SELECT NULL::{type_text}")
                info = TypeInfo(row[0], row[1], row[2])
        except psycopg2.Error:
            info = None
        if info is None:
            logger.warning("x-sql-datatype %r is not a type here; using JSON Schema", type_text)
        self._types[type_text] = info
        return info

    def close(self) -> None:
        """Close the connection (reopened if used again)."""
        if self._conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self._conn.close()
            self._conn = None
