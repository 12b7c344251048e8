"""The type zoo through `meltano run`: every value and every column type as the source has it.

Each of the three sources gets a table with every built-in type a production table may hold
(see type_zoo.py), and the sources are pointed at it with `REFILLS_TABLE` and friends, as a
user would. Two runs, as production goes: the first with RECORD messages (bodies
INCREMENTAL, the others full table), then, after rows changed and new ones arrived, a second
in BATCH mode. After each, every column of every table is compared with its source: value
for value (`::text`, TimeZone UTC) and type for type (`format_type`; the documented type
where the warehouse cannot have the source's own: enum -> text, domain -> its base type,
composite -> jsonb). A failure prints one line per differing column.
"""

from __future__ import annotations

import pytest

from pen_factory import demo_data
from testkit.pipeline import Pipeline, warehouse_rows
from testkit.type_zoo import (
    ZooColumn,
    columns_supported,
    compare,
    create_zoo,
    mismatch_report,
    quote_ident,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ZOO_TABLE = "type_zoo"


def _assert_zoo_landed(pipeline: Pipeline, columns: tuple[ZooColumn, ...], run: str) -> None:
    reports = []
    for source in demo_data.SOURCES:
        mismatches = compare(
            pipeline.server.dsn(pipeline.sources[source].database),
            ZOO_TABLE,
            pipeline.server.dsn(pipeline.warehouse.database),
            f'"{pipeline.schema}"."{source}"',
            columns,
        )
        if mismatches:
            reports.append(mismatch_report(f"{run}, {source}", mismatches))
    if reports:
        pytest.fail("\n\n".join(reports), pytrace=False)


def _change_like_production(pipeline: Pipeline, columns: tuple[ZooColumn, ...]) -> None:
    """Every third row takes another row's values (NULLs, JSON nulls and extremes move
    around) with a later `updated_at`, and five new rows arrive."""
    names = ", ".join(quote_ident(c.name) for c in columns)
    for source in demo_data.SOURCES:
        pipeline.source_sql(
            source,
            f"UPDATE {ZOO_TABLE} AS t SET updated_at = '2024-06-01 00:00:00+00', ({names}) = "
            f"(SELECT {names} FROM {ZOO_TABLE} AS s WHERE s.id = t.id % 29 + 1) "
            f"WHERE t.id % 3 = 0",
            f"INSERT INTO {ZOO_TABLE} (id, updated_at, {names}) "
            f"SELECT id + 100, '2024-06-02 00:00:00+00', {names} FROM {ZOO_TABLE} WHERE id <= 5",
        )


def test_every_type_arrives_exactly_through_meltano_run(pipeline: Pipeline, tmp_path):
    columns = columns_supported(pipeline.server.dsn(pipeline.warehouse.database))
    for offset, source in enumerate(demo_data.SOURCES):
        create_zoo(pipeline.server.dsn(pipeline.sources[source].database), ZOO_TABLE,
                   offset, columns)  # fmt: skip
        pipeline.env[f"{source.upper()}_TABLE"] = ZOO_TABLE
    pipeline.env["BODIES_REPLICATION_METHOD"] = "INCREMENTAL"
    pipeline.env["BODIES_REPLICATION_KEY"] = "updated_at"

    pipeline.meltano("run", "tap-manufacturing", "target-warehouse-raw")
    _assert_zoo_landed(pipeline, columns, "first run (RECORD messages)")

    _change_like_production(pipeline, columns)
    pipeline.env["PIPELINE_BATCH_DIR"] = str(tmp_path / "batches")
    pipeline.meltano("run", "tap-manufacturing", "target-warehouse-raw")
    _assert_zoo_landed(pipeline, columns, "second run (BATCH files)")

    history = warehouse_rows(
        pipeline,
        f'SELECT stream, status FROM "{pipeline.schema}"._load_history ORDER BY stream, id',
    )
    # bodies' first run has no bookmark: a whole-table read, which replaces; then it merges.
    assert history == [
        ("bodies", "replaced"), ("bodies", "upserted"), ("refills", "replaced"),
        ("refills", "replaced"), ("springs", "replaced"), ("springs", "replaced"),
    ]  # fmt: skip
