"""The target: name, capabilities, settings and wiring. Behaviour lives in session.py and load/."""

from __future__ import annotations

import contextlib
import signal
import sys
import typing as t

from singer_sdk import Target
from singer_sdk.helpers.capabilities import PluginCapabilities, TargetCapabilities

from target_warehouse_raw.config import (
    ConfigError,
    drop_blank_environment,
    is_blank,
    nest_dotted_keys,
    parse_config,
)
from target_warehouse_raw.copy_text.native import native_converter_built
from target_warehouse_raw.errors import InterruptedError_, LoadError
from target_warehouse_raw.messages.decode import Message
from target_warehouse_raw.messages.sdk_reader import WarehouseRawReader
from target_warehouse_raw.session import LoadSession
from target_warehouse_raw.settings import SETTINGS
from target_warehouse_raw.warehouse.db import WarehouseUnreachableError


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


class TargetWarehouseRaw(Target):
    """Loads any tap's streams into a PostgreSQL raw schema with COPY, replacing atomically."""

    name = "target-warehouse-raw"
    message_reader_class = WarehouseRawReader
    capabilities: t.ClassVar = [
        PluginCapabilities.ABOUT,
        PluginCapabilities.ACTIVATE_VERSION,
        PluginCapabilities.BATCH,
        TargetCapabilities.HARD_DELETE,
        TargetCapabilities.SOFT_DELETE,
        TargetCapabilities.TARGET_SCHEMA,
    ]
    """What the target does: ACTIVATE_VERSION (never deleting before the new version is
    committed), BATCH messages (local JSON Lines files), hard and soft delete of older
    versions, a target schema. The SDK's sink machinery is not used (the session and load/
    replace it), so there is no default sink class and no stream maps here."""

    config_jsonschema = SETTINGS

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """Add nothing: every setting is declared in settings.py. The SDK's built-in ones
        (batch_config, process_activate_version_messages, ...) configure its sink machinery,
        which this target does not use; listing them would promise what it does not do."""

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
