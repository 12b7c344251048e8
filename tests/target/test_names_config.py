"""Pure tests (no database): identifier mapping, config parsing, type choice, COPY escaping."""

from __future__ import annotations

import pytest

from target_warehouse_raw.config import ConfigError, drop_blank_environment, parse_config
from target_warehouse_raw.copy_text.nul import has_nul, strip_nul
from target_warehouse_raw.copy_text.values import array_text, json_text, text
from target_warehouse_raw.schema.columns import json_schema_type, json_types
from target_warehouse_raw.schema.names import map_identifier, map_identifiers, short_hash


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("orders", "orders"),
        ("ClientName", "ClientName"),
        ("_id", "_id"),
        ("public-orders", "public_orders"),
        ("a.b c", "a_b_c"),
        ("Mixed-Case", "mixed_case"),
        ("1st", "_1st"),
        ("select", "select_"),
        ("Order", "order_"),
        ("test:SpecialChars!in?attributes", "test_specialchars_in_attributes"),
        ("", "_"),
        ("é", "_"),
    ],
)
def test_map_identifier(name, expected):
    assert map_identifier(name) == expected


def test_long_names_are_cut_with_a_stable_hash():
    name = "x" * 70
    mapped = map_identifier(name)
    assert len(mapped.encode()) == 63
    assert mapped == "x" * 54 + "_" + short_hash(name)
    assert map_identifier(name) == mapped  # deterministic
    exact = "y" * 63
    assert map_identifier(exact) == exact  # 63 bytes is still valid


def test_multibyte_names_count_bytes():
    mapped = map_identifier("ü" * 40)  # 80 bytes
    assert mapped == "_" * 40  # every character outside [a-z0-9_] becomes _


def test_collisions_get_hash_suffixes_and_kept_names_never_change():
    names = map_identifiers(["a-b", "a_b", "A B", "a.b"])
    assert names["a_b"] == "a_b"
    mapped = [names["a-b"], names["A B"], names["a.b"]]
    assert len(set(mapped) | {"a_b"}) == 4
    assert all(m.startswith("a_b_") and len(m) == 12 for m in mapped)
    assert map_identifiers(["a-b", "a_b", "A B", "a.b"]) == names


def test_metadata_names_are_reserved_when_taken():
    names = map_identifiers(["_SDC-extracted-at"], taken=["_sdc_extracted_at"])
    assert names["_SDC-extracted-at"] != "_sdc_extracted_at"


def test_config_defaults_for_blank_values():
    cfg = parse_config({"host": "", "port": "", "database": None, "schema": " ", "password": ""})
    assert cfg.connection.host == "localhost"
    assert cfg.connection.port == 5432
    assert cfg.connection.database == "warehouse"
    assert cfg.connection.user == "postgres"
    assert cfg.connection.password is None
    assert cfg.schema == "raw"
    assert cfg.load_method == "auto"


def test_config_never_shows_the_password():
    cfg = parse_config({"password": "s3cret-pw"})
    assert "s3cret-pw" not in repr(cfg)
    assert "s3cret-pw" not in cfg.connection.describe()
    with pytest.raises(ConfigError) as caught:
        parse_config({"password": "s3cret-pw", "port": "abc"})
    assert "s3cret-pw" not in str(caught.value)


def test_config_check_sources_defaults():
    cfg = parse_config({"check_sources": {"refills": {"host": "db1", "port": "5433"}}})
    (source,) = cfg.check_sources
    assert source.connection.database == "refills"
    assert source.connection.port == 5433
    assert (source.schema, source.table) == ("public", "refills_production")


def test_blank_environment_variables_are_dropped():
    env = {"TARGET_WAREHOUSE_RAW_PORT": "", "TARGET_WAREHOUSE_RAW_HOST": "h", "OTHER": ""}
    drop_blank_environment("TARGET_WAREHOUSE_RAW_", env)
    assert env == {"TARGET_WAREHOUSE_RAW_HOST": "h", "OTHER": ""}


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "integer"}, "bigint"),
        ({"type": ["null", "number"]}, "numeric"),
        ({"type": "string", "format": "date-time"}, "timestamp with time zone"),
        ({"type": "string", "format": "date"}, "date"),
        ({"type": "string", "format": "time"}, "time without time zone"),
        ({"type": "boolean"}, "boolean"),
        ({"type": "object"}, "jsonb"),
        ({"type": "array", "items": {"type": "string"}}, "jsonb"),
        ({"type": ["string", "integer"]}, "jsonb"),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "jsonb"),
        ({}, "jsonb"),
        ({"type": "string"}, "text"),
    ],
)
def test_json_schema_types(schema, expected):
    assert json_schema_type(schema) == expected


def test_allowed_json_types():
    assert json_types({"type": ["integer", "null"]}) == {"number", "null"}
    assert json_types({}) is None
    assert json_types({"anyOf": [{"type": "string"}, {"type": "null"}]}) == {"string", "null"}


def test_copy_field_escaping():
    assert json_text(b'{"a":"x\\ty"}') == '{"a":"x\\\\ty"}'
    assert json_text(b'{"a":\t1}') == '{"a": 1}'
    assert text("a\tb\\c\nd\re") == "a\\tb\\\\c\\nd\\re"
    assert text("plain ü") == "plain ü"
    assert (
        array_text(b'[["a\\"b", null], ["\\\\", 1.10]]')
        == r'{{"a\\"b",NULL},{"\\\\","1.10"}}'  # element escapes, then COPY escapes
    )


def test_nul_detection_respects_escaped_backslashes():
    assert has_nul(b'{"a":"x\\u0000"}')
    assert not has_nul(b'{"a":"x\\\\u0000"}')  # literal backslash, then u0000
    assert has_nul(b'{"a":"x\\\\\\u0000"}')
    assert strip_nul(b'{"a":"x\\u0000y","b":"\\\\u0000"}') == b'{"a":"xy","b":"\\\\u0000"}'


def test_check_sources_with_dotted_keys_are_nested_again():
    """Meltano exports `check_sources` to plugin commands as one object with dotted keys."""
    from target_warehouse_raw.config import nest_dotted_keys

    exported = {"refills.host": "db1", "refills.port": 5433, "bodies.host": None}
    assert nest_dotted_keys(exported) == {
        "refills": {"host": "db1", "port": 5433},
        "bodies": {"host": None},
    }
    assert nest_dotted_keys({"springs": {"table": "t"}}) == {"springs": {"table": "t"}}
