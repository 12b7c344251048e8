"""TapManufacturing: declares the settings and wires one stream per source database."""

from __future__ import annotations

import copy
import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from tap_manufacturing.client import SourceError, connect
from tap_manufacturing.config import (
    DEFAULT_FETCH_SIZE,
    DEFAULT_LOG_BASED_MAX_WAIT,
    DEFAULT_PROGRESS_INTERVAL,
    DEFAULT_SOURCES,
    DEFAULT_STATE_INTERVAL,
    ConfigError,
    TapSettings,
    default_replication_name,
    parse_settings,
)
from tap_manufacturing.discovery import TableNotFound, catalog_entry, describe_table
from tap_manufacturing.output import SingerOutput
from tap_manufacturing.streams import ManufacturingStream

try:  # Python 3.12+
    from typing import override
except ImportError:  # pragma: no cover
    from typing_extensions import override


_NUMBER = th.CustomType({"type": ["number", "string", "null"]})
"""A number, or a numeric string (parse_settings reads both)."""


def _source_properties(name: str) -> th.ObjectType:
    """The settings of one source (`name` only shapes the descriptions)."""
    return th.ObjectType(
        th.Property("host", th.StringType, title="Host",
                    description="Server host name or address (default: localhost)."),
        th.Property("port", th.CustomType({"type": ["integer", "string", "null"]}), title="Port",
                    description="Server port; a number or a numeric string (default: 5432)."),
        th.Property("database", th.StringType, title="Database",
                    description=f"Database name (default: the source name, e.g. `{name}`)."),
        th.Property("user", th.StringType, title="User",
                    description="User to connect as (default: postgres)."),
        th.Property("password", th.StringType, title="Password", secret=True,
                    description="Password of the user (default: none, e.g. trust or .pgpass)."),
        th.Property("schema", th.StringType, title="Schema",
                    description="Schema of the table to read (default: public)."),
        th.Property("table", th.StringType, title="Table",
                    description=f"Table to read (default: `<source>_production`, e.g. "
                                f"`{name}_production`)."),
        th.Property("sslmode", th.StringType, title="SSL mode",
                    description="libpq sslmode: disable, allow, prefer, require, verify-ca or "
                                "verify-full (default: prefer)."),
        th.Property("connect_timeout", th.CustomType({"type": ["integer", "string", "null"]}),
                    title="Connect timeout",
                    description="Seconds to wait for a connection (default: 10)."),
        th.Property("replication_method", th.StringType, title="Replication method",
                    description="FULL_TABLE (default), INCREMENTAL or LOG_BASED (change data "
                                "capture from the write-ahead log). A catalog's "
                                "`replication-method` metadata takes precedence."),
        th.Property("replication_key", th.StringType, title="Replication key",
                    description="Column for INCREMENTAL replication, e.g. updated_at."),
        th.Property("slot_name", th.StringType, title="Replication slot",
                    description="LOG_BASED: the source's replication slot, created when missing "
                                f"(default: `tap_manufacturing_<source>`, e.g. "
                                f"`{default_replication_name(name)}`)."),
        th.Property("publication_name", th.StringType, title="Publication",
                    description="LOG_BASED: the publication of the table, created when missing "
                                f"(default: `tap_manufacturing_<source>`, e.g. "
                                f"`{default_replication_name(name)}`)."),
    )  # fmt: skip


# A plain SDK Tap, not the SDK's SQLTap: that class assumes one database and one SQLAlchemy
# connector, and importing it costs about 0.15 s per start (see streams.py). What it adds is
# kept here: the catalog comes from the databases (`dynamic_catalog`, `catalog_dict`) and
# streams are built from catalog entries (`discover_streams`). The class docstring is the
# tap's `--about` description.
class TapManufacturing(Tap):
    """Singer tap for the pen factory's production databases (one stream per source)."""

    name = "tap-manufacturing"
    default_stream_class = ManufacturingStream
    message_writer_class = SingerOutput
    dynamic_catalog = True
    """The catalog is read from the databases: `--discover` validates the config first."""
    capabilities = Tap.capabilities
    """Everything the SDK offers. BATCH (`batch_config`): JSON Lines files, plain or gzip,
    in a local folder, written by the fast path itself (see output.py)."""

    config_jsonschema = th.PropertiesList(
        th.Property(
            "sources",
            th.ObjectType(
                *(th.Property(source, _source_properties(source), title=f"{source} source",
                              description=f"Connection and table of the `{source}` source.")
                  for source in DEFAULT_SOURCES),
                additional_properties=_source_properties("<source>"),
            ),
            title="Sources",
            description=(
                "Source databases keyed by source name; each becomes the stream of that name. "
                "When absent, the sources refills, bodies and springs with all defaults. Add a "
                "production line by adding one more key (e.g. `pencils`) with the same settings."
            ),
        ),
        th.Property(
            "only_sources",
            th.ArrayType(th.StringType),
            title="Only these sources",
            description=(
                "Names of the sources to read; the other blocks of `sources` are ignored (not "
                "validated, never connected to). Unset: every source. Meltano's per-source "
                "plugins (`tap-manufacturing--refills`, ...) set it, so one unreachable source "
                "cannot fail another's run."
            ),
        ),
        th.Property("fetch_size", th.IntegerType, default=DEFAULT_FETCH_SIZE, title="Fetch size",
                    description="Rows per fetch from the server-side cursor."),
        # Number-or-string: Meltano passes a `kind: decimal` setting set by a variable
        # nowhere (it cannot serialise it), so meltano.yml declares these as strings.
        th.Property("progress_interval", _NUMBER, default=DEFAULT_PROGRESS_INTERVAL,
                    title="Progress log interval",
                    description="Seconds between progress log lines of a long stream; a number "
                                "or a numeric string."),
        th.Property("state_interval", th.IntegerType, default=DEFAULT_STATE_INTERVAL,
                    title="State interval",
                    description="For INCREMENTAL and LOG_BASED streams: emit a STATE message "
                                "about every this many rows, so an interrupted run resumes "
                                "from there."),
        th.Property("log_based_max_wait", _NUMBER, default=DEFAULT_LOG_BASED_MAX_WAIT,
                    title="LOG_BASED maximum wait",
                    description="LOG_BASED streams read the changes up to the source's WAL "
                                "position at the start of the run; if the server sends nothing "
                                "at all for this many seconds before that, the run ends at the "
                                "last whole transaction (the next run goes on from there); a "
                                "number or a numeric string."),
        th.Property("json_as_text", th.BooleanType, default=False, title="JSON as text",
                    description="json and jsonb columns travel as strings holding the "
                                "source's exact JSON text (schema: `contentMediaType` "
                                "application/json, `x-sql-datatype` json or jsonb), so a JSON "
                                "null stays distinct from SQL NULL and json keeps whitespace, "
                                "key order and duplicate keys. Off: the JSON value itself, as "
                                "any Singer target expects."),
    ).to_dict()  # fmt: skip

    _settings: TapSettings | None = None

    def __init__(self, *, catalog: Any = None, **kwargs: Any) -> None:
        """Keep the input catalog as given: the SDK's parsed catalog drops metadata it does
        not model (`replication-method`, `sql-datatype`, ...), which streams need."""
        self._raw_catalog = copy.deepcopy(catalog) if isinstance(catalog, Mapping) else None
        self._catalog_dict: dict | None = None
        super().__init__(catalog=catalog, **kwargs)

    @property
    def settings(self) -> TapSettings:
        """The validated, frozen settings of this run."""
        if self._settings is None:
            self._settings = parse_settings(self.config)
        return self._settings

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Run the SDK's JSON Schema checks, then ours (they name source and setting)."""
        errors = super()._validate_config(raise_errors=raise_errors)
        try:
            self._settings = parse_settings(self.config)
        except ConfigError as exc:
            if raise_errors:
                raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
            errors.append(str(exc))
        return errors

    @override
    @property
    def catalog_dict(self) -> dict:
        """One entry per configured source, from its one table (the SDK assumes one database)."""
        if self._catalog_dict is not None:
            return self._catalog_dict
        if self._raw_catalog is not None:
            return self._raw_catalog
        if self.input_catalog:
            return self.input_catalog.to_dict()
        entries = []
        for source in self.settings.sources:
            with connect(source) as connection:
                try:
                    table = describe_table(connection, source)
                except TableNotFound as exc:
                    raise SourceError(f"{source.describe()}: {exc}") from None
            entries.append(catalog_entry(source, table, json_as_text=self.settings.json_as_text))
        self._catalog_dict = {"streams": entries}
        return self._catalog_dict

    @override
    def discover_streams(self) -> Sequence[Stream]:
        """One stream per catalog entry, each bound to its own source."""
        streams = []
        for entry in self.catalog_dict["streams"]:
            try:
                source = self.settings.source(entry["tap_stream_id"])
            except ConfigError as exc:
                raise SourceError(str(exc)) from None
            streams.append(self.default_stream_class(self, entry, source))
        return streams

    @classmethod
    @override
    def get_singer_command(cls) -> click.Command:
        """The SDK's command, with expected source errors reported as one clean line."""
        command = super().get_singer_command()
        command.callback = _clean_exit(command.callback)
        for param in command.params:
            if param.name in ("discover", "test") and param.callback is not None:
                param.callback = _clean_exit(param.callback)
        return command


def _clean_exit(function: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a SourceError into one error line on stderr and exit code 1 (no traceback)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except SourceError as exc:
            sys.stdout.flush()
            TapManufacturing.logger.error("%s", exc)
            sys.exit(1)

    return wrapper
