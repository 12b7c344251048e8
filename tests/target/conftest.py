"""Fixtures of the target's tests: a fresh warehouse database per test, and the real
`target-warehouse-raw` to pipe Singer input into (testkit/target.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from testkit.target import Run, Warehouse, pipe_into_target, target_config


@pytest.fixture
def warehouse(pg_server, make_database, tmp_path) -> Warehouse:
    """A fresh warehouse database and a config file for the target."""
    name = make_database("twr")
    config = target_config(pg_server, name)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return Warehouse(pg_server.dsn(name), config=config, config_path=path)


@pytest.fixture
def run_target(warehouse) -> Callable[..., Run]:
    """Pipe Singer text (or a .singer file) into the real executable."""

    def run(
        source: str | Path,
        *,
        config: dict | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> Run:
        text = source.read_text() if isinstance(source, Path) else source
        config_path = warehouse.config_path
        if config:
            config_path = warehouse.config_path.with_name("config-extra.json")
            config_path.write_text(json.dumps({**warehouse.config, **config}))
        return pipe_into_target(config_path, text, env=env, timeout=timeout)

    return run
