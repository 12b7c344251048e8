"""One stream's table: its columns and keys, its connection, its schema evolution, its encoder.

Schema evolution of an existing table runs before the load in its own short transaction with
`lock_timeout` (the only moment a reader can wait, see schema/sync.py); a SCHEMA that changes
in the middle of a load that holds its transaction open is applied inside that transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence

import psycopg2
import psycopg2.extensions

from target_warehouse_raw.copy_text.encoder import CopyRowEncoder, PathCounts
from target_warehouse_raw.errors import LoadError
from target_warehouse_raw.load.context import LoadContext
from target_warehouse_raw.schema import legacy_names
from target_warehouse_raw.schema.columns import Column, kind_of
from target_warehouse_raw.schema.sync import (
    TableShape,
    TypeChangeRefused,
    changes,
    create_table_sql,
    live_types_kept,
    read_shape,
    run_short_ddl,
)
from target_warehouse_raw.warehouse.db import (
    advisory_key,
    connect,
    database_error,
    set_phase,
    table_sql,
)

logger = logging.getLogger("target-warehouse-raw")

MAX_COLUMNS = 1600  # PostgreSQL's limit per table


class StreamTable:
    """The table a stream loads into, reached through the stream's own connection."""

    def __init__(
        self,
        ctx: LoadContext,
        stream: str,
        table: str,
        columns: list[Column],
        keys: list[str],
        *,
        keyed: bool,
        line: int,
        every_property: bool = False,
    ) -> None:
        self.ctx = ctx
        self.stream = stream
        self.table = table
        self.table_sql = table_sql(ctx.cfg.schema, table)
        self.columns = columns
        self.keys = keys  # column names
        self.keyed = keyed  # the load method keeps a primary key on the key columns
        # The load method tells an absent property from a null one: the encoder's fast paths
        # then take only records that carry every property (see ApplyChanges).
        self.every_property = every_property
        self.schema_line = line
        self.lock_key = advisory_key(ctx.cfg.schema, table)
        self.kept_types: dict[str, str] = {}  # live column types that differ from the schema
        self.unsent: list[str] = []  # live columns the stream no longer sends (kept, NULL)
        self._vacuumed = False
        self._encoder: CopyRowEncoder | None = None
        self.paths = PathCounts()  # records the Python paths converted, every schema together
        self._check_width(columns, line)
        self.conn = connect(ctx.cfg.connection, stream, "prepare")
        self.cursor = self.conn.cursor()

    @property
    def ddl_keys(self) -> list[str]:
        """The primary key the table should have."""
        return self.keys if self.keyed else []

    # --- errors ------------------------------------------------------------------------------

    def error(self, exc: BaseException, line: int | None = None, doing: str = "") -> LoadError:
        """A database error on this stream's connection as one LoadError naming the stream."""
        return database_error(exc, self.conn, self.stream, line=line, doing=doing)

    @contextlib.contextmanager
    def errors(self, line: int | None = None, doing: str = "") -> Iterator[None]:
        """Turn a database error of the work inside into a LoadError."""
        try:
            yield
        except psycopg2.Error as exc:
            raise self.error(exc, line, doing) from None

    # --- schema ------------------------------------------------------------------------------

    def _check_width(self, columns: Sequence[Column], line: int) -> None:
        if len(columns) > MAX_COLUMNS:
            raise LoadError(
                f"the schema has {len(columns)} columns; PostgreSQL tables can have at most "
                f"{MAX_COLUMNS} columns",
                stream=self.stream,
                line=line,
            )

    def _changes(self, shape: TableShape, *, change_keys: bool) -> list[str]:
        """The DDL that makes the live table fit; a refused type change names this stream."""
        try:
            return changes(
                shape, self.table_sql, self.columns, self.ddl_keys, change_keys=change_keys
            )
        except TypeChangeRefused as exc:
            raise LoadError(str(exc), stream=self.stream, line=self.schema_line) from None

    def _legacy_renames(self) -> list[str]:
        """Renames of a table and columns that earlier versions named (legacy_names.py)."""
        try:
            return legacy_names.renames_for(
                self.cursor, self.ctx.cfg.schema, self.stream, self.table, self.columns,
                rename=self.ctx.cfg.rename_legacy_names,
            )  # fmt: skip
        except legacy_names.LegacyNamesFound as exc:
            raise LoadError(str(exc), stream=self.stream, line=self.schema_line) from None

    def prepare(self) -> None:
        """Evolve an existing table in its own short transaction, before loading (and with
        `vacuum: before-load`, vacuum it first, once per run); tables and columns that
        earlier versions named differently are renamed first, or refused."""
        cfg = self.ctx.cfg
        run_short_ddl(
            self.conn,
            self._legacy_renames(),
            lock_timeout=cfg.lock_timeout,
            retries=cfg.ddl_retries,
            stream=self.stream,
        )
        shape = read_shape(self.cursor, self.table_sql)
        self.conn.commit()
        self.kept_types = live_types_kept(shape, self.columns)
        if shape is None:
            return
        if self.ctx.cfg.vacuum == "before-load" and not self._vacuumed:
            self._vacuumed = True
            self.vacuum()
        self._note_unsent(shape)
        statements = self._changes(shape, change_keys=False)
        run_short_ddl(
            self.conn,
            statements,
            lock_timeout=cfg.lock_timeout,
            retries=cfg.ddl_retries,
            stream=self.stream,
        )

    def _note_unsent(self, shape: TableShape) -> None:
        """Columns the stream no longer sends stay: views, grants and dbt models may read
        them, and their old values are history a user can still query; rows written from now
        on hold NULL there. Said once per run, and kept in the load history's notes."""
        sent = {column.name for column in self.columns}
        unsent = [
            name for name in shape.columns if name not in sent and not name.startswith("_sdc_")
        ]
        if unsent and unsent != self.unsent:
            logger.warning(
                "Stream '%s': column(s) %s of %s are no longer in the stream's schema (dropped "
                "at the source?): kept, NULL in the rows this run writes",
                self.stream,
                ", ".join(f'"{name}"' for name in unsent),
                self.table_sql,
            )
        self.unsent = unsent

    def notes(self) -> str | None:
        """What the load history should say about the table besides the row count."""
        if not self.unsent:
            return None
        names = ", ".join(self.unsent)
        return f"columns no longer sent by the stream, kept and NULL in new rows: {names}"

    def change_schema(self, columns: list[Column], keys: list[str], line: int) -> bool:
        """A new SCHEMA for this stream; False when nothing changed."""
        if columns == self.columns and keys == self.keys:
            return False
        self._check_width(columns, line)
        self.schema_line = line
        self.columns = columns
        self.keys = keys
        self._encoder = None
        return True

    def add_column(self, column: Column) -> None:
        """A column the target adds itself (e.g. `_sdc_table_version`), in the next prepare."""
        self.columns = [*self.columns, column]
        self._encoder = None

    def alter_inside(self, line: int) -> None:
        """Apply the current schema inside the open transaction (a mid-load SCHEMA change)."""
        for statement in self._legacy_renames():
            self.cursor.execute(statement)
        shape = read_shape(self.cursor, self.table_sql)
        self.kept_types = live_types_kept(shape, self.columns)
        if shape is not None:
            self._note_unsent(shape)
        statements = self._changes(shape, change_keys=True) if shape is not None else []
        if statements:
            logger.warning(
                "Stream '%s': schema changed mid-load (input line %d); changing the table "
                "inside the load's transaction",
                self.stream,
                line,
            )
        for statement in statements:
            self.cursor.execute(statement)

    # --- inside a load's transaction -----------------------------------------------------------

    def lock(self) -> None:
        """The table's advisory lock: two loads of one table never interleave."""
        cursor = self.cursor
        set_phase(cursor, self.stream, "lock")
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", (self.lock_key,))
        if not cursor.fetchone()[0]:
            logger.info(
                "Stream '%s': another load of %s is running; waiting for it to finish",
                self.stream,
                self.table_sql,
            )
            set_phase(cursor, self.stream, "wait-lock")
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))

    def create_and_fit(self, *, change_keys: bool) -> None:
        """CREATE TABLE if it is new, then the DDL a concurrent run may have made necessary."""
        self.cursor.execute(create_table_sql(self.table_sql, self.columns, self.ddl_keys))
        self.fit(change_keys=change_keys)

    def fit(self, *, change_keys: bool) -> None:
        """Inside the transaction: the DDL that makes the live table fit the schema."""
        shape = read_shape(self.cursor, self.table_sql)
        if shape is None:  # pragma: no cover - created just before
            return
        for statement in self._changes(shape, change_keys=change_keys):
            self.cursor.execute(statement)

    # --- rows --------------------------------------------------------------------------------

    def encoder(self) -> CopyRowEncoder:
        """Record -> COPY line for the current columns (built once per schema)."""
        if self._encoder is None:
            columns = []
            for column in self.columns:
                live = self.kept_types.get(column.name)
                info = self.ctx.resolve_type(live) if live else None
                if info is not None:
                    column = dataclasses.replace(column, kind=kind_of(info, {}))
                if self.every_property and not column.metadata:
                    column = self._for_changes(column)
                columns.append(column)
            self._encoder = CopyRowEncoder(
                columns,
                self.ctx.row_params,
                stream=self.stream,
                strip_nul_characters=self.ctx.cfg.strip_nul_characters,
                counts=self.paths,
            )
        return self._encoder

    def vacuum(self, *, analyze: bool = False, vacuum: bool = True) -> None:
        """VACUUM (TRUNCATE false) and/or ANALYZE the table, outside any transaction."""
        if vacuum:
            options = "(TRUNCATE false, ANALYZE)" if analyze else "(TRUNCATE false)"
            statement, phase = f"VACUUM {options} {self.table_sql}", "vacuum"
        else:
            statement, phase = f"ANALYZE {self.table_sql}", "analyze"
        self.conn.autocommit = True
        try:
            if self.conn.server_version >= 150000:
                # The load's row counts are still pending in this backend, and would reach
                # the statistics after VACUUM's own counts, adding to them (a table just
                # vacuumed would show its old rows as dead): flush them first, at the idle
                # moment after this statement.
                self.cursor.execute("SELECT pg_stat_force_next_flush()")
            set_phase(self.cursor, self.stream, phase)
            started = time.perf_counter()
            self.cursor.execute(statement)
            logger.info(
                "Stream '%s': %s of %s %.2f s",
                self.stream, phase, self.table_sql, time.perf_counter() - started,
            )  # fmt: skip
        finally:
            self.conn.autocommit = False

    @staticmethod
    def _for_changes(column: Column) -> Column:
        """A change-stream column: every record carries it (absent means "keep"), and a
        delete carries null in every column but the key, whatever the source's NOT NULL."""
        types = column.json_types
        if types is not None and not column.key:
            types = types | {"null"}
        return dataclasses.replace(column, required=True, json_types=types)

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(psycopg2.Error):
            self.conn.close()
