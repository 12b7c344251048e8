"""The demo data generator: deterministic, realistic, idempotent, configured like the plugins."""

from __future__ import annotations

from dataclasses import replace

import psycopg2
import pytest

from pen_factory import demo_data
from pen_factory.cli import CommandError, demo_environment
from pen_factory.embedded import ServerAddress


def _fingerprint(endpoint: demo_data.Endpoint, table: str) -> tuple[int, str]:
    connection = endpoint.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET TimeZone = 'UTC'")
            cursor.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY id), '')) "
                f"FROM public.{table} AS t"
            )
            count, digest = cursor.fetchone()
            return int(count), str(digest)
    finally:
        connection.close()


@pytest.fixture
def demo_endpoints(pg_server, make_database) -> dict[str, demo_data.Endpoint]:
    """Endpoints for three fresh source databases and a warehouse name that does not exist."""
    base = demo_data.endpoints_on_server(pg_server.host, pg_server.port, pg_server.user)
    endpoints = {
        name: replace(base[name], database=make_database(name)) for name in demo_data.SOURCES
    }
    warehouse = make_database("warehouse")
    endpoints[demo_data.WAREHOUSE] = replace(base[demo_data.WAREHOUSE], database=warehouse)
    return endpoints


@pytest.mark.integration
def test_same_rows_give_identical_tables(demo_endpoints):
    first = demo_data.generate_demo(demo_endpoints, rows=500)
    assert first == {"refills": 500, "bodies": 500, "springs": 500}
    before = {s: _fingerprint(demo_endpoints[s], f"{s}_production") for s in demo_data.SOURCES}
    # Idempotent: a second run recreates the tables with the very same content.
    demo_data.generate_demo(demo_endpoints, rows=500)
    after = {s: _fingerprint(demo_endpoints[s], f"{s}_production") for s in demo_data.SOURCES}
    assert before == after
    # Different lines really hold different data.
    assert len({digest for _count, digest in after.values()}) == 3


@pytest.mark.integration
def test_a_larger_run_extends_a_smaller_one(demo_endpoints):
    """Row n depends only on n: the first 100 rows of a 300-row table are the 100-row table."""
    refills = demo_endpoints["refills"]
    demo_data.create_source_table(refills, "refills", 100)
    small = _fingerprint(refills, "refills_production")
    demo_data.create_source_table(refills, "refills", 300)
    connection = refills.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET TimeZone = 'UTC'")
            cursor.execute(
                "SELECT count(*), md5(string_agg(t::text, E'\\n' ORDER BY id)) "
                "FROM refills_production AS t WHERE id <= 100"
            )
            assert cursor.fetchone() == small
    finally:
        connection.close()


EXPECTED_TYPES = {
    "id": "bigint",
    "lot_code": "text",
    "line": "text",
    "shift": "text",
    "produced_at": "timestamp with time zone",
    "qc_passed": "boolean",
    "defect_codes": "text[]",
    "sensor_readings": "jsonb",
    "created_at": "timestamp with time zone",
    "updated_at": "timestamp with time zone",
}


@pytest.mark.integration
@pytest.mark.parametrize("source", demo_data.SOURCES)
def test_tables_look_like_a_production_line(demo_endpoints, source):
    endpoint = demo_endpoints[source]
    demo_data.create_source_table(endpoint, source, 2000)
    connection = endpoint.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull "
                "FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 "
                "AND NOT a.attisdropped ORDER BY a.attnum",
                (f"public.{source}_production",),
            )
            columns = {name: kind for name, kind, _ in cursor.fetchall()}
            cursor.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = %s::regclass AND i.indisprimary",
                (f"public.{source}_production",),
            )
            primary_key = [row[0] for row in cursor.fetchall()]
            cursor.execute(
                f"SELECT count(*) FILTER (WHERE NOT qc_passed), "
                f"count(*) FILTER (WHERE sensor_readings IS NULL), "
                f"count(*) FILTER (WHERE defect_codes IS NULL), "
                f"count(*) FILTER (WHERE NOT qc_passed AND cardinality(defect_codes) = 0), "
                f"count(*) FILTER (WHERE updated_at > created_at), "
                f"count(DISTINCT shift), min(id), max(id) FROM {source}_production"
            )
            failed, no_sensor, no_defects, failed_without_code, updated, shifts, low, high = (
                cursor.fetchone()
            )
    finally:
        connection.close()
    assert 18 <= len(columns) <= 24
    for name, kind in EXPECTED_TYPES.items():
        assert columns[name] == kind, name
    assert sum(kind == "numeric(10,4)" for kind in columns.values()) >= 5
    assert primary_key == ["id"]
    assert (low, high) == (1, 2000)
    assert 20 <= failed <= 160  # about 4 % fail QC
    assert failed_without_code == 0  # a failed unit always names a defect
    assert no_sensor > 0
    assert no_defects > 0
    assert updated > 0
    assert shifts == 3


@pytest.mark.integration
def test_zero_rows_gives_empty_tables_and_creates_the_warehouse(pg_server, demo_endpoints):
    warehouse_name = demo_endpoints["warehouse"].database
    admin = psycopg2.connect(pg_server.dsn())
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE "{warehouse_name}"')
        assert demo_data.generate_demo(demo_endpoints, rows=0) == dict.fromkeys(
            demo_data.SOURCES, 0
        )
        with admin.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (warehouse_name,))
            assert cursor.fetchone() == (1,)
    finally:
        admin.close()


def test_unknown_source_and_negative_rows_are_refused():
    endpoint = demo_data.Endpoint()
    with pytest.raises(ValueError, match="unknown demo source"):
        demo_data.create_source_table(endpoint, "pencils", 10)
    with pytest.raises(ValueError, match="zero or more"):
        demo_data.create_source_table(endpoint, "refills", -1)


def test_endpoints_from_environment_use_the_plugins_defaults():
    env = {"REFILLS_HOST": "db1", "REFILLS_PORT": "6543", "REFILLS_PASSWORD": "", "BODIES_DB": ""}
    assert demo_data.endpoint_from_env("refills", env) == demo_data.Endpoint(
        host="db1", port=6543, database="refills", user="postgres", password=""
    )
    assert demo_data.endpoint_from_env("bodies", env) == demo_data.Endpoint(database="bodies")
    assert demo_data.endpoint_from_env("warehouse", {}).database == "warehouse"
    assert demo_data.source_table("springs", {}) == ("public", "springs_production")
    assert demo_data.source_table("springs", {"SPRINGS_TABLE": "coils"}) == ("public", "coils")


def test_demo_environment_points_everything_at_the_embedded_server():
    user_env = {
        "PATH": "/bin",
        "REFILLS_HOST": "production-db",
        "WAREHOUSE_PASSWORD": "secret",
        "TARGET_WAREHOUSE_RAW_HOST": "elsewhere",
        "TAP_MANUFACTURING_SOURCES": "{}",
    }
    env = demo_environment(ServerAddress("127.0.0.1", 54321), user_env)
    assert env["PATH"] == "/bin"
    for prefix in ("REFILLS", "BODIES", "SPRINGS", "WAREHOUSE"):
        assert env[f"{prefix}_HOST"] == "127.0.0.1"
        assert env[f"{prefix}_PORT"] == "54321"
    # The rest is left to the plugins' defaults (database = source name, user postgres, ...),
    # set empty so that a project .env cannot override it either.
    assert env["WAREHOUSE_DB"] == ""
    assert env["WAREHOUSE_PASSWORD"] == ""
    assert not any(
        value for key, value in env.items() if key.startswith(("TARGET_", "TAP_MANUFACTURING_"))
    )


def test_demo_environment_shadows_the_project_dotenv(tmp_path):
    (tmp_path / ".env").write_text("# production\nexport REFILLS_DB=prod_refills\nOTHER=1\n")
    env = demo_environment(ServerAddress("127.0.0.1", 5555), {}, project_dir=tmp_path)
    assert env["REFILLS_DB"] == ""
    assert "OTHER" not in env
    # Meltano's own plugin variables cannot be neutralised from outside: refuse clearly.
    (tmp_path / ".env").write_text("TARGET_WAREHOUSE_RAW_HOST=prod-dwh\n")
    with pytest.raises(CommandError, match="TARGET_WAREHOUSE_RAW_HOST"):
        demo_environment(ServerAddress("127.0.0.1", 5555), {}, project_dir=tmp_path)
