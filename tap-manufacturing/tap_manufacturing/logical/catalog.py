"""The properties a LOG_BASED stream adds to its table's columns (pure)."""

from __future__ import annotations

import copy
from typing import Any

LSN_PROPERTY = "_sdc_lsn"
DELETED_AT_PROPERTY = "_sdc_deleted_at"

CHANGE_PROPERTIES: dict[str, dict[str, Any]] = {
    LSN_PROPERTY: {"type": ["integer"]},
    DELETED_AT_PROPERTY: {"type": ["string", "null"], "format": "date-time"},
}
"""`_sdc_lsn`: the log position of the change's transaction commit (the snapshot's
consistent point for snapshot rows); `_sdc_deleted_at`: the commit time of a delete, else
null. The names and this pair are how a target (ours, or MeltanoLabs' conventions) tells a
change stream from a full-table one; see docs/value-encoding.md."""


def with_change_properties(entry: dict[str, Any]) -> dict[str, Any]:
    """A copy of a catalog entry with the change properties, selected and automatic,
    and `_sdc_lsn` as the replication key (the bookmark's field)."""
    entry = copy.deepcopy(entry)
    properties = entry.setdefault("schema", {}).setdefault("properties", {})
    metadata = entry.setdefault("metadata", [])
    breadcrumbs = {tuple(m.get("breadcrumb", ())) for m in metadata}
    for name, schema in CHANGE_PROPERTIES.items():
        properties[name] = dict(schema)
        if ("properties", name) not in breadcrumbs:
            metadata.append(
                {
                    "breadcrumb": ["properties", name],
                    "metadata": {"inclusion": "automatic", "selected-by-default": True},
                }
            )
    entry["replication_key"] = LSN_PROPERTY
    return entry
