"""Errors that end a load: each names the stream, the input line and the problem."""

from __future__ import annotations

from singer_sdk.exceptions import MissingKeyPropertiesError, RecordsWithoutSchemaException


def describe(stream: str | None, line: int | None, column: str | None, problem: str) -> str:
    """`stream 'X', input line N, column 'c': problem` (parts that are unknown are left out)."""
    parts = []
    if stream is not None:
        parts.append(f"stream '{stream}'")
    if line is not None:
        parts.append(f"input line {line}")
    if column is not None:
        parts.append(f"column '{column}'")
    where = ", ".join(parts)
    return f"{where}: {problem}" if where else problem


class LoadError(Exception):
    """The load cannot go on; nothing of the unfinished work is committed."""

    exit_code = 1
    status = "failed"

    def __init__(
        self,
        problem: str,
        *,
        stream: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.problem = problem
        self.stream = stream
        self.line = line
        self.column = column
        super().__init__(describe(stream, line, column, problem))


class RecordBeforeSchemaError(LoadError, RecordsWithoutSchemaException):
    """A RECORD for a stream whose SCHEMA has not been seen."""


class MissingKeyError(LoadError, MissingKeyPropertiesError):
    """A record lacks (or has null for) one of its stream's key properties."""


class InterruptedError_(LoadError):
    """SIGTERM or SIGINT arrived: roll back and exit 143 / 130."""

    status = "interrupted"

    def __init__(self, signum: int, signame: str) -> None:
        super().__init__(f"interrupted by {signame}; nothing of the unfinished load is committed")
        self.exit_code = 128 + signum
