"""The SDK's standard tap tests, run against three real source databases."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from singer_sdk.testing import get_tap_test_class

from tap_manufacturing.tap import TapManufacturing
from testkit.tap import SOURCES, create_production_databases, drop_databases

CATALOG = json.loads((Path(__file__).parent / "data" / "production_catalog.json").read_text())

# Filled in by the class fixture below, before the SDK's runner first uses it: the SDK
# builds stream tests at collection time from the catalog, and reads data only later.
CONFIG: dict = {"sources": {source: {} for source in SOURCES}}

StandardTests = get_tap_test_class(TapManufacturing, config=CONFIG, catalog=copy.deepcopy(CATALOG))


@pytest.mark.integration
class TestStandard(StandardTests):
    """SDK tap, stream and attribute tests (records validated against our schemas)."""

    @pytest.fixture(scope="class", autouse=True)
    def _source_databases(self, pg_server):
        databases = create_production_databases(pg_server)
        for source, database in databases.items():
            CONFIG["sources"][source] = {
                "host": pg_server.host,
                "port": pg_server.port,
                "user": pg_server.user,
                "database": database,
            }
        yield
        drop_databases(pg_server, databases.values())

    def test_records_match_source(self, runner):
        """Not just 'no error': every source row arrived, with exact values."""
        for source in SOURCES:
            records = runner.records[source]
            assert [r["id"] for r in records] == list(range(1, 21))
            first = records[0]
            assert first["length_mm"] == 12.34
            assert first["produced_at"] == "2024-01-01T00:00:01+00:00"
            assert first["cycle_time"] == "PT1.25S"
            assert first["tags"] == ["ink", "tip-1"]
            assert first["attributes"] == {"machine": "M1", "speed": 0.5}
