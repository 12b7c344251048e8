"""Turn the plugin's config mapping into one frozen, typed object (pure, no database).

Meltano turns an unset `$VAR` in `meltano.yml` into an empty string or null, so every setting
treats absent, null and empty string alike: the default applies. Every default lives in the
dataclasses below (DEFAULTS); the settings declaration (target.py) shows the same values.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
VACUUM_MODES = ("after-load", "before-load", "off")
"""When the target vacuums a table it loaded (see the target README, "Dead rows")."""
"""libpq's sslmode values (the tap, a separate package, declares its own copy)."""


class ConfigError(ValueError):
    """A setting has a value the target cannot use (the message never shows secrets)."""


def is_blank(value: object) -> bool:
    """True for values that mean "not set": absent, null or an empty/whitespace string."""
    return value is None or (isinstance(value, str) and not value.strip())


def without_blanks(config: Mapping[str, Any]) -> dict[str, Any]:
    """Drop settings whose value is blank, so defaults apply."""
    return {key: value for key, value in config.items() if not is_blank(value)}


def nest_dotted_keys(value: object) -> object:
    """`{"refills.host": "db1"}` -> `{"refills": {"host": "db1"}}`; other values unchanged.

    Meltano hands a plugin *command* its config only as environment variables, and exports an
    object setting whose nested settings are declared (`check_sources.refills.host`) as one
    JSON object with dotted keys. Nesting them again gives the shape the settings declare.
    The tap's logical/admin.py holds the same function: the two plugins are separate
    distributions and share no package.
    """
    if not isinstance(value, Mapping):
        return value
    nested: dict[str, Any] = {}
    for key, item in value.items():
        head, dot, rest = str(key).partition(".")
        if not dot:
            if isinstance(nested.get(head), dict) and isinstance(item, Mapping):
                nested[head].update(item)
            else:
                nested[head] = nest_dotted_keys(item)
            continue
        branch = nested.setdefault(head, {})
        if isinstance(branch, dict):
            deeper = nest_dotted_keys({rest: item})
            assert isinstance(deeper, dict)
            for deep_key, deep_value in deeper.items():
                if isinstance(branch.get(deep_key), dict) and isinstance(deep_value, dict):
                    branch[deep_key].update(deep_value)
                else:
                    branch[deep_key] = deep_value
    return nested


def drop_blank_environment(prefix: str, environ: MutableMapping[str, str] | None = None) -> None:
    """Remove empty `<PREFIX>*` variables: an empty variable means "unset", not "".

    The SDK parses `TARGET_WAREHOUSE_RAW_PORT=""` with int() and would crash.
    """
    environ = os.environ if environ is None else environ
    for key in [k for k, v in environ.items() if k.startswith(prefix) and not v.strip()]:
        del environ[key]


def _int(config: Mapping[str, Any], key: str, default: int, minimum: int = 0) -> int:
    value = config.get(key)
    if is_blank(value):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting '{key}' must be an integer") from None
    if number < minimum:
        raise ConfigError(f"setting '{key}' must be at least {minimum}")
    return number


def _float(config: Mapping[str, Any], key: str, default: float) -> float:
    value = config.get(key)
    if is_blank(value):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting '{key}' must be a number") from None
    if number < 0:
        raise ConfigError(f"setting '{key}' must not be negative")
    return number


def _str(config: Mapping[str, Any], key: str, default: str | None) -> str | None:
    value = config.get(key)
    return default if is_blank(value) else str(value)


def _choice(config: Mapping[str, Any], key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _str(config, key, default) or default
    if value not in allowed:
        raise ConfigError(f"setting '{key}' must be one of {', '.join(allowed)}")
    return value


def _bool(config: Mapping[str, Any], key: str, default: bool) -> bool:
    value = config.get(key)
    if is_blank(value):
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return bool(value)


@dataclass(frozen=True)
class ConnectionSettings:
    """How to reach one PostgreSQL database. `repr` hides the password."""

    host: str = "localhost"
    port: int = 5432
    database: str = "warehouse"
    user: str = "postgres"
    password: str | None = field(default=None, repr=False)
    sslmode: str | None = None
    connect_timeout: int = 10

    def connect_kwargs(self, application_name: str) -> dict[str, Any]:
        """Keyword arguments for psycopg2.connect (never turned into a DSN string we log)."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.database,
            "user": self.user,
            "connect_timeout": self.connect_timeout,
            "application_name": application_name[:63],
        }
        if self.password is not None:
            kwargs["password"] = self.password
        if self.sslmode:
            kwargs["sslmode"] = self.sslmode
        return kwargs

    def describe(self) -> str:
        """A safe description for messages: user@host:port/database, no password."""
        return f"{self.user}@{self.host}:{self.port}/{self.database}"


def default_slot_name(source: str) -> str:
    """The tap's default replication slot name for a source (`tap_manufacturing_<source>`).

    The same rule as tap-manufacturing's config.default_replication_name (the plugins share
    no code; tests/cdc/test_operations.py holds the two together).
    """
    return ("tap_manufacturing_" + re.sub(r"[^a-z0-9_]", "_", source.lower()))[:63]


@dataclass(frozen=True)
class SourceSettings:
    """A source database the check command compares row counts against (and whose
    replication slot, where the tap reads it LOG_BASED, it reports)."""

    name: str
    connection: ConnectionSettings
    schema: str = "public"
    table: str = ""
    slot_name: str = ""


@dataclass(frozen=True)
class WarehouseConfig:
    """Everything the target needs, validated once."""

    connection: ConnectionSettings = ConnectionSettings()
    schema: str = "raw"
    load_method: str = "auto"
    stream_load_methods: Mapping[str, str] = field(default_factory=dict)
    """Per-stream overrides of load_method: stream name -> method."""
    batch_size_rows: int = 20_000
    batch_size_bytes: int = 16 * 1024 * 1024
    add_record_metadata: bool = False
    hard_delete: bool = False
    mark_deleted_rows: bool = False
    lock_timeout: float = 5.0
    ddl_retries: int = 5
    strip_nul_characters: bool = False
    analyze_after_load: bool = False
    vacuum: str = "after-load"
    progress_interval: float = 5.0
    rename_legacy_names: bool = False
    check_sources: tuple[SourceSettings, ...] = ()
    check_max_slot_lag_mb: float = 1024.0

    def method_for(self, stream: str) -> str:
        """The load method asked for a stream: its own override, else the global one."""
        return self.stream_load_methods.get(stream, self.load_method)


DEFAULTS = WarehouseConfig()
"""The one home of every default."""


def _connection(config: Mapping[str, Any], defaults: ConnectionSettings) -> ConnectionSettings:
    sslmode = _str(config, "sslmode", defaults.sslmode)
    if sslmode is not None and sslmode not in SSL_MODES:
        raise ConfigError(f"setting 'sslmode' must be one of {', '.join(SSL_MODES)}")
    return ConnectionSettings(
        host=_str(config, "host", defaults.host) or defaults.host,
        port=_int(config, "port", defaults.port, minimum=1),
        database=_str(config, "database", defaults.database) or defaults.database,
        user=_str(config, "user", defaults.user) or defaults.user,
        password=_str(config, "password", defaults.password),
        sslmode=sslmode,
        connect_timeout=_int(config, "connect_timeout", defaults.connect_timeout, minimum=1),
    )


def _sources(value: object) -> tuple[SourceSettings, ...]:
    if is_blank(value):
        return ()
    if not isinstance(value, Mapping):
        raise ConfigError("setting 'check_sources' must be an object: name -> connection")
    sources = []
    for name, raw in sorted(value.items()):
        raw = raw if isinstance(raw, Mapping) else {}
        defaults = ConnectionSettings(database=name)
        sources.append(
            SourceSettings(
                name=name,
                connection=_connection(raw, defaults),
                schema=_str(raw, "schema", "public") or "public",
                table=_str(raw, "table", f"{name}_production") or f"{name}_production",
                slot_name=_str(raw, "slot_name", None) or default_slot_name(name),
            )
        )
    return tuple(sources)


def _stream_methods(value: object) -> dict[str, str]:
    if is_blank(value):
        return {}
    if isinstance(value, str):  # from an environment variable: JSON text
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError("setting 'stream_load_methods' must be a JSON object") from None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError("setting 'stream_load_methods' must map stream names to load methods")
    return {stream: method for stream, method in value.items() if not is_blank(method)}


def _schema(config: Mapping[str, Any]) -> str:
    """`schema`, or the SDK-conventional `default_target_schema`; they must not disagree."""
    ours = _str(config, "schema", None)
    sdk = _str(config, "default_target_schema", None)
    if ours and sdk and ours != sdk:
        raise ConfigError(
            "settings 'schema' and 'default_target_schema' name different schemas; set one"
        )
    return ours or sdk or DEFAULTS.schema


def parse_config(config: Mapping[str, Any]) -> WarehouseConfig:
    """Build the frozen config; blanks take defaults; bad values raise ConfigError."""
    d = DEFAULTS
    return WarehouseConfig(
        connection=_connection(config, d.connection),
        schema=_schema(config),
        load_method=_str(config, "load_method", d.load_method) or d.load_method,
        stream_load_methods=_stream_methods(config.get("stream_load_methods")),
        batch_size_rows=_int(config, "batch_size_rows", d.batch_size_rows, minimum=1),
        batch_size_bytes=_int(config, "batch_size_bytes", d.batch_size_bytes, minimum=1024),
        add_record_metadata=_bool(config, "add_record_metadata", d.add_record_metadata),
        hard_delete=_bool(config, "hard_delete", d.hard_delete),
        mark_deleted_rows=_bool(config, "mark_deleted_rows", d.mark_deleted_rows),
        lock_timeout=_float(config, "lock_timeout", d.lock_timeout),
        ddl_retries=_int(config, "ddl_retries", d.ddl_retries),
        strip_nul_characters=_bool(config, "strip_nul_characters", d.strip_nul_characters),
        analyze_after_load=_bool(config, "analyze_after_load", d.analyze_after_load),
        vacuum=_choice(config, "vacuum", d.vacuum, VACUUM_MODES),
        progress_interval=_float(config, "progress_interval", d.progress_interval),
        rename_legacy_names=_bool(config, "rename_legacy_names", d.rename_legacy_names),
        check_sources=_sources(config.get("check_sources")),
        check_max_slot_lag_mb=_float(config, "check_max_slot_lag_mb", d.check_max_slot_lag_mb),
    )
