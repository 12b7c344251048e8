"""Pure tests (no database): identifier mapping, config parsing, type choice, COPY escaping."""

from __future__ import annotations

import pytest

from target_warehouse_raw.config import ConfigError, drop_blank_environment, parse_config
from target_warehouse_raw.copy_text.nul import has_nul, strip_nul
from target_warehouse_raw.copy_text.values import array_text, json_array_text, json_text, text
from target_warehouse_raw.schema.columns import TypeInfo, hinted_type, json_schema_type, json_types
from target_warehouse_raw.schema.names import (
    legacy_identifier,
    legacy_identifiers,
    map_identifier,
    map_identifiers,
    short_hash,
)


@pytest.mark.parametrize(
    "name",
    ["orders", "ClientName", "_id", "public-orders", "a.b c", "Mixed-Case", "1st", "select",
     "order", "Order", "user", "LotCode", "Customer Name", "test:SpecialChars!in?attributes",
     "é", "ü" * 31 + "x", "y" * 63, 'say "hi"', "ctid"],
)  # fmt: skip
def test_every_name_postgresql_can_hold_is_kept_byte_for_byte(name):
    assert map_identifier(name) == name
    assert map_identifiers([name]) == {name: name}


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("x" * 70, "x" * 54),  # over 63 bytes
        ("X" * 70, "X" * 54),  # case kept in the cut part too
        ("ü" * 40, "ü" * 27),  # 80 bytes; cut at a character boundary (54 bytes)
        ("a\x00b", "a_b"),  # NUL cannot be stored
        ("", ""),
        ("lone \ud800", "lone _"),  # not UTF-8 at all
    ],
)
def test_only_names_postgresql_cannot_hold_are_mapped_with_a_stable_hash(name, prefix):
    mapped = map_identifier(name)
    assert mapped == f"{prefix}_{short_hash(name)}"
    assert len(mapped.encode()) <= 63
    assert map_identifier(name) == mapped  # deterministic


def test_system_column_names_are_mapped_for_columns_only():
    assert map_identifier("ctid", column=True) == f"ctid_{short_hash('ctid')}"
    assert map_identifiers(["xmin", "CTID", "oid"], columns=True) == {
        "xmin": f"xmin_{short_hash('xmin')}", "CTID": "CTID", "oid": "oid",
    }  # fmt: skip
    assert map_identifiers(["xmin"]) == {"xmin": "xmin"}  # a table may be called xmin


def test_names_differing_only_in_case_are_different_columns():
    assert map_identifiers(["LotCode", "lotcode", "LOTCODE"]) == {
        "LotCode": "LotCode", "lotcode": "lotcode", "LOTCODE": "LOTCODE",
    }  # fmt: skip


def test_a_mapped_name_never_takes_a_kept_or_taken_identifier():
    long_name = "z" * 70
    mapped = map_identifier(long_name)
    names = map_identifiers([mapped, long_name])
    assert names[mapped] == mapped  # kept names never change
    assert names[long_name] not in (mapped, long_name)
    assert len(names[long_name].encode()) <= 63
    assert map_identifiers([long_name], taken=[mapped])[long_name] != mapped
    assert map_identifiers([mapped, long_name]) == names  # deterministic


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("orders", "orders"),
        ("ClientName", "ClientName"),
        ("public-orders", "public_orders"),
        ("a.b c", "a_b_c"),
        ("Mixed-Case", "mixed_case"),
        ("1st", "_1st"),
        ("select", "select_"),
        ("Order", "order_"),
        ("Customer Name", "customer_name"),
        ("", "_"),
        ("é", "_"),
        ("X" * 70, "x" * 54 + "_" + short_hash("X" * 70)),
    ],
)
def test_legacy_identifier_is_the_rule_of_earlier_versions(name, expected):
    assert legacy_identifier(name) == expected


def test_legacy_identifiers_hash_collisions_as_earlier_versions_did():
    names = legacy_identifiers(["a-b", "a_b", "A B", "a.b"])
    assert names["a_b"] == "a_b"
    mapped = [names["a-b"], names["A B"], names["a.b"]]
    assert mapped == [f"a_b_{short_hash(n)}" for n in ("a-b", "A B", "a.b")]


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


def test_negative_zero_inside_an_array_keeps_its_sign():
    assert array_text(b"[-0, -0.0, 0, [1, -0]]") == '{"-0","-0.0","0",{"1","-0"}}'
    assert array_text(b'["-0", 1.50]') == '{"-0","1.50"}'


def test_array_elements_that_are_objects_are_their_json_text():
    assert (
        array_text(b'[{"a": 1.50, "b": [true]}, null]')
        == '{"{\\\\"a\\\\":1.50,\\\\"b\\\\":[true]}",NULL}'
    )


@pytest.mark.parametrize(
    "hint", ['"char"', "numeric(5,-2)", "timestamp(3) with time zone", "interval day to second(3)"]
)
def test_exact_type_hints_postgresql_writes_are_used(hint):
    info = TypeInfo("x", "U")
    assert hinted_type({"x-sql-datatype": hint}, lambda text: info) == (hint, info)


@pytest.mark.parametrize("hint", ["text; DROP TABLE x", "int)", "numeric(1,2", "$x"])
def test_hints_that_are_no_type_text_are_ignored(hint):
    assert hinted_type({"x-sql-datatype": hint}, lambda text: TypeInfo("x", "U")) is None


def test_json_array_elements_are_json_text_strings_included():
    """A json[]/jsonb[] column fed JSON values: the string element "" is the JSON string "",
    not an empty (invalid) JSON text; nested arrays are the array's dimensions."""
    assert json_array_text(b'[{"a": 1.50}, "x", "", null, -0, true, [2]]') == (
        '{"{\\\\"a\\\\":1.50}","\\\\"x\\\\"","\\\\"\\\\"",NULL,"-0","true",{"2"}}'
    )
    assert json_array_text(b"[]") == "{}"
