"""Every setting of the target, declared once: name, type, title, default, description.

Defaults come from config.DEFAULTS (their one home); `--about` and the README settings tables
are generated from this declaration (`pen-factory readme-settings`).
"""

from __future__ import annotations

from singer_sdk import typing as th

from target_warehouse_raw.config import DEFAULTS, SSL_MODES, VACUUM_MODES
from target_warehouse_raw.load.methods import AUTO, METHODS

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
    th.Property(
        "slot_name",
        th.StringType,
        description="Replication slot the tap reads when the source is LOG_BASED (default "
        "tap_manufacturing_<name>); the check reports its lag.",
    ),
    additional_properties=False,
)


SETTINGS = th.PropertiesList(
    th.Property("host", th.StringType, title="Host", default=DEFAULTS.connection.host,
                description="Warehouse PostgreSQL host."),
    th.Property("port", th.IntegerType, title="Port", default=DEFAULTS.connection.port,
                description="Warehouse PostgreSQL port."),
    th.Property("database", th.StringType, title="Database",
                default=DEFAULTS.connection.database, description="Warehouse database name."),
    th.Property("user", th.StringType, title="User", default=DEFAULTS.connection.user,
                description="Warehouse user."),
    th.Property("password", th.StringType, title="Password", secret=True,
                description="Warehouse password (never logged)."),
    # No declared default: the SDK would fill it in, and then `default_target_schema` could
    # never be told apart from an unset `schema`.
    th.Property("schema", th.StringType, title="Schema",
                description="Schema that receives one table per stream (created if missing; "
                f"default: {DEFAULTS.schema})."),
    th.Property("default_target_schema", th.StringType, title="Default target schema",
                description="The SDK-conventional name of `schema` (either may be set; "
                "they must not disagree)."),
    th.Property("sslmode", th.StringType, title="SSL mode",
                allowed_values=list(SSL_MODES),
                description="libpq sslmode for the warehouse connection."),
    th.Property("connect_timeout", th.IntegerType, title="Connect timeout",
                default=DEFAULTS.connection.connect_timeout,
                description="Seconds to wait for the warehouse to accept a connection."),
    th.Property("load_method", th.StringType, title="Load method",
                default=DEFAULTS.load_method, allowed_values=[AUTO, *METHODS],
                description="`auto`: each stream gets what fits it: a complete (full-table) "
                "extract is replaced, a partial (incremental) one is upserted by key, or "
                "appended when it has no key, a change stream (LOG_BASED) has its changes "
                "applied (`apply-changes`). `overwrite`: transactional replace of each "
                "stream's table (readers see the old table until the new one is "
                "committed); a partial extract is refused. `upsert`: insert or update by "
                "key properties, last record per key wins. `append-only`: insert every "
                "record."),
    th.Property("stream_load_methods",
                th.ObjectType(additional_properties=th.StringType(
                    allowed_values=[AUTO, *METHODS])),
                title="Stream load methods",
                description="Per stream, a load method that overrides `load_method`: "
                "stream name -> method, e.g. {\"refills\": \"upsert\"}. A partial "
                "(incremental) stream is never replaced, whatever is set."),
    th.Property("batch_size_rows", th.IntegerType, title="Batch size (rows)",
                default=DEFAULTS.batch_size_rows,
                description="Most records landed per COPY batch (a stream holds at most three "
                "batches: being read, queued, being loaded)."),
    th.Property("batch_size_bytes", th.IntegerType, title="Batch size (bytes)",
                default=DEFAULTS.batch_size_bytes,
                description="Most bytes of record JSON buffered per batch; bounds memory."),
    th.Property("add_record_metadata", th.BooleanType, title="Add record metadata",
                default=DEFAULTS.add_record_metadata,
                description="Add the Singer `_sdc_*` metadata columns (SDK convention)."),
    th.Property("hard_delete", th.BooleanType, title="Hard delete",
                default=DEFAULTS.hard_delete,
                description="upsert/append-only: on ACTIVATE_VERSION delete rows of older "
                "versions instead of setting `_sdc_deleted_at`."),
    th.Property("mark_deleted_rows", th.BooleanType, title="Mark deleted rows",
                default=DEFAULTS.mark_deleted_rows,
                description="apply-changes (change streams): a row deleted at the source "
                "keeps its last values with `_sdc_deleted_at` set, instead of being removed."),
    th.Property("lock_timeout", th.NumberType, title="Lock timeout",
                default=DEFAULTS.lock_timeout,
                description="Seconds a schema change (ALTER TABLE before a load) may wait "
                "for its lock; bounds how long a reader can be blocked."),
    th.Property("ddl_retries", th.IntegerType, title="DDL retries",
                default=DEFAULTS.ddl_retries,
                description="Tries for a schema change that hits lock_timeout."),
    th.Property("strip_nul_characters", th.BooleanType, title="Strip NUL characters",
                default=DEFAULTS.strip_nul_characters,
                description="Remove U+0000 from text and JSON values (PostgreSQL cannot "
                "store it). Off: such a record is refused with an error."),
    th.Property("analyze_after_load", th.BooleanType, title="Analyze after load",
                default=DEFAULTS.analyze_after_load,
                description="Run ANALYZE on a table after replacing it (with `vacuum: "
                "after-load`, in the same pass; off: autovacuum analyzes it after a large "
                "change)."),
    th.Property("vacuum", th.StringType, title="Vacuum", default=DEFAULTS.vacuum,
                allowed_values=list(VACUUM_MODES),
                description="When the target vacuums the tables it loaded, so that the dead rows "
                "of every replace are reused instead of piling up where autovacuum is off or "
                "slower than the loads: `after-load` (once every stream is committed), "
                "`before-load` (before the table's next load) or `off`. VACUUM never blocks "
                "readers or writers and never truncates the table."),
    th.Property("progress_interval", th.NumberType, title="Progress interval",
                default=DEFAULTS.progress_interval,
                description="Seconds between progress log lines per stream (0: off)."),
    th.Property("rename_legacy_names", th.BooleanType, title="Rename legacy names",
                default=DEFAULTS.rename_legacy_names,
                description="A table or column that an earlier version created under a "
                "changed name (`order_` for `order`, `customer_name` for `Customer Name`): "
                "on, it is renamed to the source's name before the load; off, the stream is "
                "refused with a message naming both names (never a second table or column)."),
    th.Property("check_sources", th.ObjectType(additional_properties=_SOURCE),
                title="Check sources",
                description="Only for `target-warehouse-raw-check`: source name -> "
                "{host, port, database, user, password, sslmode, connect_timeout, schema, "
                "table, slot_name}; its row count is compared with the warehouse table of the "
                "stream with that name, and its replication slot's lag is reported."),
    th.Property("check_max_slot_lag_mb", th.NumberType, title="Check: maximum slot lag",
                default=DEFAULTS.check_max_slot_lag_mb,
                description="Only for `target-warehouse-raw-check`: the check exits 1 when "
                "a source's replication slot holds more than this many MB of WAL not yet "
                "confirmed (changes the pipeline has not loaded; the source keeps that WAL "
                "on disk)."),
).to_dict()  # fmt: skip
