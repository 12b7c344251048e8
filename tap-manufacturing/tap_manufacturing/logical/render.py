"""Turn pgoutput's text values into exactly the JSON that full-table mode writes.

pgoutput sends each value as its type's output text. Rather than re-implement every type's
JSON form in Python (and risk a digit, an offset or an escape coming out differently), the
tap hands a batch of rows back to the source server, which casts each text to the column's
exact type and renders it with the very select expression and JSON function of a full-table
read (types.select_expression, to_json: the function row_to_json applies to each field). So
a change record and a full-table record of the same row carry byte-identical values.

One round trip renders a whole batch: the rows travel as one JSON array of arrays of texts
(one parameter: encoding it is about three times cheaper for the tap and the server than one
text[] parameter per column), and `jsonb_array_elements(...) WITH ORDINALITY` turns it back
into rows in their original order; `->>` gives each text back unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg2.extensions

from tap_manufacturing.output import encode
from tap_manufacturing.types import PgType, select_expression


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class RenderColumn:
    """A column whose values are rendered: its name and exact type."""

    name: str
    type: PgType
    as_text: bool = False
    """json/jsonb sent as its text, as the stream's SCHEMA says (json_as_text)."""


def _value_expression(column: RenderColumn, reference: str) -> str:
    """`to_json(<full-table select expression of the cast value>)::text`."""
    cast = f"({reference}::{column.type.exact})"
    expression = select_expression(column.type, cast, json_as_text=column.as_text)
    return f"to_json({expression})::text"


def render_rows(
    connection: psycopg2.extensions.connection,
    columns: Sequence[RenderColumn],
    rows: Sequence[Sequence[str | None]],
) -> list[list[str | None]]:
    """Each row's values (output text or None for NULL) as their full-table JSON text.

    A SQL NULL comes back as None (JSON `null`).
    """
    if not rows:
        return []
    values = ", ".join(
        _value_expression(column, f"(e.v->>{i})") for i, column in enumerate(columns)
    )
    query = (
        f"SELECT ARRAY[{values}] FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY "
        "AS e(v, ord) ORDER BY e.ord"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, (encode(rows).decode(),))
        rendered = [list(row[0]) for row in cursor.fetchall()]
    connection.commit()
    return rendered


def current_values(
    connection: psycopg2.extensions.connection,
    table: str,
    keys: Sequence[RenderColumn],
    key_rows: Sequence[Sequence[str]],
    wanted: Sequence[RenderColumn],
) -> dict[int, list[str | None]]:
    """The `wanted` columns of the rows that currently have the given keys, rendered as in
    full-table mode; keyed by the key row's position. A key with no row is absent.

    Used for TOASTed values an UPDATE left unchanged (pgoutput does not send them).
    """
    if not key_rows:
        return {}
    join = " AND ".join(
        f"t.{quote_ident(key.name)} = (e.v->>{i})::{key.type.exact}" for i, key in enumerate(keys)
    )
    values = ", ".join(
        "to_json("
        + select_expression(
            column.type, "t." + quote_ident(column.name), json_as_text=column.as_text
        )
        + ")::text"
        for column in wanted
    )
    query = (
        f"SELECT e.ord, ARRAY[{values}] FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY "
        f"AS e(v, ord) JOIN {table} t ON {join}"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, (encode(key_rows).decode(),))
        found = {int(ordinal) - 1: list(rendered) for ordinal, rendered in cursor.fetchall()}
    connection.commit()
    return found
