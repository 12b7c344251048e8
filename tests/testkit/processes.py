"""The executables under test, found as a user's shell would find them."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_PIPELINE_PREFIXES = ("REFILLS_", "BODIES_", "SPRINGS_", "WAREHOUSE_", "TAP_MANUFACTURING_",
                      "TARGET_WAREHOUSE_RAW_", "MELTANO_", "DBT_")  # fmt: skip


def executable(name: str) -> str:
    """A console script installed next to the running interpreter (or on PATH)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (python3 run.py test installs it)")
    return found


def meltano_executable() -> str:
    """`meltano` beside the interpreter running the tests, else the one on PATH."""
    return executable("meltano")


def clean_environment() -> dict[str, str]:
    """The current environment without any pipeline, Meltano or dbt variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_PIPELINE_PREFIXES)}


def worker_suffix() -> str:
    """`-gw0` in a pytest-xdist worker, else nothing: what makes a worker's own embedded server
    folder (two servers cannot share one)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return f"-{worker}" if worker else ""
