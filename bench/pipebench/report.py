"""The bench's output: a table per run, medians per method, table sizes after the series, and
the same in a JSON results file.

"Steady state" is runs 2..N: every run but a user's first replaces tables that already hold
the data. The figures the issue's goals are stated in are printed as such: each table's size
after the last run against its size after the first load, and run N's wall time against run
2's (also smoothed, median of the last three against runs 2-4, for a noisy machine).
"""

from __future__ import annotations

import statistics
from typing import Any

from pen_factory.demo_data import SOURCES
from pipebench.methods import RunResult

MB = 1_000_000
MIB = 1024  # RSS is in KiB
# The goals for steady state (a table at most this many times its size after one load; the
# last run at most this many times the second's wall time).
GROWTH_BOUND = 2.5
SLOWDOWN_BOUND = 1.10


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _paths(paths: tuple[int, int, int] | None) -> str:
    return "n/a" if paths is None else "/".join(f"{count}" for count in paths)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _by_method(results: list[RunResult]) -> dict[str, list[RunResult]]:
    grouped: dict[str, list[RunResult]] = {}
    for result in results:
        grouped.setdefault(result.method, []).append(result)
    return grouped


def _over(later: float | None, earlier: float | None) -> float | None:
    return later / earlier if later is not None and earlier else None


def summarize(results: list[RunResult], rows: int) -> dict[str, dict[str, Any]]:
    """Per method: run 1, medians of runs 2..N and of all runs, trend, peaks, record paths.

    The trend compares run N with run 2 three ways: wall time (what the goal is stated in),
    the ratio to the raw copy of the same run (which cancels what a busy machine does to
    both), and the median of the last three runs against runs 2-4 (from 7 runs on).
    """
    summary: dict[str, dict[str, Any]] = {}
    for method, runs in _by_method(results).items():
        walls = [run.wall_s for run in runs]
        ratios = [run.ratio for run in runs if run.ratio is not None]
        later = runs[1:]
        second = runs[1] if len(runs) >= 2 else None
        paths = [run.record_paths for run in runs if run.record_paths is not None]
        tap_rss = [run.tap_rss_kib for run in runs if run.tap_rss_kib is not None]
        target_rss = [run.target_rss_kib for run in runs if run.target_rss_kib is not None]
        later_wall = _median([run.wall_s for run in later])
        summary[method] = {
            "runs": len(runs),
            "first_wall_s": walls[0],
            "first_ratio": runs[0].ratio,
            "steady_median_wall_s": later_wall,
            "steady_median_ratio": _median([run.ratio for run in later if run.ratio]),
            "steady_rows_per_s": rows * len(SOURCES) / later_wall if later_wall else None,
            "median_wall_s": _median(walls),
            "median_ratio": _median(ratios),
            "last_over_second": _over(walls[-1], second and second.wall_s),
            "ratio_last_over_second": _over(runs[-1].ratio, second and second.ratio),
            "last3_over_runs2to4": (
                statistics.median(walls[-3:]) / statistics.median(walls[1:4])
                if len(runs) >= 7
                else None
            ),
            "server_cpu_last_over_second": _over(
                runs[-1].server_cpu_s, second and second.server_cpu_s
            ),
            "steady_median_server_cpu_s": _median(
                [run.server_cpu_s for run in later if run.server_cpu_s is not None]
            ),
            "steady_median_wal_bytes": _median(
                [run.wal_bytes for run in later if run.wal_bytes is not None]
            ),
            "peak_tap_rss_kib": max(tap_rss) if tap_rss else None,
            "peak_target_rss_kib": max(target_rss) if target_rss else None,
            "record_paths_total": (
                [sum(path[i] for path in paths) for i in range(3)] if paths else None
            ),
        }
    return summary


def table_growth(results: list[RunResult]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per method and table: size after the first and the last run, growth, dead rows."""
    growth: dict[str, dict[str, dict[str, Any]]] = {}
    for method, runs in _by_method(results).items():
        first, last = runs[0].tables, runs[-1].tables
        growth[method] = {
            table: {
                "bytes_after_first": first[table].total_bytes,
                "bytes_after_last": stats.total_bytes,
                "growth": stats.total_bytes / first[table].total_bytes,
                "dead_rows": stats.dead_rows,
                "live_rows": stats.live_rows,
                "heap_bytes": stats.heap_bytes,
                "index_bytes": stats.index_bytes,
            }
            for table, stats in sorted(last.items())
            if table in first
        }
    return growth


def render(meta: dict[str, Any], results: list[RunResult]) -> str:
    """The human-readable report."""
    rows = meta["bench"]["rows"]
    server = meta["server"]
    lines = [
        f"data set: {meta['bench']['data']}   rows per table: {rows:,}   tables: {len(SOURCES)}"
        f"   runs: {meta['bench']['runs']} ({meta['bench']['mode']})   code: "
        f"{meta['bench']['code']}",
        f"server: PostgreSQL {server['server_version']} ({server['server']})   autovacuum "
        f"{server['autovacuum']}   fsync {server['fsync']}   full_page_writes "
        f"{server['full_page_writes']}   shared_buffers {server['shared_buffers']}",
        "target settings: "
        + (
            ", ".join(f"{k}={v}" for k, v in meta["bench"].get("target_settings", {}).items())
            or "defaults"
        )
        + f"   changes between runs: {meta['bench'].get('change_percent', 0):g} % of the rows",
        "",
        f"{'run':>3} {'method':<14} {'wall s':>7} {'ratio':>6} {'client CPU s':>12} "
        f"{'server CPU s':>12} {'WAL MB':>8} {'tap MiB':>7} {'target MiB':>10} "
        f"{'raw MB':>8} {'dead rows':>10}  record paths compiled/typed/exact",
    ]
    for result in results:
        size = sum(stats.total_bytes for stats in result.tables.values()) / MB
        dead = sum(stats.dead_rows for stats in result.tables.values())
        tap = result.tap_rss_kib / MIB if result.tap_rss_kib else None
        target = result.target_rss_kib / MIB if result.target_rss_kib else None
        wal = result.wal_bytes / MB if result.wal_bytes is not None else None
        lines.append(
            f"{result.run:>3} {result.method:<14} {result.wall_s:>7.2f} "
            f"{_fmt(result.ratio, '.2f'):>6} {result.client_cpu_s:>12.2f} "
            f"{_fmt(result.server_cpu_s, '.2f'):>12} {_fmt(wal, '.1f'):>8} "
            f"{_fmt(tap, '.0f'):>7} {_fmt(target, '.0f'):>10} {size:>8.1f} {dead:>10,}  "
            f"{_paths(result.record_paths) if result.method != 'copy' else '-'}"
        )
    lines += ["", *_render_summary(summarize(results, rows))]
    lines += ["", *_render_tables(table_growth(results), meta["bench"]["runs"])]
    return "\n".join(lines)


def _render_summary(summary: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "medians per method (runs 2..N replace loaded tables: the steady state in --runs mode;"
        " x = wall / raw copy of the same run)",
        f"{'method':<14} {'run 1 s':>8} {'run 1 x':>8} {'2..N s':>8} {'2..N x':>7} "
        f"{'rows/s':>9} {'all s':>7} {'all x':>6} {'srv CPU s':>9} {'WAL MB':>8} "
        f"{'tap MiB':>8} {'target MiB':>10}  exact records",
    ]
    for method, s in summary.items():
        tap, target, wal = (
            s["peak_tap_rss_kib"],
            s["peak_target_rss_kib"],
            s["steady_median_wal_bytes"],
        )
        exact = s["record_paths_total"]
        lines.append(
            f"{method:<14} {s['first_wall_s']:>8.2f} {_fmt(s['first_ratio'], '.2f'):>8} "
            f"{_fmt(s['steady_median_wall_s'], '.2f'):>8} "
            f"{_fmt(s['steady_median_ratio'], '.2f'):>7} "
            f"{_fmt(s['steady_rows_per_s'], ',.0f'):>9} {s['median_wall_s']:>7.2f} "
            f"{_fmt(s['median_ratio'], '.2f'):>6} "
            f"{_fmt(s['steady_median_server_cpu_s'], '.2f'):>9} "
            f"{_fmt(wal / MB if wal is not None else None, '.1f'):>8} "
            f"{_fmt(tap / MIB if tap else None, '.0f'):>8} "
            f"{_fmt(target / MIB if target else None, '.0f'):>10}  "
            f"{'-' if method == 'copy' else ('n/a' if exact is None else f'{exact[2]:,}')}"
        )
    lines += [
        "",
        f"trend, run N against run 2 (goal: wall at most {SLOWDOWN_BOUND:.2f}x)",
        f"{'method':<14} {'wall N/2':>9} {'x N/2':>7} {'last3/2-4':>10} {'srv CPU N/2':>12}",
    ]
    for method, s in summary.items():
        lines.append(
            f"{method:<14} {_fmt(s['last_over_second'], '.2f'):>9} "
            f"{_fmt(s['ratio_last_over_second'], '.2f'):>7} "
            f"{_fmt(s['last3_over_runs2to4'], '.2f'):>10} "
            f"{_fmt(s['server_cpu_last_over_second'], '.2f'):>12}"
        )
    return lines


def _render_tables(growth: dict[str, dict[str, dict[str, Any]]], runs: int) -> list[str]:
    lines = [
        f"raw tables after run {runs} (size = pg_total_relation_size; growth = size after run "
        f"{runs} / size after run 1; goal: growth at most {GROWTH_BOUND}x)",
        f"{'method':<14} {'table':<9} {'run 1 MB':>9} {f'run {runs} MB':>10} {'growth':>7} "
        f"{'dead rows':>11} {'live rows':>11}",
    ]
    for method, tables in growth.items():
        for table, t in tables.items():
            lines.append(
                f"{method:<14} {table:<9} {t['bytes_after_first'] / MB:>9.1f} "
                f"{t['bytes_after_last'] / MB:>10.1f} {t['growth']:>6.2f}x "
                f"{t['dead_rows']:>11,} {t['live_rows']:>11,}"
            )
    return lines


def to_json(meta: dict[str, Any], results: list[RunResult]) -> dict[str, Any]:
    """Everything the report shows, and each run's per-table sizes, for the results file."""
    return {
        **meta,
        "runs": [
            {
                "run": result.run,
                "method": result.method,
                "wall_s": result.wall_s,
                "ratio": result.ratio,
                "client_cpu_s": result.client_cpu_s,
                "server_cpu_s": result.server_cpu_s,
                "wal_bytes": result.wal_bytes,
                "tap_rss_kib": result.tap_rss_kib,
                "target_rss_kib": result.target_rss_kib,
                "record_paths": (
                    dict(zip(("compiled", "typed", "exact"), result.record_paths, strict=True))
                    if result.record_paths
                    else None
                ),
                "tables": {name: stats.as_dict() for name, stats in result.tables.items()},
            }
            for result in results
        ],
        "summary": summarize(results, meta["bench"]["rows"]),
        "tables": table_growth(results),
    }
