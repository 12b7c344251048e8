"""The dbt views over the raw tables survive loads.

Three loads run while a reader polls `int_production_runs` (a dbt view over the three
staging views, which are views over the raw tables). The view never errors, never shows an
empty or partial table, never goes back to an older load, and shows each load once it has
committed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psycopg2
import pytest

from pen_factory import demo_data
from testkit.dbt_runs import MODELS_SCHEMA, load, meltano_dbt
from testkit.pipeline import Pipeline, warehouse_rows

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

# refills is large enough for its replace to stay open while the reader polls many times.
REFILLS_ROWS = 20_000
UNITS = {"refills": "units_produced", "bodies": "units_molded", "springs": "units_wound"}
# Before each of the three loads: every table changes its row count and its unit sums.
CHANGES = [
    {
        "refills": "DELETE FROM refills_production WHERE id > 15000",
        "bodies": "UPDATE bodies_production SET units_scrapped = units_scrapped + 1",
        "springs": "DELETE FROM springs_production WHERE id % 10 = 0",
    },
    {
        "refills": "INSERT INTO refills_production SELECT id + 100000, lot_code, batch_code, "
        "line, shift, produced_at, ink_color, ink_volume_ml, ink_volume_tolerance_ml, "
        "tip_diameter_mm, tip_tolerance_mm, tube_length_mm, units_produced, units_rejected, "
        "qc_passed, defect_codes, sensor_readings, operator_id, created_at, updated_at "
        "FROM refills_production WHERE id <= 3000",
        "bodies": "DELETE FROM bodies_production WHERE id % 7 = 0",
        "springs": "UPDATE springs_production SET units_wound = units_wound + 3",
    },
    {
        "refills": "UPDATE refills_production SET units_produced = units_produced + 2",
        "bodies": "DELETE FROM bodies_production WHERE id % 5 = 0",
        "springs": "DELETE FROM springs_production WHERE id % 3 = 0",
    },
]

State = tuple[int, int, int]  # rows, units produced, units rejected


def source_state(pipeline: Pipeline, source: str) -> State:
    """What the view must show for one line once a load of the source's table committed."""
    rejected = "units_scrapped" if source == "bodies" else "units_rejected"
    connection = pipeline.sources[source].connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT count(*), sum({UNITS[source]}), sum({rejected}) FROM {source}_production"
            )
            count, produced, rejected_units = cursor.fetchone()
            return int(count), int(produced), int(rejected_units)
    finally:
        connection.close()


@dataclass
class Poll:
    """One read of the view: when the reader started and finished it (monotonic clock), the
    server's time of its snapshot, and what it saw per line (or the error)."""

    started: float
    ended: float
    server_time: object
    states: dict[str, State]
    error: str | None = None


class Reader(threading.Thread):
    """Polls the view as fast as it can until stopped."""

    QUERY = (
        "SELECT now(), component, count(*), sum(units_produced), sum(units_rejected) "
        f"FROM {MODELS_SCHEMA}.int_production_runs GROUP BY component"
    )

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.connection = psycopg2.connect(dsn)
        self.connection.autocommit = True
        self.polls: list[Poll] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with self.connection.cursor() as cursor:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    cursor.execute(self.QUERY)
                    rows = cursor.fetchall()
                except psycopg2.Error as exc:
                    self.polls.append(Poll(started, time.monotonic(), None, {}, str(exc)))
                    continue
                states = {c: (int(n), int(p), int(r)) for _, c, n, p, r in rows}
                server_time = rows[0][0] if rows else None
                self.polls.append(Poll(started, time.monotonic(), server_time, states))
                time.sleep(0.005)
        self.connection.close()


def test_views_never_break_never_show_a_partial_table_and_follow_each_load(pipeline):
    refills = pipeline.sources["refills"]
    demo_data.create_source_table(refills, "refills", REFILLS_ROWS)
    load(pipeline)
    meltano_dbt(pipeline, "run")
    states = [{source: source_state(pipeline, source) for source in demo_data.SOURCES}]

    reader = Reader(pipeline.server.dsn(pipeline.warehouse.database))
    reader.start()
    windows = []  # (load started, load finished) per load, monotonic clock
    try:
        time.sleep(0.5)
        for changes in CHANGES:
            for source, statement in changes.items():
                pipeline.source_sql(source, statement)
            states.append({source: source_state(pipeline, source) for source in demo_data.SOURCES})
            started = time.monotonic()
            load(pipeline)
            windows.append((started, time.monotonic()))
            time.sleep(0.5)
    finally:
        reader.stop.set()
        reader.join(timeout=30)

    polls = reader.polls
    assert [p.error for p in polls if p.error] == []
    # Every load changed every line, so each state identifies exactly one load.
    for source in demo_data.SOURCES:
        assert len({state[source] for state in states}) == len(states), source
    # Never empty, never partial, never older than what was seen before.
    for source in demo_data.SOURCES:
        seen = [p.states.get(source) for p in polls]
        known = [state[source] for state in states]
        assert all(state in known for state in seen), (source, set(seen) - set(known))
        indexes = [known.index(state) for state in seen]
        assert indexes == sorted(indexes), source
    # Before a load starts, the view shows the previous load; after it finished, this one.
    for number, (started, finished) in enumerate(windows, start=1):
        previous_end = windows[number - 2][1] if number > 1 else 0.0
        next_start = windows[number][0] if number < len(windows) else float("inf")
        before = [p for p in polls if previous_end < p.started and p.ended < started]
        after = [p for p in polls if finished < p.started and p.ended < next_start]
        assert before, f"no read before load {number}"
        assert after, f"no read after load {number}"
        assert all(p.states == states[number - 1] for p in before), number
        assert all(p.states == states[number] for p in after), number

    # While refills' load was under way (its load history row spans it, from before the
    # replace transaction began until just before it committed), readers were served the
    # complete previous table: the polls prove it, not only the absence of errors.
    loads = warehouse_rows(
        pipeline,
        "SELECT started_at, finished_at FROM raw._load_history "
        "WHERE table_name = 'refills' AND status = 'replaced' ORDER BY id",
    )[1:]
    assert len(loads) == 3
    for number, (load_started, load_finished) in enumerate(loads, start=1):
        during = [
            p for p in polls if p.server_time and load_started < p.server_time < load_finished
        ]
        assert len(during) >= 3, f"only {len(during)} reads during refills load {number}"
        assert all(p.states["refills"] == states[number - 1]["refills"] for p in during), number
