"""Turn the plugin's config mapping into one frozen, typed object (pure, no database).

Meltano turns an unset `$VAR` in `meltano.yml` into an empty string or null, so every setting
treats absent, null and empty string alike: the default applies.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

LOAD_METHODS = ("auto", "overwrite", "upsert", "append-only")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


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


@dataclass(frozen=True)
class SourceSettings:
    """A source database the check command compares row counts against."""

    name: str
    connection: ConnectionSettings
    schema: str = "public"
    table: str = ""


@dataclass(frozen=True)
class WarehouseConfig:
    """Everything the target needs, validated once."""

    connection: ConnectionSettings
    schema: str = "raw"
    load_method: str = "auto"
    batch_size_rows: int = 20_000
    batch_size_bytes: int = 16 * 1024 * 1024
    add_record_metadata: bool = False
    hard_delete: bool = False
    lock_timeout: float = 5.0
    ddl_retries: int = 5
    strip_nul_characters: bool = False
    analyze_after_load: bool = False
    progress_interval: float = 5.0
    rename_legacy_names: bool = False
    check_sources: tuple[SourceSettings, ...] = ()


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
            )
        )
    return tuple(sources)


def parse_config(config: Mapping[str, Any]) -> WarehouseConfig:
    """Build the frozen config; blanks take defaults; bad values raise ConfigError."""
    load_method = _str(config, "load_method", "auto") or "auto"
    if load_method not in LOAD_METHODS:
        raise ConfigError(f"setting 'load_method' must be one of {', '.join(LOAD_METHODS)}")
    return WarehouseConfig(
        connection=_connection(config, ConnectionSettings()),
        schema=_str(config, "schema", "raw") or "raw",
        load_method=load_method,
        batch_size_rows=_int(config, "batch_size_rows", 20_000, minimum=1),
        batch_size_bytes=_int(config, "batch_size_bytes", 16 * 1024 * 1024, minimum=1024),
        add_record_metadata=_bool(config, "add_record_metadata", False),
        hard_delete=_bool(config, "hard_delete", False),
        lock_timeout=_float(config, "lock_timeout", 5.0),
        ddl_retries=_int(config, "ddl_retries", 5),
        strip_nul_characters=_bool(config, "strip_nul_characters", False),
        analyze_after_load=_bool(config, "analyze_after_load", False),
        progress_interval=_float(config, "progress_interval", 5.0),
        rename_legacy_names=_bool(config, "rename_legacy_names", False),
        check_sources=_sources(config.get("check_sources")),
    )
