"""The target: name, settings and wiring. Behaviour lives in session.py and loader.py."""

from __future__ import annotations

import contextlib
import signal
import sys
import typing as t

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.sinks import BatchSink

from target_warehouse_raw.config import (
    LOAD_METHODS,
    SSL_MODES,
    ConfigError,
    drop_blank_environment,
    is_blank,
    nest_dotted_keys,
    parse_config,
)
from target_warehouse_raw.db import WarehouseUnreachableError
from target_warehouse_raw.errors import InterruptedError_, LoadError
from target_warehouse_raw.message_reader import WarehouseRawReader
from target_warehouse_raw.reader import Message
from target_warehouse_raw.rows import native_converter_built
from target_warehouse_raw.session import LoadSession

_SOURCE = th.ObjectType(
    th.Property("host", th.StringType, description="Source host (default localhost)."),
    th.Property("port", th.IntegerType, description="Source port (default 5432)."),
    th.Property("database", th.StringType, description="Database (default: the source name)."),
    th.Property("user", th.StringType, description="User (default postgres)."),
    th.Property("password", th.StringType, secret=True, description="Password."),
    th.Property(
        "sslmode",
        th.StringType,
        allowed_values=list(SSL_MODES),
        description="libpq sslmode (default: libpq's, prefer).",
    ),
    th.Property(
        "connect_timeout",
        th.IntegerType,
        description="Seconds to wait for a connection (default 10).",
    ),
    th.Property("schema", th.StringType, description="Schema (default public)."),
    th.Property("table", th.StringType, description="Table (default <name>_production)."),
    additional_properties=False,
)


def _without_blank_fields(sources: object) -> object:
    """Drop null/empty fields of each check source, so they validate and take defaults."""
    if not isinstance(sources, dict):
        return sources
    return {
        name: {k: v for k, v in fields.items() if not is_blank(v)}
        if isinstance(fields, dict)
        else fields
        for name, fields in sources.items()
    }


class WarehouseRawSink(BatchSink):
    """Never used: the target's own loader replaces the SDK's sink machinery (see README)."""

    def process_batch(self, context: dict) -> None:  # pragma: no cover
        """Not called."""
        raise NotImplementedError


class TargetWarehouseRaw(Target):
    """Loads any tap's streams into a PostgreSQL raw schema with COPY, replacing atomically."""

    name = "target-warehouse-raw"
    default_sink_class = WarehouseRawSink
    message_reader_class = WarehouseRawReader
    capabilities: t.ClassVar = [PluginCapabilities.ABOUT]

    config_jsonschema = th.PropertiesList(
        th.Property("host", th.StringType, title="Host", default="localhost",
                    description="Warehouse PostgreSQL host."),
        th.Property("port", th.IntegerType, title="Port", default=5432,
                    description="Warehouse PostgreSQL port."),
        th.Property("database", th.StringType, title="Database", default="warehouse",
                    description="Warehouse database name."),
        th.Property("user", th.StringType, title="User", default="postgres",
                    description="Warehouse user."),
        th.Property("password", th.StringType, title="Password", secret=True,
                    description="Warehouse password (never logged)."),
        th.Property("schema", th.StringType, title="Schema", default="raw",
                    description="Schema that receives one table per stream (created if missing)."),
        th.Property("sslmode", th.StringType, title="SSL mode",
                    allowed_values=["disable", "allow", "prefer", "require", "verify-ca",
                                    "verify-full"],
                    description="libpq sslmode for the warehouse connection."),
        th.Property("connect_timeout", th.IntegerType, title="Connect timeout", default=10,
                    description="Seconds to wait for the warehouse to accept a connection."),
        th.Property("load_method", th.StringType, title="Load method", default="auto",
                    allowed_values=list(LOAD_METHODS),
                    description="`auto`: each stream gets what fits it: a complete (full-table) "
                    "extract is replaced, a partial (incremental) one is upserted by key, or "
                    "appended when it has no key. `overwrite`: transactional replace of each "
                    "stream's table (readers see the old table until the new one is "
                    "committed); a partial extract is refused. `upsert`: insert or update by "
                    "key properties, last record per key wins. `append-only`: insert every "
                    "record."),
        th.Property("batch_size_rows", th.IntegerType, title="Batch size (rows)",
                    default=20_000, description="Most records landed per COPY batch (a "
                    "stream holds at most three batches: being read, queued, being loaded)."),
        th.Property("batch_size_bytes", th.IntegerType, title="Batch size (bytes)",
                    default=16 * 1024 * 1024,
                    description="Most bytes of record JSON buffered per batch; bounds memory."),
        th.Property("add_record_metadata", th.BooleanType, title="Add record metadata",
                    default=False,
                    description="Add the Singer `_sdc_*` metadata columns (SDK convention)."),
        th.Property("hard_delete", th.BooleanType, title="Hard delete", default=False,
                    description="upsert/append-only: on ACTIVATE_VERSION delete rows of older "
                    "versions instead of setting `_sdc_deleted_at`."),
        th.Property("lock_timeout", th.NumberType, title="Lock timeout", default=5,
                    description="Seconds a schema change (ALTER TABLE before a load) may wait "
                    "for its lock; bounds how long a reader can be blocked."),
        th.Property("ddl_retries", th.IntegerType, title="DDL retries", default=5,
                    description="Tries for a schema change that hits lock_timeout."),
        th.Property("strip_nul_characters", th.BooleanType, title="Strip NUL characters",
                    default=False,
                    description="Remove U+0000 from text and JSON values (PostgreSQL cannot "
                    "store it). Off: such a record is refused with an error."),
        th.Property("analyze_after_load", th.BooleanType, title="Analyze after load",
                    default=False,
                    description="Run ANALYZE on a table after replacing it (off: autovacuum "
                    "analyzes it after a large change)."),
        th.Property("progress_interval", th.NumberType, title="Progress interval", default=5,
                    description="Seconds between progress log lines per stream (0: off)."),
        th.Property("rename_legacy_names", th.BooleanType, title="Rename legacy names",
                    default=False,
                    description="A table or column that an earlier version created under a "
                    "changed name (`order_` for `order`, `customer_name` for `Customer Name`): "
                    "on, it is renamed to the source's name before the load; off, the stream is "
                    "refused with a message naming both names (never a second table or column)."),
        th.Property("check_sources", th.ObjectType(additional_properties=_SOURCE),
                    title="Check sources",
                    description="Only for `target-warehouse-raw-check`: source name -> "
                    "{host, port, database, user, password, sslmode, connect_timeout, schema, "
                    "table}; its row count is "
                    "compared with the warehouse table of the stream with that name."),
    ).to_dict()  # fmt: skip

    def __init__(self, **kwargs: t.Any) -> None:
        """Treat empty TARGET_WAREHOUSE_RAW_* variables as unset (Meltano exports unset $VARs)."""
        drop_blank_environment("TARGET_WAREHOUSE_RAW_")
        super().__init__(**kwargs)
        try:
            self.warehouse_config = parse_config(self.config)
        except ConfigError as exc:
            raise LoadError(str(exc)) from None
        self.session = LoadSession(self.warehouse_config, self._write_state_message)
        self.message_reader.on_failure = self.session.abort
        self.message_reader.on_end = self.session.finish
        self.message_reader.fast_records = self.session.fast_records
        if native_converter_built():
            self.logger.info("Record conversion: compiled (C)")
        else:
            self.logger.info(
                "Record conversion: Python (the C converter was not built at install: no C "
                "compiler; the same rows, at about twice the CPU per record)"
            )

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Blank values (null, "") mean "use the default", so drop them before validating."""
        config = {k: v for k, v in self._config.items() if v is not None and v != ""}
        if "check_sources" in config:
            config["check_sources"] = _without_blank_fields(
                nest_dotted_keys(config["check_sources"])
            )
        # The SDK reads number settings from the environment as strings: convert them.
        for key, schema in self.config_jsonschema["properties"].items():
            if isinstance(config.get(key), str) and "number" in str(schema.get("type")):
                with contextlib.suppress(ValueError):  # validation reports it
                    config[key] = float(config[key])
        self._config = config
        return super()._validate_config(raise_errors=raise_errors)

    # The reader hands over (line number, message struct) instead of dicts; see message_reader.
    def _process_schema_message(self, message: tuple[int, Message]) -> None:  # type: ignore[override]
        self.session.on_schema(*message)

    def _process_record_message(self, message: tuple[int, Message]) -> None:  # type: ignore[override]
        self.session.on_record(*message)

    def _process_state_message(self, message: tuple[int, Message]) -> None:  # type: ignore[override]
        self.session.on_state(*message)

    def _process_activate_version_message(self, message: tuple[int, Message]) -> None:  # type: ignore[override]
        self.session.on_activate_version(*message)

    def _process_batch_message(self, message: tuple[int, Message]) -> None:  # type: ignore[override]
        self.session.on_batch(*message)

    def process_endofpipe(self) -> None:
        """End of input: commit every stream, then write the last STATE (not the SDK's drain).

        Normally already done by the reader (`on_end`), inside its failure handling.
        """
        if self.session.finished:
            return
        try:
            self.session.finish()
        except BaseException as exc:
            error = self.session.abort(exc)
            if error is exc:
                raise
            raise error from None

    def _handle_termination(self, signum: int, frame: object) -> None:
        """SIGTERM/SIGINT: roll back, never drain-and-commit (the SDK's default would)."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise InterruptedError_(signum, signal.Signals(signum).name)

    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        """Run, and turn a failed load into one error line and the right exit code."""
        try:
            super().invoke(*args, **kwargs)
        except (LoadError, WarehouseUnreachableError) as exc:
            cls.logger.error("Load failed: %s", exc)
            sys.stderr.flush()
            sys.exit(getattr(exc, "exit_code", 1))


if __name__ == "__main__":
    TargetWarehouseRaw.cli()
