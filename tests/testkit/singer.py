"""Singer messages and text, as a tap writes them."""

from __future__ import annotations

import json


def line(message: dict | str) -> str:
    """One Singer line (a dict is dumped, a string taken as is)."""
    return (message if isinstance(message, str) else json.dumps(message)) + "\n"


def singer(*messages: dict | str) -> str:
    """Singer text from message dicts (strings are taken as raw lines)."""
    return "".join(line(message) for message in messages)


def schema_message(stream: str, properties: dict, keys: list[str] | None = None, **extra) -> dict:
    """A SCHEMA message (`extra` goes into its JSON Schema)."""
    return {
        "type": "SCHEMA",
        "stream": stream,
        "key_properties": keys if keys is not None else [],
        "schema": {"type": "object", "properties": properties, **extra},
    }


def record_message(stream: str, data: dict, **extra) -> dict:
    """A RECORD message (`extra`: version, time_extracted, ...)."""
    return {"type": "RECORD", "stream": stream, "record": data, **extra}


def state_message(value: dict) -> dict:
    """A STATE message."""
    return {"type": "STATE", "value": value}
