"""The README's first command, minus the virtualenv: `pen-factory demo` in a fresh clone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pen_factory import demo_data
from testkit.processes import PROJECT_ROOT, clean_environment

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _pen_factory() -> str:
    beside = Path(sys.executable).parent / "pen-factory"
    return str(beside) if beside.exists() else "pen-factory"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to clone the project")
def test_demo_runs_from_a_fresh_clone(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(PROJECT_ROOT), str(clone)], check=True)
    env = clean_environment()
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"

    def pen_factory(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [_pen_factory(), *args],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    try:
        demo = pen_factory("demo", "--rows", "200")
        output = demo.stdout + demo.stderr
        assert demo.returncode == 0, output[-6000:]
        for source in demo_data.SOURCES:
            assert f"{source} 200" in demo.stdout  # the generator's line
            assert f'"raw"."{source}"' in output  # the target's run summary
        assert "Demo finished" in demo.stdout
        # It ends with the marts dbt built: the whole path from three databases to a report.
        marts = demo.stdout.split("==> The marts the models built", 1)[1]
        capacity, line_output = marts.split("\n\n")[:2]
        assert capacity.splitlines()[1:3] == [
            "analytics.daily_pen_capacity (1 row):",
            "production_date  good_refills  good_bodies  good_springs  pens_possible  "
            "limiting_component",
        ]
        assert capacity.splitlines()[3].startswith("2024-01-01  ")
        assert line_output.splitlines()[0] == "analytics.daily_line_output (first 8 of 9 rows):"
        assert line_output.splitlines()[2].split() == [
            "2024-01-01", "bodies", "B1", "A", *line_output.splitlines()[2].split()[4:]
        ]  # fmt: skip
        # Its data stays inside the clone, and the server is stopped afterwards.
        assert (clone / ".demo" / "pgdata" / "PG_VERSION").exists()
        status = pen_factory("embedded", "status")
        assert status.returncode == 3, status.stdout + status.stderr
    finally:
        pen_factory("embedded", "stop", timeout=120)
