"""End-to-end fixtures: the real `meltano` on this project, against real databases.

Meltano's plugin virtualenvs are built once per test session in a temporary system folder
(`MELTANO_SYS_DIR_ROOT`), so the tests neither depend on nor disturb the developer's own
`.meltano/`. Each test gets its own Meltano system database (state never leaks between
tests), its own three source databases with demo data and its own warehouse database.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pen_factory.embedded import ServerAddress
from testkit.pipeline import Pipeline, new_pipeline


@pytest.fixture
def pipeline(
    pg_server: ServerAddress,
    make_database: Callable[[str], str],
    meltano_sys_dir: Path,
    tmp_path: Path,
) -> Pipeline:
    """Fresh sources with demo data, an empty warehouse and an isolated Meltano state."""
    return new_pipeline(pg_server, make_database, meltano_sys_dir, tmp_path)
