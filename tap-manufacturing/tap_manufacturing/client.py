"""Connections to one source database, and the errors a user can act on."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from singer_sdk.sql import SQLConnector

from tap_manufacturing.config import SourceSettings

SESSION_SETUP = (
    "SET TimeZone = 'UTC'; SET IntervalStyle = 'iso_8601'; SET DateStyle = 'ISO'; "
    "SET extra_float_digits = 1"
)


class SourceError(RuntimeError):
    """An expected failure talking to a source: one clear line, no traceback, no password."""


def describe_error(source: SourceSettings, exc: BaseException, action: str) -> SourceError:
    """A SourceError naming the source and what went wrong, without the password."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if source.password:
        text = text.replace(source.password, "***")
    hint = ""
    if isinstance(exc, psycopg2.errors.InsufficientPrivilege):
        hint = f" (grant SELECT on {source.schema}.{source.table} to {source.user})"
    elif isinstance(exc, psycopg2.OperationalError) and action == "connect":
        hint = " (is the server running and are host, port, user and password right?)"
    return SourceError(f"{source.describe()}: cannot {action}: {text}{hint}")


@contextmanager
def connect(source: SourceSettings) -> Iterator[psycopg2.extensions.connection]:
    """A connection with the session settings every read relies on (UTC, ISO forms)."""
    try:
        connection = psycopg2.connect(**source.connect_kwargs())
        connection.set_client_encoding("UTF8")
    except psycopg2.Error as exc:
        raise describe_error(source, exc, "connect") from None
    try:
        with connection.cursor() as cursor:
            cursor.execute(SESSION_SETUP)
        connection.commit()
        yield connection
    finally:
        connection.close()


def prefetched(cursor: psycopg2.extensions.cursor, size: int) -> Iterator[list[tuple]]:
    """Batches of `size` rows from a server-side cursor, the next one fetched meanwhile.

    A FETCH makes the server render the next batch while this thread writes the current
    one, so the server and the tap work at the same time. At most three batches are in
    memory. The driver waits on the network without holding the GIL.
    """
    batches: queue.Queue[list[tuple] | BaseException] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item: list[tuple] | BaseException) -> None:
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def fetch_all() -> None:
        try:
            while not stop.is_set():
                batch = cursor.fetchmany(size)
                put(batch)
                if not batch:
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    reader = threading.Thread(target=fetch_all, name="tap-manufacturing-fetch", daemon=True)
    reader.start()
    try:
        while True:
            item = batches.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()
        reader.join()


class ManufacturingConnector(SQLConnector):
    """The SDK connector for one source; it carries that source's settings.

    The SDK's SQLStream expects a connector per stream. Reads and discovery go through
    psycopg2 directly (see `connect`), so this class only provides the SQLAlchemy URL.
    """

    allow_temp_tables = False
    allow_column_alter = False
    allow_merge_upsert = False

    def __init__(self, source: SourceSettings, config: dict[str, Any] | None = None) -> None:
        """Remember the source; the SDK's engine is only built if something asks for it."""
        self.source = source
        super().__init__(config=config or {})

    def get_sqlalchemy_url(self, config: dict[str, Any]) -> str:
        """The source's URL for SQLAlchemy (psycopg2 driver)."""
        import sqlalchemy as sa

        url = sa.engine.URL.create(
            "postgresql+psycopg2",
            username=self.source.user,
            password=self.source.password,
            host=self.source.host,
            port=self.source.port,
            database=self.source.database,
            query={"sslmode": self.source.sslmode},
        )
        return url.render_as_string(hide_password=False)
