"""Connections to one source database, and the errors a user can act on."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.errors
import psycopg2.extensions

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
