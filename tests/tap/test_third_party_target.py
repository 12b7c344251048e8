"""Pipe the tap into a third-party Singer target installed from the package index."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.tap import TAP_EXECUTABLE

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="session")
def target_jsonl(tmp_path_factory) -> Path:
    """target-jsonl in its own throwaway virtualenv (once per test session)."""
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    venv = tmp_path_factory.mktemp("target-jsonl") / "venv"
    try:
        subprocess.run([uv, "venv", "-q", str(venv), "--python", sys.executable], check=True)
        subprocess.run(
            [uv, "pip", "install", "-q", "target-jsonl==0.1.4"],
            check=True,
            env={**os.environ, "VIRTUAL_ENV": str(venv)},
            timeout=180,
        )
    except (OSError, subprocess.SubprocessError) as exc:  # no network, no uv
        pytest.skip(f"cannot install target-jsonl: {exc}")
    return venv / "bin" / "target-jsonl"


def test_tap_into_target_jsonl(factory, target_jsonl, tmp_path):
    config = tmp_path / "tap.json"
    config.write_text(json.dumps(factory.config()))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target_config = tmp_path / "target.json"
    target_config.write_text(
        json.dumps({"destination_path": str(out_dir), "do_timestamp_file": False})
    )
    tap = subprocess.Popen(
        [TAP_EXECUTABLE, "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    target = subprocess.run(
        [str(target_jsonl), "--config", str(target_config)],
        stdin=tap.stdout,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert tap.stdout is not None
    tap.stdout.close()
    assert tap.wait(timeout=60) == 0
    assert target.returncode == 0, target.stderr.decode()[-2000:]
    # The target echoes the tap's final state.
    state = json.loads(target.stdout.decode().strip().splitlines()[-1])
    assert set(state["bookmarks"]) == {"refills", "bodies", "springs"}
    for source in ("refills", "bodies", "springs"):
        lines = (out_dir / f"{source}.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in lines]
        assert [r["id"] for r in rows] == list(range(1, 21))
        assert rows[0]["produced_at"] == "2024-01-01T00:00:01+00:00"
        assert rows[0]["attributes"] == {"machine": "M1", "speed": 0.5}
        assert rows[0]["tags"] == ["ink", "tip-1"]
        assert rows[6]["passed_qc"] is False
