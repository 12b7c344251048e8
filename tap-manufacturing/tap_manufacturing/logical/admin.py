"""`tap-manufacturing-drop-slot`: remove a source's replication slot and publication.

    tap-manufacturing-drop-slot --config FILE|ENV SOURCE [SOURCE ...]
    meltano invoke tap-manufacturing:drop-slot SOURCE      (Meltano passes the config as ENV)

A LOG_BASED source keeps a replication slot, and the source server keeps all WAL the slot
has not confirmed: a pipeline that is retired, or switched back to FULL_TABLE, must drop its
slot or the source's disk fills up. This command drops the slot (waiting briefly for a
running tap to let go of it, never terminating one) and the publication, and says what
remains to do with Meltano's stored bookmark. Dropping what is not there is not an error.

Exit 0: done; 1: a source could not be cleaned up (the error names it); 2: bad usage/config.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg2

from tap_manufacturing.client import SourceError, connect, describe_error
from tap_manufacturing.config import ConfigError, SourceSettings, parse_settings
from tap_manufacturing.logical import slots

ENV_PREFIX = "TAP_MANUFACTURING_"


def nest_dotted_keys(value: object) -> object:
    """`{"refills.host": "db1"}` -> `{"refills": {"host": "db1"}}` (recursively).

    Meltano hands a plugin command its config only as environment variables, and exports the
    `sources` object with declared nested settings as one JSON object with dotted keys. The
    target's config.py holds the same function: the two plugins are separate distributions
    and share no package.
    """
    if not isinstance(value, Mapping):
        return value
    nested: dict[str, Any] = {}
    for key, item in value.items():
        head, dot, rest = str(key).partition(".")
        branch = nested.setdefault(head, {}) if dot else None
        if branch is None:
            if isinstance(nested.get(head), dict) and isinstance(item, Mapping):
                nested[head].update(nest_dotted_keys(item))  # type: ignore[arg-type]
            else:
                nested[head] = nest_dotted_keys(item)
        elif isinstance(branch, dict):
            deeper = nest_dotted_keys({rest: item})
            assert isinstance(deeper, dict)
            for deep_key, deep_value in deeper.items():
                if isinstance(branch.get(deep_key), dict) and isinstance(deep_value, dict):
                    branch[deep_key].update(deep_value)
                else:
                    branch[deep_key] = deep_value
    return nested


def load_config(where: str) -> dict[str, Any]:
    """The tap's config from a JSON file, or from TAP_MANUFACTURING_* variables (`ENV`)."""
    if where != "ENV":
        try:
            config = json.loads(Path(where).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the config file {where}: {exc}") from None
        if not isinstance(config, dict):
            raise ConfigError(f"the config file {where} must hold a JSON object")
        return config
    raw = os.environ.get(f"{ENV_PREFIX}SOURCES", "").strip()
    if not raw:
        return {}
    try:
        sources = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}SOURCES must hold a JSON object") from None
    return {"sources": nest_dotted_keys(sources)}


def drop(source: SourceSettings) -> list[str]:
    """Drop the source's slot and publication; the lines to print."""
    lines = []
    with connect(source) as connection:
        try:
            info = slots.wait_until_inactive(connection, source, source.slot_name)
            if info is None:
                lines.append(f"{source.name}: replication slot '{source.slot_name}': not there")
            else:
                slots.drop_slot(connection, source.slot_name)
                lines.append(f"{source.name}: replication slot '{source.slot_name}': dropped")
            dropped = slots.drop_publication(connection, source.publication_name)
        except psycopg2.Error as exc:
            raise describe_error(source, exc, "drop the slot or publication") from None
    state = "dropped" if dropped else "not there"
    lines.append(f"{source.name}: publication '{source.publication_name}': {state}")
    lines.append(
        f"{source.name}: Meltano's state for this stream still holds its log position; before "
        f"the next LOG_BASED run clear it (`meltano state clear <state id> --force`, see "
        "`meltano state list`) or run with --full-refresh, which takes a new snapshot"
    )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    parser = argparse.ArgumentParser(
        prog="tap-manufacturing-drop-slot",
        description="Drop LOG_BASED sources' replication slots and publications.",
    )
    parser.add_argument("--config", default="ENV", help="the tap's config JSON file, or ENV")
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="source name, e.g. refills")
    args = parser.parse_args(argv)
    try:
        settings = parse_settings(load_config(args.config))
        chosen = [settings.source(name) for name in args.sources]
    except ConfigError as exc:
        print(f"tap-manufacturing-drop-slot: error: {exc}", file=sys.stderr)
        sys.exit(2)
    failed = False
    for source in chosen:
        try:
            for line in drop(source):
                print(line)
        except SourceError as exc:
            print(f"tap-manufacturing-drop-slot: error: {exc}", file=sys.stderr)
            failed = True
    sys.exit(1 if failed else 0)
