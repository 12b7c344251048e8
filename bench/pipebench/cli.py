"""Throughput, memory, bloat and write cost of the pipeline against the raw COPY pipe.

One command generates N rows per table in three source databases (a data set: the demo's,
a realistic one or a wide one), then runs, alternating within every run so that a noisy
shared machine hurts all methods alike:

  copy           the physical limit: psql \\copy out | psql \\copy in, into tables with the
                 same column types and primary key as the target's (emptied by TRUNCATE)
  pipe           tap-manufacturing | target-warehouse-raw
  meltano        meltano run tap-manufacturing target-warehouse-raw
  pipe+batch, meltano+batch   the same in BATCH mode
  target         target-warehouse-raw alone, fed from a file of the tap's output (captured
                 once, untimed; with --escape-non-ascii every non-ASCII character in it is a
                 \\u escape, emoji surrogate pairs, as taps using Python's json module write)

Per run it reports the wall time and its ratio to the raw copy of the same run, the CPU of
the client processes and of the server's sessions, the WAL written, the peak RSS of the tap
and of the target, the raw tables' size and dead rows, and the target's record-path counts
(when it logs them); then medians per method and each table's growth over the series. It
checks after every run that every row landed, and after the first and last that every value
did. Results also go to a JSON file (bench/results/ by default, git-ignored).

    python bench/bench.py                                  # demo data, 100k rows, 3 rounds
    python bench/bench.py --rows 1000000 --rounds 2
    python bench/bench.py --data realistic --runs 20 --methods pipe --rows 50000
    python bench/bench.py --data wide --rows 100000 --rounds 3
    python bench/bench.py --data realistic --runs 5 --methods target --escape-non-ascii
    python bench/bench.py --data realistic --runs 5 --change-percent 5

--rounds N (the default, 3): each run starts from VACUUMed tables, as an eager autovacuum
would leave them. --runs N (steady state): N consecutive runs with only a CHECKPOINT in
between, so each replace finds what the one before left: what users live with on a server
with autovacuum off (as the machine's 127.0.0.1:5432 runs), or loads faster than autovacuum.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipebench.datasets import DATA_SETS, prepare_sources
from pipebench.methods import METHODS, PROJECT_ROOT, Runner, RunResult
from pipebench.report import render, to_json
from pipebench.series import Series
from pipebench.server import open_server

PLUGIN_METHODS = [method for method in METHODS if method != "copy"]
DEFAULT_METHODS = ["pipe", "pipe+batch", "meltano", "meltano+batch"]


def _methods(text: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in PLUGIN_METHODS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"methods are a comma-separated list of {', '.join(PLUGIN_METHODS)} "
            "(the raw copy always runs)"
        )
    return chosen


def _positive(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError("expected NAME=VALUE, e.g. vacuum=off")
    return name.strip(), value


def build_parser() -> argparse.ArgumentParser:
    """The bench's command line."""
    parser = argparse.ArgumentParser(
        prog="bench/bench.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", choices=sorted(DATA_SETS), default="demo")
    parser.add_argument("--rows", type=_positive, default=100_000, help="rows per source table")
    parser.add_argument("--seed", type=int, default=1, help="seed of the realistic/wide data")
    series = parser.add_mutually_exclusive_group()
    series.add_argument("--rounds", type=_positive, help="runs, each from vacuumed tables")
    series.add_argument("--runs", type=_positive, help="steady state: runs without VACUUM")
    parser.add_argument(
        "--change-percent",
        type=float,
        default=0.0,
        metavar="P",
        help="before every run after the first, update P %% of each source table's rows "
        "(default 0: every run sends the same rows)",
    )
    parser.add_argument(
        "--methods",
        type=_methods,
        default=DEFAULT_METHODS,
        help=f"comma-separated, from {','.join(PLUGIN_METHODS)} "
        f"(default: {','.join(DEFAULT_METHODS)})",
    )
    parser.add_argument(
        "--escape-non-ascii",
        action="store_true",
        help="the target method's input file writes non-ASCII characters as \\u escapes "
        "(surrogate pairs above U+FFFF), as taps using Python's json module do",
    )
    parser.add_argument(
        "--target-setting",
        type=_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a target setting for every plugin run, e.g. vacuum=off (repeatable); under "
        "Meltano it is passed as TARGET_WAREHOUSE_RAW_<NAME>",
    )
    parser.add_argument("--no-meltano", action="store_true", help="leave out the meltano runs")
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="use an embedded PostgreSQL even when one answers on --host/--port",
    )
    parser.add_argument(
        "--embedded-autovacuum",
        choices=("on", "off"),
        default="off",
        help="autovacuum of the embedded server (default off: the bloat condition)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    parser.add_argument(
        "--database-prefix", default="bench", help="databases are named <prefix>_<name>"
    )
    parser.add_argument(
        "--drop-databases", action="store_true", help="drop the bench databases at the end"
    )
    parser.add_argument("--results", type=Path, help="JSON results file (default: bench/results/)")
    return parser


def _code_version() -> str:
    """The commit being measured, marked when the work tree has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} with uncommitted changes" if dirty else commit


def _progress(result: RunResult) -> None:
    print(
        f"run {result.run} {result.method}: {result.wall_s:.2f} s ({result.ratio:.2f}x)",
        file=sys.stderr,
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its report, write the results file."""
    args = build_parser().parse_args(argv)
    methods = [m for m in args.methods if not (args.no_meltano and m.startswith("meltano"))]
    steady = args.runs is not None
    runs = args.runs if steady else (args.rounds or 3)
    data_set = DATA_SETS[args.data]
    server = open_server(
        args.host,
        args.port,
        args.user,
        args.database_prefix,
        embedded=args.embedded,
        data_dir=PROJECT_ROOT / ".demo" / "bench-pgdata",
        autovacuum=args.embedded_autovacuum,
    )
    try:
        print(f"preparing {args.data} data, {args.rows:,} rows per table ...", file=sys.stderr)
        generated = prepare_sources(server, data_set, args.rows, args.seed)
        print(f"generated: {', '.join(generated) or 'none (kept)'}", file=sys.stderr)
        meta = {
            "bench": {
                "data": args.data,
                "rows": args.rows,
                "seed": args.seed if data_set.uses_seed else None,
                "runs": runs,
                "mode": "steady state, no VACUUM between runs"
                if steady
                else "rounds, VACUUM before each run",
                "methods": ["copy", *methods],
                "change_percent": args.change_percent,
                "escape_non_ascii": args.escape_non_ascii,
                "target_settings": dict(args.target_setting),
                "code": _code_version(),
                "argv": sys.argv[1:] if argv is None else argv,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            "server": server.settings(),
        }
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            runner = Runner(server, data_set, Path(tmp), dict(args.target_setting))
            if any(method.startswith("meltano") for method in methods):
                runner.install_meltano_plugins()
            if "target" in methods:
                runner.capture_tap_output(escape_non_ascii=args.escape_non_ascii)
            series = Series(
                server,
                data_set,
                runner,
                args.rows,
                vacuum_between=not steady,
                change_percent=args.change_percent,
            )
            results = series.run(methods, runs, _progress)
        print(render(meta, results))
        path = args.results or (
            PROJECT_ROOT
            / "bench"
            / "results"
            / f"{time.strftime('%Y%m%d-%H%M%S')}-{args.data}-{args.rows}-"
            f"{'runs' if steady else 'rounds'}{runs}.json"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(to_json(meta, results), indent=2) + "\n")
        print(f"results: {path}", file=sys.stderr)
    finally:
        if args.drop_databases:
            server.drop_databases()
        server.stop()
    return 0
