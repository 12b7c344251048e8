"""The executables under test, found as a user's shell would find them."""

from __future__ import annotations

import os
import shutil
import subprocess
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


def run_meltano(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`meltano ARGS` in the project with `env`, output captured, no stdin; the caller
    judges the exit code."""
    return subprocess.run(
        [meltano_executable(), *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def meltano_system_environment(sys_dir: Path, database: Path) -> dict[str, str]:
    """A clean environment whose Meltano keeps its plugins in `sys_dir` and its state in the
    SQLite file `database`, and sends no usage statistics."""
    env = clean_environment()
    env["MELTANO_SYS_DIR_ROOT"] = str(sys_dir)
    env["MELTANO_DATABASE_URI"] = f"sqlite:///{database}"
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    return env


def clean_environment() -> dict[str, str]:
    """The current environment without any pipeline, Meltano or dbt variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_PIPELINE_PREFIXES)}


def worker_suffix() -> str:
    """`-gw0` in a pytest-xdist worker, else nothing: what makes a worker's own embedded server
    folder (two servers cannot share one)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return f"-{worker}" if worker else ""
