"""Turn the tap's config dict into frozen, validated settings (pure: no database here).

Every value Meltano forwards from an unset `$VAR` arrives as null or an empty string, so a
field that is absent, null or `""` takes its default. Error messages name the source and the
setting and never quote a password.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

DEFAULT_SOURCES = ("refills", "bodies", "springs")
REPLICATION_METHODS = ("FULL_TABLE", "INCREMENTAL", "LOG_BASED")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
SOURCE_FIELDS = (
    "host",
    "port",
    "database",
    "user",
    "password",
    "schema",
    "table",
    "sslmode",
    "connect_timeout",
    "replication_method",
    "replication_key",
    "slot_name",
    "publication_name",
)
_STREAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

DEFAULT_FETCH_SIZE = 2_000
DEFAULT_PROGRESS_INTERVAL = 5.0
DEFAULT_STATE_INTERVAL = 10_000
DEFAULT_BATCH_SIZE = 10_000  # records per BATCH file, as the SDK's default
DEFAULT_LOG_BASED_MAX_WAIT = 60.0
_REPLICATION_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def default_replication_name(source: str) -> str:
    """The default slot and publication name of a source: `tap_manufacturing_<source>`.

    Slot names may hold only lower-case letters, digits and underscores (at most 63), so the
    source name is lower-cased and anything else becomes `_`. The warehouse check computes
    the same default (target_warehouse_raw/config.py); a test holds the two together.
    """
    return ("tap_manufacturing_" + re.sub(r"[^a-z0-9_]", "_", source.lower()))[:63]


BATCH_COMPRESSIONS = ("none", "gzip")


class ConfigError(ValueError):
    """A setting is wrong; the message names the source and the setting, never a password."""


@dataclass(frozen=True)
class SourceSettings:
    """How to reach one source database and which table to read from it."""

    name: str
    host: str = "localhost"
    port: int = 5432
    database: str = ""
    user: str = "postgres"
    password: str | None = None
    schema: str = "public"
    table: str = ""
    sslmode: str = "prefer"
    connect_timeout: int = 10
    replication_method: str = "FULL_TABLE"
    replication_key: str | None = None
    slot_name: str = ""
    publication_name: str = ""

    def describe(self) -> str:
        """Where this source lives, for log and error lines (never the password)."""
        return (
            f"source '{self.name}' (host={self.host} port={self.port} "
            f"database={self.database} user={self.user})"
        )

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the driver's connect()."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.database,
            "user": self.user,
            "sslmode": self.sslmode,
            "connect_timeout": self.connect_timeout,
            "application_name": f"tap-manufacturing:{self.name}",
        }
        if self.password is not None:
            kwargs["password"] = self.password
        return kwargs

    def __repr__(self) -> str:
        """Like the dataclass repr, with the password masked."""
        return f"SourceSettings({self.describe()}, schema={self.schema}, table={self.table})"


@dataclass(frozen=True)
class BatchSettings:
    """Where and how BATCH files are written (the SDK's standard `batch_config` setting)."""

    directory: str  # local folder (from `storage.root`, a path or a file:// URL)
    prefix: str = ""
    compression: str = "none"
    batch_size: int = DEFAULT_BATCH_SIZE  # records per file


@dataclass(frozen=True)
class TapSettings:
    """All settings of one tap run."""

    sources: tuple[SourceSettings, ...]
    fetch_size: int = DEFAULT_FETCH_SIZE
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL
    state_interval: int = DEFAULT_STATE_INTERVAL
    batch: BatchSettings | None = None
    log_based_max_wait: float = DEFAULT_LOG_BASED_MAX_WAIT
    json_as_text: bool = False

    def source(self, name: str) -> SourceSettings:
        """The settings of the source named `name`."""
        for source in self.sources:
            if source.name == name:
                return source
        configured = ", ".join(s.name for s in self.sources)
        msg = f"stream '{name}' is not a configured source (configured: {configured})"
        raise ConfigError(msg)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _string(value: object, default: str, subject: str) -> str:
    """`value`, or `default` when blank; `subject` names the setting in the error."""
    if _blank(value):
        return default
    if not isinstance(value, str):
        msg = f"{subject} must be a string"
        raise ConfigError(msg)
    return value


def _text(source: str, setting: str, value: object, default: str) -> str:
    return _string(value, default, f"source '{source}': setting '{setting}'")


def _integer(where: str, setting: str, value: object, default: int, low: int, high: int) -> int:
    if _blank(value):
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("+").isdigit():
        number = int(value.strip())
    if number is None or not low <= number <= high:
        msg = f"{where}: setting '{setting}' must be an integer from {low} to {high}, got {value!r}"
        raise ConfigError(msg)
    return number


def _boolean(setting: str, value: object, default: bool) -> bool:
    """A boolean setting: true/false, or their usual spellings in an environment variable."""
    if _blank(value):
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    msg = f"tap: setting '{setting}' must be true or false, got {value!r}"
    raise ConfigError(msg)


def _choice(source: str, setting: str, value: object, default: str, allowed: tuple) -> str:
    text = _text(source, setting, value, default)
    normalised = text.upper() if setting == "replication_method" else text.lower()
    if normalised not in allowed:
        msg = (
            f"source '{source}': setting '{setting}' must be one of {', '.join(allowed)}, "
            f"got {text!r}"
        )
        raise ConfigError(msg)
    return normalised


def parse_source(name: str, raw: object) -> SourceSettings:
    """Validate one source's settings and fill in the defaults."""
    if not _STREAM_NAME.match(name):
        msg = (
            f"source '{name}': the source name is used as the stream name and must start "
            "with a letter or underscore and contain only letters, digits, '_' and '-'"
        )
        raise ConfigError(msg)
    if _blank(raw):
        raw = {}
    if not isinstance(raw, Mapping):
        msg = f"source '{name}': settings must be an object with host, port, database, ..."
        raise ConfigError(msg)
    unknown = sorted(set(raw) - set(SOURCE_FIELDS))
    if unknown:
        msg = (
            f"source '{name}': unknown setting(s) {', '.join(map(repr, unknown))}; "
            f"known settings: {', '.join(SOURCE_FIELDS)}"
        )
        raise ConfigError(msg)
    password = raw.get("password")
    if isinstance(password, (int, float)) and not isinstance(password, bool):
        password = str(password)
    elif password is not None and not isinstance(password, str):
        msg = f"source '{name}': setting 'password' must be a string"
        raise ConfigError(msg)
    where = f"source '{name}'"
    method = _choice(
        name, "replication_method", raw.get("replication_method"), "FULL_TABLE",
        REPLICATION_METHODS,
    )  # fmt: skip
    key = _text(name, "replication_key", raw.get("replication_key"), "") or None
    if method == "INCREMENTAL" and key is None:
        msg = (
            f"source '{name}': setting 'replication_key' is required when "
            "'replication_method' is INCREMENTAL (e.g. updated_at)"
        )
        raise ConfigError(msg)
    replication_names = {
        setting: _replication_name(name, setting, raw.get(setting))
        for setting in ("slot_name", "publication_name")
    }
    return SourceSettings(
        name=name,
        host=_text(name, "host", raw.get("host"), "localhost"),
        port=_integer(where, "port", raw.get("port"), 5432, 1, 65535),
        database=_text(name, "database", raw.get("database"), name),
        user=_text(name, "user", raw.get("user"), "postgres"),
        password=None if _blank(password) else password,
        schema=_text(name, "schema", raw.get("schema"), "public"),
        table=_text(name, "table", raw.get("table"), f"{name}_production"),
        sslmode=_choice(name, "sslmode", raw.get("sslmode"), "prefer", SSL_MODES),
        connect_timeout=_integer(where, "connect_timeout", raw.get("connect_timeout"), 10, 1, 3600),
        replication_method=method,
        replication_key=key,
        **replication_names,
    )


def _replication_name(source: str, setting: str, value: object) -> str:
    """A slot or publication name: lower-case letters, digits and `_`, at most 63 bytes.

    PostgreSQL allows more in a publication name, but the same rule for both keeps them
    usable unquoted in `publication_names` and in every SQL statement of the docs.
    """
    name = _text(source, setting, value, default_replication_name(source))
    if not _REPLICATION_NAME.match(name):
        msg = (
            f"source '{source}': setting '{setting}' must be 1 to 63 lower-case letters, "
            f"digits or underscores, starting with a letter or underscore, got {name!r}"
        )
        raise ConfigError(msg)
    return name


def parse_only_sources(raw: object) -> tuple[str, ...]:
    """The `only_sources` setting: a list of source names, or one comma-separated string (as
    an environment variable gives it); empty when unset."""
    if _blank(raw):
        return ()
    if isinstance(raw, str):
        names = [name.strip() for name in raw.split(",")]
    elif isinstance(raw, (list, tuple)) and all(isinstance(name, str) for name in raw):
        names = [name.strip() for name in raw]
    else:
        msg = "setting 'only_sources' must be a list of source names, e.g. [\"refills\"]"
        raise ConfigError(msg)
    return tuple(dict.fromkeys(name for name in names if name))


def parse_settings(config: Mapping[str, Any]) -> TapSettings:
    """Validate the whole config; defaults to the three factory sources.

    With `only_sources`, the other source blocks are dropped before anything else looks at
    them: they are neither validated nor connected to. That is what lets one Meltano plugin
    per source (`tap-manufacturing--refills`, inheriting every source block from
    `tap-manufacturing`, because Meltano merges an inherited plugin's config into its
    parent's) run and discover while another source's database is unreachable.
    """
    raw_sources = config.get("sources")
    if _blank(raw_sources) or raw_sources == {}:
        raw_sources = {name: {} for name in DEFAULT_SOURCES}
    if not isinstance(raw_sources, Mapping):
        msg = "setting 'sources' must be an object keyed by source name"
        raise ConfigError(msg)
    only = parse_only_sources(config.get("only_sources"))
    unknown = [name for name in only if name not in raw_sources]
    if unknown:
        msg = (
            f"setting 'only_sources' names {', '.join(map(repr, unknown))}, which is not a "
            f"configured source (configured: {', '.join(map(str, raw_sources))})"
        )
        raise ConfigError(msg)
    if only:
        raw_sources = {name: raw for name, raw in raw_sources.items() if name in only}
    sources = tuple(parse_source(str(name), raw) for name, raw in raw_sources.items())
    fetch_size = _integer("tap", "fetch_size", config.get("fetch_size"), DEFAULT_FETCH_SIZE, 1,
                          10_000_000)  # fmt: skip
    progress_interval = _positive("progress_interval", config.get("progress_interval"),
                                  DEFAULT_PROGRESS_INTERVAL)  # fmt: skip
    state_interval = _integer(
        "tap", "state_interval", config.get("state_interval"), DEFAULT_STATE_INTERVAL, 1,
        100_000_000,
    )  # fmt: skip
    return TapSettings(
        sources=sources,
        fetch_size=fetch_size,
        progress_interval=progress_interval,
        state_interval=state_interval,
        batch=parse_batch(config.get("batch_config")),
        log_based_max_wait=_positive(
            "log_based_max_wait", config.get("log_based_max_wait"), DEFAULT_LOG_BASED_MAX_WAIT
        ),
        json_as_text=_boolean("json_as_text", config.get("json_as_text"), False),
    )


def _positive(setting: str, value: object, default: float) -> float:
    """A positive number of seconds, or `default` when blank."""
    if _blank(value):
        return default
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = -1.0
    if not number > 0:
        msg = f"tap: setting '{setting}' must be a positive number, got {value!r}"
        raise ConfigError(msg)
    return number


def _batch_text(setting: str, value: object, default: str) -> str:
    return _string(value, default, f"setting 'batch_config.{setting}'")


def parse_batch(raw: object) -> BatchSettings | None:
    """The `batch_config` setting; None (records go out as RECORD messages) when it or its
    `storage.root` is unset.

    Only what the fast path writes is accepted: JSON Lines, plain or gzip, in a local folder.
    A setting this tap cannot honour is an error, not a silent fallback to RECORD messages.
    """
    if _blank(raw) or raw == {}:
        return None
    if not isinstance(raw, Mapping):
        msg = "setting 'batch_config' must be an object with encoding and storage"
        raise ConfigError(msg)
    encoding = raw.get("encoding") or {}
    storage = raw.get("storage") or {}
    if not isinstance(encoding, Mapping) or not isinstance(storage, Mapping):
        msg = "setting 'batch_config': encoding and storage must be objects"
        raise ConfigError(msg)
    file_format = _batch_text("encoding.format", encoding.get("format"), "jsonl")
    if file_format.lower() != "jsonl":
        msg = f"setting 'batch_config.encoding.format': only jsonl is written, not {file_format!r}"
        raise ConfigError(msg)
    compression = _batch_text("encoding.compression", encoding.get("compression"), "none").lower()
    if compression not in BATCH_COMPRESSIONS:
        msg = (
            "setting 'batch_config.encoding.compression' must be one of "
            f"{', '.join(BATCH_COMPRESSIONS)}, got {compression!r}"
        )
        raise ConfigError(msg)
    root = _batch_text("storage.root", storage.get("root"), "")
    if not root:  # meltano.yml leaves the rest in place; the folder turns batch mode on
        return None
    parsed = urlparse(root)
    if parsed.scheme not in ("", "file") or parsed.netloc not in ("", "localhost"):
        msg = (
            "setting 'batch_config.storage.root' must be a local folder (a path or a file:// "
            f"URL), got {root!r}"
        )
        raise ConfigError(msg)
    directory = unquote(parsed.path) if parsed.scheme == "file" else root
    prefix = _batch_text("storage.prefix", storage.get("prefix"), "")
    if "/" in prefix or "\\" in prefix:
        msg = f"setting 'batch_config.storage.prefix' must not contain a path separator: {prefix!r}"
        raise ConfigError(msg)
    batch_size = _integer("batch_config", "batch_size", raw.get("batch_size"),
                          DEFAULT_BATCH_SIZE, 1, 100_000_000)  # fmt: skip
    return BatchSettings(directory, prefix, compression, batch_size)
