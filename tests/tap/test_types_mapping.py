"""Type handlers: JSON Schema, portable hint and SELECT expression (no database)."""

from __future__ import annotations

from tap_manufacturing.types import PgType, property_schema, select_expression


def test_numeric_keeps_its_modifier_and_allows_special_strings():
    pg = PgType(exact="numeric(10,4)", name="numeric", base="numeric(10,4)")
    assert property_schema(pg, not_null=True) == {
        "type": ["number", "string"],
        "x-sql-datatype": "numeric(10,4)",
    }


def test_domain_enum_and_composite_get_portable_types():
    domain = PgType(exact="positive_mm", name="numeric", base="numeric(8,3)")
    assert property_schema(domain, not_null=False)["x-sql-datatype"] == "numeric(8,3)"
    enum = PgType(exact="mood", name="mood", base="mood", kind="e", builtin=False,
                  enum_labels=("ok", "scrap"))  # fmt: skip
    assert property_schema(enum, not_null=False) == {
        "type": ["string", "null"],
        "enum": ["ok", "scrap", None],
        "x-sql-datatype": "text",
    }
    composite = PgType(exact="dimension", name="dimension", base="dimension", kind="c",
                       builtin=False)  # fmt: skip
    assert property_schema(composite, not_null=True)["x-sql-datatype"] == "jsonb"


def test_arrays_describe_their_elements():
    element = PgType(exact="mood", name="mood", base="mood", kind="e", builtin=False,
                     enum_labels=("ok",))  # fmt: skip
    array = PgType(exact="mood[]", name="_mood", base="mood[]", builtin=False, element=element)
    schema = property_schema(array, not_null=False)
    assert schema["type"] == ["array", "null"]
    assert schema["items"] == {"type": ["string", "null"], "enum": ["ok", None]}
    assert schema["x-sql-datatype"] == "text[]"


def test_select_expressions_for_types_json_cannot_carry_as_is():
    bytea = PgType(exact="bytea", name="bytea", base="bytea")
    assert select_expression(bytea, '"b"') == "translate(encode(\"b\", 'base64'), E'\\n', '')"
    money = PgType(exact="money", name="money", base="money")
    assert select_expression(money, '"m"') == '"m"::numeric'
    json_type = PgType(exact="json", name="json", base="json")
    assert select_expression(json_type, '"j"') == '"j"::jsonb'
    text = PgType(exact="character varying(5)", name="varchar", base="character varying(5)",
                  typmod=9)  # fmt: skip
    assert select_expression(text, '"c"') == '"c"'
    assert property_schema(text, not_null=True)["maxLength"] == 5


def test_json_as_text_carries_the_source_text_marked_as_json():
    text = {"type": ["string", "null"], "contentMediaType": "application/json"}
    for name in ("json", "jsonb"):
        pg = PgType(exact=name, name=name, base=name)
        assert property_schema(pg, not_null=False, json_as_text=True) == {
            **text, "x-sql-datatype": name,
        }  # fmt: skip
        assert select_expression(pg, '"j"', json_as_text=True) == '"j"::text'
        assert select_expression(pg, '"j"') == '"j"::jsonb'  # the setting off: JSON values
    element = PgType(exact="json", name="json", base="json")
    array = PgType(exact="json[]", name="_json", base="json[]", element=element)
    assert property_schema(array, not_null=True, json_as_text=True) == {
        "type": ["array"], "items": text, "x-sql-datatype": "json[]",
    }  # fmt: skip
    assert select_expression(array, '"a"', json_as_text=True) == '"a"::text[]'
    numbers = PgType(exact="integer", name="int4", base="integer")
    assert select_expression(numbers, '"n"', json_as_text=True) == '"n"'


def test_oid_travels_as_a_json_number():
    oid = PgType(exact="oid", name="oid", base="oid")
    assert property_schema(oid, not_null=True) == {"type": ["integer"], "x-sql-datatype": "oid"}
    assert select_expression(oid, '"o"') == '"o"::bigint'  # to_json writes an oid as a string
