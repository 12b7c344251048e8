"""What the session hands every stream load when it creates it (loads never reach back)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from target_warehouse_raw.config import WarehouseConfig
from target_warehouse_raw.schema.columns import TypeInfo
from target_warehouse_raw.warehouse.history import LoadHistory

HANDED_OVER_BATCHES = 2
"""Batches handed to stream workers and not yet loaded, all streams together: with the one
each stream is building, memory stays flat however many streams follow."""


@dataclass(frozen=True)
class LoadContext:
    """The run's shared parts, the same for every stream."""

    cfg: WarehouseConfig
    history: LoadHistory
    resolve_type: Callable[[str], TypeInfo | None]
    """Whether a type name is a real type in the warehouse (cached lookups)."""
    row_params: dict[str, str]
    """Values the metadata columns take for this run (sync start, sequence base)."""
    batch_budget: threading.Semaphore
    """Acquired per batch handed to a worker, released once it is loaded."""
    report_progress: Callable[[], None]
    """Cheap to call often: logs progress when the interval has passed."""
    committed: Callable[[], None]
    """Called after a stream committed: some held STATE may now be written."""


def new_batch_budget() -> threading.Semaphore:
    """The run's batch budget (see HANDED_OVER_BATCHES)."""
    return threading.Semaphore(HANDED_OVER_BATCHES)
