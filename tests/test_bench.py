"""The benchmark harness keeps working: its data sets hold what users' tables hold, and a
tiny steady-state run reports every run, ratios, sizes and dead rows, and checks content."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg2 import sql

from pen_factory.embedded import ServerAddress
from pipebench.datasets import DATA_SETS, prepare_sources
from pipebench.methods import Runner, record_paths
from pipebench.series import Series, checksum
from pipebench.server import LOCAL_HOSTS, BenchServer
from pipebench.singer_file import escape_non_ascii

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


@pytest.fixture
def bench_server(pg_server: ServerAddress) -> Iterator[BenchServer]:
    """The test server with a unique database prefix; its databases are dropped afterwards."""
    server = BenchServer(pg_server, f"bench_t{uuid.uuid4().hex[:8]}")
    yield server
    server.drop_databases()


def _rows(server: BenchServer, database: str, query: str) -> list[tuple]:
    with server.autocommit(database) as cursor:
        cursor.execute(query)
        return cursor.fetchall()


def _records(server: BenchServer, database: str, query: str) -> list[dict]:
    with server.autocommit(database) as cursor:
        cursor.execute(query)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_realistic_table_holds_escapes_multibyte_long_text_json_and_nulls(bench_server):
    prepare_sources(bench_server, DATA_SETS["realistic"], 2700, seed=7)
    database = bench_server.database("refills")
    rows = _records(bench_server, database, "SELECT * FROM refills_realistic ORDER BY id")
    assert len(rows) == 2700
    remarks = [row["remark"] or "" for row in rows]
    nasty = [
        text
        for text in remarks
        if all(char in text for char in '\t"\\\n') and any(ord(char) > 0xFFFF for char in text)
    ]
    assert 0.08 < len(nasty) / len(rows) < 0.14  # about one in nine
    assert any("\x1f" in text for text in nasty)  # a control character, \u001f in JSON
    assert any(len(row["description"] or "") > 1300 for row in rows)  # TOASTed
    documents = [row["attributes"] for row in rows if row["attributes"]]
    assert all(isinstance(document["operator"], dict) for document in documents)
    assert any("\n" in (document["comment"] or "") for document in documents)
    not_null = {"id", "site_code", "recorded_at"}
    for name in rows[0]:
        nulls = sum(row[name] is None for row in rows)
        assert (nulls == 0) if name in not_null else (nulls > 0), name


@pytest.mark.slow
def test_data_sets_are_deterministic_by_seed(bench_server, pg_server):
    realistic = DATA_SETS["realistic"]
    prepare_sources(bench_server, realistic, 500, seed=3)
    table = sql.Identifier("public", realistic.table("bodies"))
    first = checksum(bench_server, bench_server.database("bodies"), table)
    other = BenchServer(pg_server, bench_server.prefix + "b")
    try:
        prepare_sources(other, realistic, 500, seed=3)
        assert checksum(other, other.database("bodies"), table) == first
        prepare_sources(other, realistic, 500, seed=4)
        assert checksum(other, other.database("bodies"), table) != first
    finally:
        other.drop_databases()
    # Kept, not regenerated, when rows and seed match; regenerated when they do not.
    assert prepare_sources(bench_server, realistic, 500, seed=3) == []
    assert prepare_sources(bench_server, realistic, 501, seed=3) == ["refills", "bodies", "springs"]


def test_wide_table_has_over_60_columns_of_mixed_types_all_with_nulls(bench_server):
    prepare_sources(bench_server, DATA_SETS["wide"], 300, seed=1)
    database = bench_server.database("springs")
    types = _rows(
        bench_server,
        database,
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'springs_wide'::regclass AND attnum > 0 ORDER BY attnum",
    )
    assert len(types) > 60
    assert len({kind for _, kind in types}) >= 12
    null_counts = _rows(
        bench_server,
        database,
        "SELECT "
        + ", ".join(f"count(*) - count({name})" for name, _ in types[1:])
        + " FROM springs_wide",
    )[0]
    assert all(count > 0 for count in null_counts)


def test_non_ascii_escaping_is_lossless_and_uses_surrogate_pairs():
    line = json.dumps({"note": 'Zürich\t"ok" \\ 東京 😀', "n": 1.50}, ensure_ascii=False) + "\n"
    escaped = escape_non_ascii(line)
    assert escaped.isascii()
    assert "\\ud83d\\ude00" in escaped  # U+1F600 as a surrogate pair
    assert escaped == json.dumps(json.loads(line)) + "\n"  # what ensure_ascii writes
    assert json.loads(escaped) == json.loads(line)


def test_record_paths_are_read_from_the_target_log():
    log = "INFO ... record paths: 299990 compiled, 7 typed, 3 exact\n"
    assert record_paths(log) == (299990, 7, 3)
    assert record_paths(log + log) == (599980, 14, 6)  # one line per stream: summed
    assert record_paths("INFO nothing about paths\n") is None


@pytest.mark.slow
def test_steady_state_bench_reports_every_run_and_checks_content(bench_server, tmp_path):
    results = tmp_path / "results.json"
    address = bench_server.address
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench.py"), "--data", "realistic",
         "--rows", "200", "--runs", "2", "--methods", "pipe,target", "--escape-non-ascii",
         "--target-setting", "vacuum=before-load", "--change-percent", "10",
         "--host", address.host, "--port", str(address.port), "--user", address.user,
         "--database-prefix", bench_server.prefix, "--results", str(results)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    run_lines = re.findall(
        # run, method, wall, ratio, ..., raw MB, dead rows, record paths
        r"^\s*(\d) (copy|pipe|target)\s+(\d+\.\d\d)\s+(\d+\.\d\d)\s+.*"
        r"\s(\d+\.\d)\s+([\d,]+)\s+(\S+)$",
        out,
        re.MULTILINE,
    )
    assert [(run, method) for run, method, *_ in run_lines] == [
        ("1", "copy"), ("1", "pipe"), ("1", "target"),
        ("2", "copy"), ("2", "pipe"), ("2", "target"),
    ]  # fmt: skip
    assert [line[3] for line in run_lines if line[1] == "copy"] == ["1.00", "1.00"]
    assert all(float(line[3]) > 0 for line in run_lines)
    pipe_paths = run_lines[4][6]  # "n/a" until the target logs its record paths
    if pipe_paths != "n/a":
        assert sum(map(int, pipe_paths.split("/"))) == 600  # every record took one path
    assert re.search(
        r"^pipe\s+(refills|bodies|springs)\s+\d+\.\d\s+\d+\.\d\s+\d+\.\d\dx", out, re.M
    )

    assert "target settings: vacuum=before-load   changes between runs: 10 % of the rows" in out
    # Run 2 loaded the changed sources: the checksum check after the last run compared them.
    assert _rows(
        bench_server, bench_server.database("bodies"),
        "SELECT obj_description('public.bodies_realistic'::regclass)",
    ) == [("pipebench: changed",)]  # fmt: skip

    report = json.loads(results.read_text())
    assert report["bench"]["mode"].startswith("steady state")
    assert report["bench"]["target_settings"] == {"vacuum": "before-load"}
    assert report["bench"]["change_percent"] == 10
    assert len(report["runs"]) == 6
    for run in report["runs"]:
        assert run["ratio"] > 0
        assert run["wall_s"] > 0
        assert set(run["tables"]) == {"refills", "bodies", "springs"}
        assert all(table["live_rows"] == 200 for table in run["tables"].values())
        assert run["wal_bytes"] > 0
        if address.host in LOCAL_HOSTS:  # the server's processes are visible in /proc
            assert run["server_cpu_s"] is not None
    printed = (
        None
        if pipe_paths == "n/a"
        else dict(zip(("compiled", "typed", "exact"), map(int, pipe_paths.split("/")), strict=True))
    )
    assert report["runs"][4]["record_paths"] == printed
    pipe = report["summary"]["pipe"]
    assert pipe["peak_tap_rss_kib"] > 0
    assert pipe["peak_target_rss_kib"] > 0
    assert pipe["last_over_second"] > 0
    assert {table["growth"] > 0 for table in report["tables"]["pipe"].values()} == {True}
    # The target alone, fed \\u-escaped input (surrogate pairs included), loaded the same
    # content: the bench compared its tables with the sources after runs 1 and 2.
    assert report["summary"]["target"]["peak_target_rss_kib"] > 0

    # The content check is real: one changed value in the warehouse stops the bench.
    with bench_server.autocommit(bench_server.warehouse) as cursor:
        cursor.execute("UPDATE bench_pipe.refills SET remark = remark || 'x' WHERE id = 9")
    series = Series(
        bench_server,
        DATA_SETS["realistic"],
        Runner(bench_server, DATA_SETS["realistic"], tmp_path),
        200,
        vacuum_between=False,
    )
    series.verify("pipe", full=False)  # counts still match
    with pytest.raises(RuntimeError, match=r"bench_pipe\.refills differs from its source"):
        series.verify("pipe", full=True)
