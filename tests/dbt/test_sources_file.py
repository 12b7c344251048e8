"""`pen-factory dbt-sources`: transform/models/sources.yml generated from the tap's catalog.

The committed file must be what the command makes of the demo schema (the suite fails while
it is out of date, like the README settings tables), and it must follow the sources: a new
column appears with its type, description and tests.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from pen_factory import dbt_sources, demo_data
from testkit.dbt_runs import pen_factory
from testkit.processes import PROJECT_ROOT

COMMITTED = PROJECT_ROOT / dbt_sources.SOURCES_FILE


def _executable(name: str) -> str:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


@pytest.fixture
def demo_catalog(pg_server, make_database, tmp_path):
    """Demo source databases, and a function that runs the tap's discovery on them."""
    base = demo_data.endpoints_on_server(pg_server.host, pg_server.port, pg_server.user)
    sources = {
        name: replace(base[name], database=make_database(name)) for name in demo_data.SOURCES
    }
    for name, endpoint in sources.items():
        demo_data.create_source_table(endpoint, name, 10)
    config = tmp_path / "tap.json"
    config.write_text(
        json.dumps(
            {
                "sources": {
                    name: {"host": e.host, "port": e.port, "user": e.user, "database": e.database}
                    for name, e in sources.items()
                }
            }
        )
    )

    def discover() -> Path:
        completed = subprocess.run(
            [_executable("tap-manufacturing"), "--config", str(config), "--discover"],
            capture_output=True,
            text=True,
            check=True,
            stdin=subprocess.DEVNULL,
        )
        catalog = tmp_path / "catalog.json"
        catalog.write_text(completed.stdout)
        return catalog

    discover.sources = sources
    return discover


def _pen_factory(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_executable("pen-factory"), "--project-dir", str(PROJECT_ROOT), *args],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.integration
def test_committed_sources_are_what_the_demo_catalog_gives(demo_catalog):
    catalog = json.loads(demo_catalog().read_text())
    assert dbt_sources.render(catalog) == COMMITTED.read_text(), (
        "transform/models/sources.yml is out of date: run `pen-factory dbt-sources`"
    )


@pytest.mark.integration
def test_a_new_source_column_updates_the_file_and_fails_the_check(demo_catalog, tmp_path):
    refills = demo_catalog.sources["refills"]
    connection = refills.connect()
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE refills_production "
                "ADD COLUMN ink_lot_temperature_c numeric(5,2) NOT NULL DEFAULT 21.5"
            )
            cursor.execute(
                "COMMENT ON COLUMN refills_production.ink_lot_temperature_c "
                "IS 'Temperature of the ink lot at filling, deg C.'"
            )
    finally:
        connection.close()
    catalog = demo_catalog()

    check = _pen_factory("dbt-sources", "--catalog", str(catalog), "--check")
    assert check.returncode == 1
    assert check.stdout.strip() == (f"{COMMITTED} is out of date: run `pen-factory dbt-sources`")
    output = tmp_path / "sources.yml"
    written = _pen_factory("dbt-sources", "--catalog", str(catalog), "--output", str(output))
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == f"{output} regenerated"
    tables = {t["name"]: t for t in yaml.safe_load(output.read_text())["sources"][0]["tables"]}
    columns = tables["refills"]["columns"]
    assert columns[-1] == {
        "name": "ink_lot_temperature_c",
        "data_type": "numeric(5,2)",
        "description": "Temperature of the ink lot at filling, deg C.",
        "data_tests": ["not_null"],
    }
    committed = yaml.safe_load(COMMITTED.read_text())["sources"][0]["tables"]
    assert [c["name"] for c in columns[:-1]] == [
        c["name"] for c in next(t for t in committed if t["name"] == "refills")["columns"]
    ]
    again = _pen_factory(
        "dbt-sources", "--catalog", str(catalog), "--output", str(output), "--check"
    )
    assert (again.returncode, again.stdout.strip()) == (0, f"{output} is current")


def _catalog(*streams: dict) -> dict:
    return {"streams": list(streams)}


def _stream(name: str, properties: dict, key: list[str], **extra: object) -> dict:
    metadata = [{"breadcrumb": [], "metadata": {"schema-name": "public", "selected": True}}]
    metadata += extra.pop("column_metadata", [])
    return {
        "tap_stream_id": name,
        "stream": name,
        "table_name": f"{name}_production",
        "key_properties": key,
        "schema": {"type": "object", "properties": properties, **extra},
        "metadata": metadata,
    }


def _tables(catalog: dict) -> dict:
    document = yaml.safe_load(dbt_sources.render(catalog))
    return {table["name"]: table for table in document["sources"][0]["tables"]}


def test_tests_follow_keys_and_not_null():
    catalog = _catalog(
        _stream(
            "pencils",
            {
                "plant": {"type": ["string"], "x-sql-datatype": "text"},
                "run": {"type": ["integer"], "x-sql-datatype": "bigint"},
                "graphite": {"type": ["string", "null"], "x-sql-datatype": "text"},
                "Hardness": {"type": ["string"], "x-sql-datatype": "character varying(3)"},
            },
            ["plant", "run"],
            description="One row per pencil run.",
        )
    )
    table = _tables(catalog)["pencils"]
    assert table["description"] == (
        "One row per pencil run. Loaded from public.pencils_production by target-warehouse-raw."
    )
    assert table["meta"] == {
        "stream": "pencils",
        "origin": "public.pencils_production",
        "primary_key": ["plant", "run"],
    }
    assert table["data_tests"] == [
        {
            "unique_key": {
                "name": "source_unique_key_raw_pencils",
                "arguments": {"columns": ["plant", "run"]},
            }
        },
        {"load_is_fresh": {"name": "source_load_is_fresh_raw_pencils"}},
        {"rows_match_last_load": {"name": "source_rows_match_last_load_raw_pencils"}},
    ]
    assert table["columns"] == [
        {"name": "plant", "data_type": "text", "data_tests": ["not_null"]},
        {"name": "run", "data_type": "bigint", "data_tests": ["not_null"]},
        {"name": "graphite", "data_type": "text"},
        {
            "name": "Hardness",
            "quote": True,
            "data_type": "character varying(3)",
            "data_tests": ["not_null"],
        },
    ]


def test_deselected_streams_and_columns_are_left_out_and_names_follow_the_target():
    long_name = "x" * 70
    catalog = _catalog(
        _stream(
            "pen-caps",
            {"id": {"type": ["integer"]}, "secret": {"type": ["string"]}},
            ["id"],
            column_metadata=[
                {"breadcrumb": ["properties", "secret"], "metadata": {"selected": False}}
            ],
        ),
        _stream(long_name, {"id": {"type": ["integer"]}}, []),
        {**_stream("skipped", {"id": {"type": ["integer"]}}, ["id"]), "metadata": [
            {"breadcrumb": [], "metadata": {"selected": False}}
        ]},
    )  # fmt: skip
    tables = _tables(catalog)
    # Named as the target names the tables (its README's rule): a dash is kept (the name is
    # quoted); a name over 63 bytes is cut to 54 bytes and gets 8 hex digits of its SHA-256.
    long_table = "x" * 54 + "_" + hashlib.sha256(long_name.encode()).hexdigest()[:8]
    assert set(tables) == {"pen-caps", long_table}
    assert tables["pen-caps"]["meta"]["stream"] == "pen-caps"
    assert tables["pen-caps"]["quoting"] == {"identifier": True}
    assert [c["name"] for c in tables["pen-caps"]["columns"]] == ["id"]
    assert tables["pen-caps"]["columns"][0]["data_tests"] == ["unique", "not_null"]
    assert tables["pen-caps"]["data_tests"][0]["load_is_fresh"]["name"].endswith("_pen_caps")
    assert tables[long_table]["description"].startswith(f"The `{long_name}` stream")
    assert tables[long_table]["columns"] == [{"name": "id", "data_tests": ["not_null"]}]


def test_a_catalog_that_is_not_one_is_refused(tmp_path):
    bad = tmp_path / "catalog.json"
    bad.write_text("{not json")
    with pytest.raises(dbt_sources.CatalogError, match="is not JSON"):
        dbt_sources.load_catalog(bad)
    with pytest.raises(dbt_sources.CatalogError, match="no `streams` list"):
        dbt_sources.render({"type": "SCHEMA"})
    with pytest.raises(dbt_sources.CatalogError, match="selects no stream"):
        dbt_sources.render(_catalog())


@pytest.mark.e2e
@pytest.mark.integration
def test_by_default_the_catalog_comes_from_meltano(pipeline):
    """Without --catalog the command asks Meltano for the catalog, configured as in the job."""
    checked = pen_factory(pipeline, "dbt-sources", "--check")
    assert (checked.returncode, checked.stdout.strip()) == (0, f"{COMMITTED} is current")
    pipeline.env["REFILLS_PORT"] = "1"
    unreachable = pen_factory(pipeline, "dbt-sources", "--check")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith(
        "pen-factory: error: tap-manufacturing discovery failed (exit 1): "
    )
