"""Discovery, SCHEMA messages, selection, stream maps and flattening."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testkit.postgres import run_sql

pytestmark = pytest.mark.integration

EXPECTED = json.loads((Path(__file__).parent / "data" / "production_catalog.json").read_text())


def _normalised(catalog: dict, factory) -> dict:
    """Replace the per-test database names and size estimates by stable values."""
    for entry in catalog["streams"]:
        name = entry["stream"]
        assert entry["database_name"] == factory.databases[name]
        entry["database_name"] = name
        entry["row_count"] = 0
        root = next(m for m in entry["metadata"] if m["breadcrumb"] == [])["metadata"]
        assert root["database-name"] == factory.databases[name]
        root["database-name"] = name
        root["row-count"] = 0
    return catalog


def test_discovery_describes_each_source_table(factory, run_tap):
    catalog = json.loads(run_tap(factory.config(), "--discover").stdout)
    assert [s["tap_stream_id"] for s in catalog["streams"]] == ["refills", "bodies", "springs"]
    assert _normalised(catalog, factory) == EXPECTED
    refills = catalog["streams"][0]
    assert refills["key_properties"] == ["id"]
    properties = refills["schema"]["properties"]
    assert properties["diameter_mm"] == {
        "type": ["number", "string", "null"],
        "x-sql-datatype": "numeric(10,4)",
    }
    assert properties["produced_at"]["x-sql-datatype"] == "timestamp with time zone"
    assert properties["tags"]["x-sql-datatype"] == "text[]"
    assert properties["attributes"]["x-sql-datatype"] == "jsonb"
    metadata = {tuple(m["breadcrumb"]): m["metadata"] for m in refills["metadata"]}
    assert metadata[()]["selected"] is True
    assert metadata[()]["selected-by-default"] is True
    assert metadata[()]["table-key-properties"] == ["id"]
    assert metadata[()]["schema-name"] == "public"
    assert metadata[()]["is-view"] is False
    assert metadata[("properties", "id")]["inclusion"] == "automatic"
    assert metadata[("properties", "line")]["inclusion"] == "available"
    assert metadata[("properties", "batch_code")]["sql-datatype"] == "character varying(20)"


def test_source_comments_become_descriptions(factory, run_tap):
    """COMMENT ON in a source reaches the catalog (and from there the generated dbt sources)."""
    run_sql(
        factory.dsn("refills"),
        "COMMENT ON TABLE refills_production IS 'One row per filling run.'",
        "COMMENT ON COLUMN refills_production.diameter_mm IS 'Tip diameter, mm.'",
        "COMMENT ON COLUMN refills_production.cycle_time IS 'Time the run took.'",
    )
    catalog = json.loads(run_tap(factory.config(), "--discover").stdout)
    refills, bodies = catalog["streams"][0], catalog["streams"][1]
    assert refills["schema"]["description"] == "One row per filling run."
    properties = refills["schema"]["properties"]
    assert properties["diameter_mm"] == {
        "type": ["number", "string", "null"],
        "description": "Tip diameter, mm.",
        "x-sql-datatype": "numeric(10,4)",
    }
    # The encoding note of the type mapping stays, after the source's own words.
    assert properties["cycle_time"]["description"] == (
        "Time the run took. (ISO 8601 duration as PostgreSQL writes it, e.g. P1Y2M3DT4H5M6.5S)"
    )
    assert "description" not in properties["line"]
    assert "description" not in bodies["schema"]


def test_plain_run_emits_all_streams_with_versions(factory, run_tap):
    run = run_tap(factory.config())
    for source in ("refills", "bodies", "springs"):
        schema = run.of_type("SCHEMA", source)[0]
        assert schema["key_properties"] == ["id"]
        assert schema["schema"]["properties"]["length_mm"]["x-sql-datatype"] == "numeric(10,4)"
        records = run.of_type("RECORD", source)
        assert len(records) == 20
        versions = {m["version"] for m in records}
        assert len(versions) == 1
        activate = run.of_type("ACTIVATE_VERSION", source)
        assert [m["version"] for m in activate] == list(versions)
        # ACTIVATE_VERSION comes after the stream's last record.
        kinds = [(m["type"], m.get("stream")) for m in run.messages]
        last_record = max(i for i, k in enumerate(kinds) if k == ("RECORD", source))
        assert kinds.index(("ACTIVATE_VERSION", source)) > last_record
        assert all(m["time_extracted"].endswith("+00:00") for m in records)
        assert f"Finished stream '{source}': 20 rows in" in run.stderr


def test_catalog_deselection_of_streams_and_columns(factory, run_tap):
    config = factory.config()
    catalog = json.loads(run_tap(config, "--discover").stdout)
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if entry["stream"] == "bodies" and item["breadcrumb"] == []:
                item["metadata"]["selected"] = False
            if entry["stream"] == "refills" and item["breadcrumb"] == ["properties", "attributes"]:
                item["metadata"]["selected"] = False
    run = run_tap(config, catalog=catalog)
    assert not run.of_type("RECORD", "bodies")
    assert not run.of_type("SCHEMA", "bodies")
    records = run.records("refills")
    assert len(records) == 20
    assert "attributes" not in records[0]
    assert "attributes" not in run.of_type("SCHEMA", "refills")[0]["schema"]["properties"]
    assert len(run.records("springs")) == 20


def test_stream_map_and_flattening(factory, run_tap):
    config = {
        **factory.config(),
        "stream_maps": {
            "refills": {
                "__alias__": "refills_mapped",
                "weight_kg": "weight_g / 1000",
                "line": None,
            },
            "springs": None,
        },
        "flattening_enabled": True,
        "flattening_max_depth": 1,
    }
    run = run_tap(config)
    assert not run.of_type("RECORD", "springs")
    mapped = run.records("refills_mapped")
    assert len(mapped) == 20
    first = mapped[0]
    assert "line" not in first
    assert first["weight_kg"] == pytest.approx(first["weight_g"] / 1000)
    # jsonb has no declared properties, so the SDK's flattener writes it as JSON text.
    assert json.loads(first["attributes"]) == {"machine": "M1", "speed": 0.5}
    assert json.loads(first["tags"]) == ["ink", "tip-1"]
    assert run.of_type("ACTIVATE_VERSION", "refills_mapped")
    body = run.records("bodies")[0]
    assert json.loads(body["attributes"])["speed"] == 0.5
    assert body["length_mm"] == 12.34
    assert body["produced_at"] == "2024-01-01T00:00:01+00:00"


def test_fourth_source_by_configuration_only(factory, pg_server, make_database, run_tap):
    from testkit.postgres import run_sql
    from testkit.tap import PRODUCTION_DDL, PRODUCTION_ROWS

    pencils = make_database("pencils")
    run_sql(
        pg_server.dsn(pencils),
        PRODUCTION_DDL.format(table="pencils_production"),
        PRODUCTION_ROWS.format(table="pencils_production", start=1, stop=3),
    )
    config = factory.config()
    config["sources"]["pencils"] = {
        "host": pg_server.host,
        "port": str(pg_server.port),
        "user": pg_server.user,
        "database": pencils,
    }
    run = run_tap(config)
    assert [r["id"] for r in run.records("pencils")] == [1, 2, 3]


def test_config_from_environment(factory, run_tap):
    env = {
        "TAP_MANUFACTURING_SOURCES": json.dumps(factory.config()["sources"]),
        "TAP_MANUFACTURING_FETCH_SIZE": "7",
    }
    run = run_tap(None, "--config", "ENV", env=env)
    assert len(run.records("springs")) == 20


def test_about_documents_every_setting(run_tap):
    text = run_tap(None, "--about", "--format=markdown").stdout
    source_settings = ("host", "port", "database", "user", "password", "schema", "table")
    source_settings += ("sslmode", "connect_timeout", "replication_method", "replication_key")
    for setting in source_settings:
        assert f"| sources.refills.{setting} " in text
    for setting in ("fetch_size", "progress_interval", "state_interval", "stream_maps"):
        assert f"| {setting} " in text
