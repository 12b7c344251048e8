"""The real `target-warehouse-raw`, fed Singer text exactly as `cat file | target-warehouse-raw
--config config.json` would feed it, and the warehouse database it loads."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pen_factory.embedded import ServerAddress
from testkit.postgres import Db
from testkit.processes import executable


def target_config(server: ServerAddress, database: str) -> dict:
    """The target's config for a warehouse database on the test server (quiet progress)."""
    return {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "database": database,
        "progress_interval": 0,
    }


@dataclass
class Warehouse(Db):
    """A throwaway warehouse database and the target config pointing at it."""

    config: dict | None = None
    config_path: Path | None = None


@dataclass
class Run:
    """What one run of a plugin produced."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def states(self) -> list[dict]:
        """STATE values the target wrote to stdout."""
        return [json.loads(text) for text in self.stdout.splitlines() if text.strip()]


def pipe_into_target(
    config_path: Path,
    text: str | bytes,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Run:
    """Run the target on `text` with the config file; what it wrote and its exit code."""
    data = text.encode() if isinstance(text, str) else text
    done = subprocess.run(
        [executable("target-warehouse-raw"), "--config", str(config_path)],
        input=data,
        capture_output=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode(errors="replace"))
