"""The first rows of the marts, as plain text tables: how the demo ends.

A new user who ran one command should see where it leads - three production databases
turned into a daily report - without opening a SQL client.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg2.extensions
from psycopg2 import sql

# (mart, ordering): the order a production manager reads them in.
MARTS = (
    ("daily_pen_capacity", ("production_date",)),
    ("daily_line_output", ("production_date", "component", "line", "shift")),
)


def text_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces (NULL shown as empty)."""
    cells = [list(columns)] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells)
    return "\n".join(line.rstrip() for line in lines)


def preview(connection: psycopg2.extensions.connection, schema: str, limit: int = 8) -> str:
    """Each mart's name, its first `limit` rows and its row count."""
    parts = []
    with connection.cursor() as cursor:
        for mart, order in MARTS:
            relation = sql.Identifier(schema, mart)
            cursor.execute(
                sql.SQL("SELECT * FROM {} ORDER BY {} LIMIT %s").format(
                    relation, sql.SQL(", ").join(map(sql.Identifier, order))
                ),
                (limit,),
            )
            columns = [description.name for description in cursor.description]
            rows = cursor.fetchall()
            cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(relation))
            total = cursor.fetchone()[0]
            noun = "row" if total == 1 else "rows"
            shown = f"first {len(rows)} of {total}" if total > len(rows) else str(total)
            shown = f"{shown} {noun}"
            parts.append(f"{schema}.{mart} ({shown}):\n{text_table(columns, rows)}")
    return "\n\n".join(parts)
