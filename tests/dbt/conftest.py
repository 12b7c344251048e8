"""Fixtures for the dbt tests: a fresh pipeline (sources with demo data, an empty warehouse)
per test, with dbt installed (once per session, as Meltano installs it: see the root
conftest's `dbt_executable`) and dbt's own files kept in the test's folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pen_factory.embedded import ServerAddress
from testkit.dbt_runs import isolate_dbt_output
from testkit.pipeline import Pipeline, new_pipeline


@pytest.fixture
def pipeline(
    pg_server: ServerAddress,
    make_database: Callable[[str], str],
    meltano_sys_dir: Path,
    dbt_executable: Path,
    tmp_path: Path,
) -> Pipeline:
    """Fresh sources with demo data, an empty warehouse, isolated Meltano state and dbt files."""
    pipeline = new_pipeline(pg_server, make_database, meltano_sys_dir, tmp_path)
    isolate_dbt_output(pipeline, tmp_path)
    return pipeline
