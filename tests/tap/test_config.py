"""Config parsing: defaults, validation messages, no password in any message (no database)."""

from __future__ import annotations

import pytest

from tap_manufacturing.config import ConfigError, parse_settings


def test_defaults_give_the_three_factory_sources():
    settings = parse_settings({})
    assert [s.name for s in settings.sources] == ["refills", "bodies", "springs"]
    refills = settings.source("refills")
    assert (refills.host, refills.port, refills.database, refills.user) == (
        "localhost",
        5432,
        "refills",
        "postgres",
    )
    assert (refills.schema, refills.table, refills.sslmode) == (
        "public",
        "refills_production",
        "prefer",
    )
    assert refills.password is None
    assert refills.replication_method == "FULL_TABLE"


@pytest.mark.parametrize("blank", [None, ""])
def test_blank_values_take_defaults(blank):
    """Meltano turns an unset $VAR into null or an empty string."""
    fields = ("host", "port", "database", "user", "password", "schema", "table", "sslmode")
    settings = parse_settings({"sources": {"bodies": dict.fromkeys(fields, blank)}})
    bodies = settings.source("bodies")
    assert bodies.host == "localhost"
    assert bodies.port == 5432
    assert bodies.database == "bodies"
    assert bodies.table == "bodies_production"
    assert bodies.password is None


def test_port_as_string_and_a_fourth_source():
    settings = parse_settings(
        {"sources": {"refills": {"port": "5433"}, "pencils": {"host": "db.example"}}}
    )
    assert settings.source("refills").port == 5433
    pencils = settings.source("pencils")
    assert (pencils.host, pencils.database, pencils.table) == (
        "db.example",
        "pencils",
        "pencils_production",
    )


@pytest.mark.parametrize(
    ("source", "setting", "value"),
    [
        ("refills", "port", "54x2"),
        ("bodies", "port", 70000),
        ("springs", "sslmode", "sometimes"),
        ("refills", "replication_method", "CDC"),
        ("bodies", "slot_name", "Slot-With-Caps"),
        ("springs", "publication_name", "x" * 64),
        ("bodies", "connect_timeout", "soon"),
        ("springs", "host", 12),
    ],
)
def test_errors_name_source_and_setting(source, setting, value):
    with pytest.raises(ConfigError) as error:
        parse_settings({"sources": {source: {setting: value, "password": "s3cret-pw"}}})
    message = str(error.value)
    assert f"source '{source}'" in message
    assert f"'{setting}'" in message
    assert "s3cret-pw" not in message


def test_incremental_needs_a_key():
    with pytest.raises(ConfigError, match=r"source 'refills'.*'replication_key'"):
        parse_settings({"sources": {"refills": {"replication_method": "INCREMENTAL"}}})


def test_unknown_setting_is_named():
    with pytest.raises(ConfigError, match=r"source 'springs'.*'hots'"):
        parse_settings({"sources": {"springs": {"hots": "x"}}})


def test_repr_hides_the_password():
    settings = parse_settings({"sources": {"refills": {"password": "s3cret-pw"}}})
    source = settings.source("refills")
    assert source.password == "s3cret-pw"
    assert "s3cret-pw" not in repr(source)
    assert "s3cret-pw" not in repr(settings)
    assert "s3cret-pw" not in source.describe()


def test_incremental_from_config():
    source = parse_settings(
        {
            "sources": {
                "refills": {"replication_method": "incremental", "replication_key": "updated_at"}
            }
        }
    ).source("refills")
    assert (source.replication_method, source.replication_key) == ("INCREMENTAL", "updated_at")


def test_log_based_names_default_per_source():
    settings = parse_settings(
        {"sources": {"refills": {"replication_method": "log_based"}, "Pen-Cils": {}}}
    )
    refills = settings.source("refills")
    assert refills.replication_method == "LOG_BASED"
    assert (refills.slot_name, refills.publication_name) == (
        "tap_manufacturing_refills",
        "tap_manufacturing_refills",
    )
    assert settings.source("Pen-Cils").slot_name == "tap_manufacturing_pen_cils"
    chosen = parse_settings(
        {"sources": {"refills": {"slot_name": "cdc_refills", "publication_name": ""}}}
    ).source("refills")
    assert (chosen.slot_name, chosen.publication_name) == (
        "cdc_refills",
        "tap_manufacturing_refills",
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), ("", False), (False, False), (True, True), ("true", True), ("0", False)],
)
def test_json_as_text_is_off_unless_asked_for(value, expected):
    assert parse_settings({"json_as_text": value}).json_as_text is expected


def test_json_as_text_that_is_no_boolean_is_named():
    with pytest.raises(ConfigError) as caught:
        parse_settings({"json_as_text": "maybe"})
    assert str(caught.value) == "tap: setting 'json_as_text' must be true or false, got 'maybe'"


@pytest.mark.parametrize("only", [["bodies"], "bodies", " bodies , ", ["bodies", "bodies"]])
def test_only_sources_keeps_one_source_and_ignores_the_others(only):
    # The other blocks are not even validated: a broken one cannot fail this source's run.
    config = {
        "sources": {"refills": {"port": "not a port"}, "bodies": {"host": "db2"}, "springs": 7},
        "only_sources": only,
    }
    settings = parse_settings(config)
    assert [(s.name, s.host) for s in settings.sources] == [("bodies", "db2")]


def test_only_sources_unset_or_empty_means_every_source():
    for only in (None, "", []):
        settings = parse_settings({"only_sources": only})
        assert [s.name for s in settings.sources] == ["refills", "bodies", "springs"]


def test_only_sources_naming_an_unknown_source_is_an_error():
    with pytest.raises(ConfigError) as caught:
        parse_settings({"sources": {"refills": {}, "bodies": {}}, "only_sources": ["pencils"]})
    assert str(caught.value) == (
        "setting 'only_sources' names 'pencils', which is not a configured source "
        "(configured: refills, bodies)"
    )


def test_only_sources_of_the_wrong_type_is_an_error():
    with pytest.raises(ConfigError, match=r"^setting 'only_sources' must be a list"):
        parse_settings({"only_sources": {"refills": True}})
