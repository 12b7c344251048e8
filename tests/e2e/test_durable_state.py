"""Meltano's state in PostgreSQL (the prod set-up): it outlives `.meltano/`, and parallel
source tasks keep their own bookmarks.

Each test puts Meltano's system database in its own warehouse database, schema `meltano`,
through MELTANO_DATABASE_URI, and runs the `prod` environment as production would.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pen_factory import demo_data
from testkit.pipeline import (
    Pipeline,
    assert_warehouse_equals_sources,
    table_snapshot,
    warehouse_rows,
)
from testkit.processes import PROJECT_ROOT, meltano_executable

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

LATER = "timestamptz '2030-01-01 00:00:00+00'"


def fresh_system_folder(installed: Path, folder: Path) -> Path:
    """A `.meltano/` as on a new machine: the plugins installed, nothing else (no state file,
    no run folders). The plugin installs are links to the session's, to save reinstalling."""
    folder.mkdir(parents=True)
    for kind in ("extractors", "loaders", "utilities"):
        if (installed / kind).exists():
            (folder / kind).symlink_to(installed / kind)
    return folder


@pytest.fixture
def prod(pipeline: Pipeline) -> Pipeline:
    """The pipeline in the prod environment, its state in the warehouse's `meltano` schema."""
    connection = pipeline.warehouse.connect()
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("CREATE SCHEMA meltano")
    finally:
        connection.close()
    server = pipeline.server
    pipeline.env.update(
        MELTANO_ENVIRONMENT="prod",
        MELTANO_DATABASE_URI=(
            f"postgresql://{server.user}@{server.host}:{server.port}/"
            f"{pipeline.warehouse.database}?options=-csearch_path%3Dmeltano"
        ),
        # prod requires TLS to the warehouse; the test server has none.
        TARGET_WAREHOUSE_RAW_SSLMODE="disable",
        WAREHOUSE_LOAD_METHOD="upsert",
    )
    for source in demo_data.SOURCES:
        pipeline.env[f"{source.upper()}_REPLICATION_METHOD"] = "INCREMENTAL"
        pipeline.env[f"{source.upper()}_REPLICATION_KEY"] = "updated_at"
    pipeline.meltano("upgrade", "database")  # creates Meltano's tables once, before any run
    return pipeline


def change_rows(pipeline: Pipeline, source: str, every: int) -> int:
    """Move `updated_at` of every `every`-th row past the bookmark; the number of rows."""
    pipeline.source_sql(
        source,
        f"UPDATE {source}_production SET updated_at = {LATER} WHERE id % {every} = 0",
    )
    return 300 // every


def rows_read(output: str, source: str) -> int:
    found = re.search(rf"Finished stream '{source}': (\d+) rows", output)
    assert found, output[-3000:]
    return int(found.group(1))


def state_ids(pipeline: Pipeline) -> list[str]:
    return sorted(pipeline.meltano("state", "list").stdout.split())


def test_an_incremental_bookmark_survives_deleting_the_meltano_folder(
    prod: Pipeline, meltano_sys_dir: Path, tmp_path: Path
):
    task = ("run", "tap-manufacturing--refills", "target-warehouse-raw")
    first_machine = fresh_system_folder(meltano_sys_dir, tmp_path / "machine-1" / ".meltano")
    prod.env["MELTANO_SYS_DIR_ROOT"] = str(first_machine)
    assert rows_read(prod.meltano(*task).output, "refills") == 300
    assert not list(first_machine.glob("*.db"))  # no local state file was written

    # The folder is gone (a new container); the next run starts from the bookmark.
    shutil.rmtree(first_machine)
    prod.env["MELTANO_SYS_DIR_ROOT"] = str(
        fresh_system_folder(meltano_sys_dir, tmp_path / "machine-2" / ".meltano")
    )
    changed = change_rows(prod, "refills", 10)
    # The rows changed, plus those at the old bookmark, which the tap reads again (>=).
    assert changed <= rows_read(prod.meltano(*task).output, "refills") <= changed + 5
    assert_warehouse_equals_sources_for(prod, "refills")
    assert state_ids(prod) == ["prod:tap-manufacturing--refills-to-target-warehouse-raw"]
    assert warehouse_rows(prod, "SELECT count(*) FROM meltano.state") == [(1,)]


def assert_warehouse_equals_sources_for(pipeline: Pipeline, source: str) -> None:
    """Like assert_warehouse_equals_sources, for the one table a task loaded."""
    columns, count, digest = table_snapshot(
        pipeline.sources[source], "public", f"{source}_production"
    )
    names = [name for name, _ in columns]
    assert table_snapshot(pipeline.warehouse, "raw", source, names)[1:] == (count, digest)


def run_sources_in_parallel(pipeline: Pipeline) -> dict[str, str]:
    """The job's three extract-load tasks at once, as the DAG's parallel tasks run them."""
    processes = {
        source: subprocess.Popen(
            [meltano_executable(), "run", f"tap-manufacturing--{source}", "target-warehouse-raw"],
            cwd=PROJECT_ROOT,
            env=pipeline.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for source in demo_data.SOURCES
    }
    outputs = {}
    for source, process in processes.items():
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output[-4000:]
        outputs[source] = output
    return outputs


def test_parallel_source_tasks_keep_their_own_state(prod: Pipeline):
    first = run_sources_in_parallel(prod)
    assert {source: rows_read(first[source], source) for source in first} == {
        "refills": 300, "bodies": 300, "springs": 300,
    }  # fmt: skip
    assert state_ids(prod) == [
        f"prod:tap-manufacturing--{source}-to-target-warehouse-raw"
        for source in sorted(demo_data.SOURCES)
    ]
    # Each state holds its own stream's bookmark and no other.
    for source in demo_data.SOURCES:
        state = prod.meltano(
            "state", "get", f"prod:tap-manufacturing--{source}-to-target-warehouse-raw"
        ).stdout
        assert f'"{source}"' in state
        assert not any(f'"{other}"' in state for other in demo_data.SOURCES if other != source)

    # Had one task's state overwritten another's, that source would be read in full again.
    changed = {"refills": change_rows(prod, "refills", 10),
               "bodies": change_rows(prod, "bodies", 20),
               "springs": change_rows(prod, "springs", 30)}  # fmt: skip
    second = run_sources_in_parallel(prod)
    for source, rows in changed.items():
        assert rows <= rows_read(second[source], source) <= rows + 5, source
    assert_warehouse_equals_sources(prod)
