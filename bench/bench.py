"""The benchmark's command: `python bench/bench.py --help` (the harness is bench/pipebench/).

Runs from the project's virtualenv (`.venv/bin/python bench/bench.py`), where the plugins,
Meltano and psycopg2 are installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR), str(BENCH_DIR.parent)]  # pipebench, then pen_factory

from pipebench.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
