"""Upgrading a warehouse whose tables and columns an earlier version named differently.

Earlier versions landed `order` as `order_`, `Customer Name` as `customer_name` and stream
`public-orders` as table `public_orders`. Names now land byte for byte; the first load after
the upgrade must never quietly create a second table or column beside the old one.
"""

from __future__ import annotations

import datetime as dt

import pytest

from testkit.singer import record_message, schema_message, singer

pytestmark = pytest.mark.integration

PROPERTIES = {
    "order_id": {"type": "integer"},
    "Customer Name": {"type": ["string", "null"]},
    "order": {"type": ["integer", "null"]},
}


def orders_input(*rows: tuple[int, str, int]) -> str:
    return singer(
        schema_message("public-orders", PROPERTIES, ["order_id"]),
        *(
            record_message("public-orders", {"order_id": i, "Customer Name": n, "order": o})
            for i, n, o in rows
        ),
    )


def make_earlier_versions_table(warehouse) -> None:
    """The table, history and a reader's view exactly as the earlier version left them."""
    warehouse.execute(
        """CREATE SCHEMA raw;
        CREATE TABLE raw.public_orders (order_id bigint PRIMARY KEY, customer_name text,
                                        order_ bigint);
        INSERT INTO raw.public_orders VALUES (1, 'old', 10);
        CREATE VIEW raw.order_report AS
            SELECT order_id, customer_name, order_ FROM raw.public_orders;
        CREATE TABLE raw._load_history (
            id bigserial PRIMARY KEY, run_id uuid NOT NULL, stream text NOT NULL,
            table_name text NOT NULL, load_method text NOT NULL, status text NOT NULL,
            rows bigint NOT NULL DEFAULT 0, started_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz, seconds double precision, first_line bigint,
            last_line bigint, error text, target_version text,
            backend_pid integer DEFAULT pg_backend_pid());
        INSERT INTO raw._load_history (run_id, stream, table_name, load_method, status, rows,
                                       finished_at)
        VALUES (gen_random_uuid(), 'public-orders', 'public_orders', 'overwrite', 'replaced', 1,
                now());"""
    )


def relations(warehouse) -> list[str]:
    return [
        name
        for (name,) in warehouse.query(
            "SELECT relname FROM pg_class WHERE relnamespace = 'raw'::regnamespace "
            "AND relkind IN ('r', 'v') ORDER BY relname"
        )
    ]


def test_an_earlier_versions_table_is_refused_naming_both_names(warehouse, run_target):
    make_earlier_versions_table(warehouse)
    run = run_target(orders_input((2, "new", 20)))
    assert run.returncode == 1
    expected = (
        'stream \'public-orders\', input line 1: schema "raw" holds table "public_orders" '
        '(now "public-orders"), column "customer_name" (now "Customer Name"), column "order_" '
        '(now "order"), named by an earlier version of target-warehouse-raw, which changed '
        "names that PostgreSQL can hold; names now land exactly as the source spells them, and "
        "loading would create a second table beside the old one, so nothing was loaded. Set "
        "rename_legacy_names to true to have the target rename them before the load (views and "
        'grants keep working), or rename them yourself: ALTER TABLE "raw"."public_orders" '
        'RENAME TO "public-orders"; ALTER TABLE "raw"."public-orders" RENAME COLUMN '
        '"customer_name" TO "Customer Name"; ALTER TABLE "raw"."public-orders" RENAME COLUMN '
        '"order_" TO "order"'
    )
    assert expected in run.stderr
    assert relations(warehouse) == ["_load_history", "order_report", "public_orders"]
    assert warehouse.table("public_orders") == [(1, "old", 10)]


def test_rename_legacy_names_renames_and_keeps_views_and_the_check_right(
    warehouse, run_target, tmp_path
):
    make_earlier_versions_table(warehouse)
    run = run_target(orders_input((2, "new", 20)), config={"rename_legacy_names": True})
    assert run.returncode == 0, run.stderr
    assert relations(warehouse) == ["_load_history", "order_report", "public-orders"]
    assert warehouse.columns("public-orders") == [
        ("order_id", "bigint"), ("Customer Name", "text"), ("order", "bigint"),
    ]  # fmt: skip
    assert warehouse.table("public-orders") == [(2, "new", 20)]
    # The view follows the renamed table and columns; its own column names stay.
    assert warehouse.query("SELECT * FROM raw.order_report") == [(2, "new", 20)]
    assert [name for (name,) in warehouse.query(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'raw.order_report'::regclass "
        "ORDER BY attnum")] == ["order_id", "customer_name", "order_"]  # fmt: skip
    assert warehouse.query("SELECT DISTINCT table_name FROM raw._load_history") == [
        ("public-orders",)
    ]
    # A second run finds nothing left to rename.
    again = run_target(orders_input((3, "next", 30)))
    assert again.returncode == 0, again.stderr
    assert warehouse.table("public-orders") == [(3, "next", 30)]


def test_a_legacy_column_of_a_table_with_an_unchanged_name(warehouse, run_target):
    warehouse.execute(
        "CREATE SCHEMA raw; CREATE TABLE raw.lots (id bigint PRIMARY KEY, lot_code text, "
        "user_ text, made date)"
    )
    props = {"id": {"type": "integer"}, "Lot Code": {"type": ["string", "null"]},
             "user": {"type": ["string", "null"]},
             "made": {"type": ["string", "null"], "format": "date"}}  # fmt: skip
    text = singer(
        schema_message("lots", props, ["id"]),
        record_message("lots", {"id": 1, "Lot Code": "L-1", "user": "ada", "made": "2024-05-01"}),
    )
    refused = run_target(text)
    assert refused.returncode == 1
    assert (
        'schema "raw" holds column "lot_code" (now "Lot Code"), column "user_" (now "user"), '
        "named by an earlier version" in refused.stderr
    )
    assert "loading would create a second column beside the old one" in refused.stderr
    assert warehouse.columns("lots") == [
        ("id", "bigint"), ("lot_code", "text"), ("user_", "text"), ("made", "date"),
    ]  # fmt: skip
    renamed = run_target(text, config={"rename_legacy_names": True})
    assert renamed.returncode == 0, renamed.stderr
    assert warehouse.columns("lots") == [
        ("id", "bigint"), ("Lot Code", "text"), ("user", "text"), ("made", "date"),
    ]  # fmt: skip
    assert warehouse.table("lots") == [(1, "L-1", "ada", dt.date(2024, 5, 1))]


def test_names_that_are_in_use_today_are_never_taken_for_legacy_ones(warehouse, run_target):
    # The stream really has both `order` and `order_`; another stream really is `public_orders`.
    warehouse.execute("CREATE SCHEMA raw; CREATE TABLE raw.lines (id bigint, order_ bigint)")
    props = {"id": {"type": "integer"}, "order": {"type": ["integer", "null"]},
             "order_": {"type": ["integer", "null"]}}  # fmt: skip
    text = singer(
        schema_message("lines", props, ["id"]),
        record_message("lines", {"id": 1, "order": 5, "order_": 6}),
    )
    run = run_target(text)
    assert run.returncode == 0, run.stderr
    assert warehouse.columns("lines") == [
        ("id", "bigint"),
        ("order_", "bigint"),
        ("order", "bigint"),
    ]
    assert warehouse.table("lines") == [(1, 6, 5)]
    other = {"id": {"type": "integer"}}
    first = singer(
        schema_message("public_orders", other, ["id"]), record_message("public_orders", {"id": 7})
    )
    assert run_target(first).returncode == 0
    second = singer(
        schema_message("public-orders", other, ["id"]), record_message("public-orders", {"id": 8})
    )
    run = run_target(second, config={"rename_legacy_names": True})
    assert run.returncode == 0, run.stderr
    assert warehouse.table("public_orders") == [(7,)]
    assert warehouse.table("public-orders") == [(8,)]
