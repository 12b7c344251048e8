"""Run dbt while holding the warehouse's dbt lock, so that builds into one schema take turns.

dbt does not guard against two runs building the same models at once: each replaces a view
or table by creating `<name>__dbt_tmp` and renaming, and two runs at the same moment collide
("relation ... already exists") and fail both. That happens as soon as two runs of the job
overlap (a forced run, a retry while the first still runs, a developer's `dbt build` during
the scheduled one). This wrapper takes a PostgreSQL advisory lock named after the models'
schema on the warehouse, runs dbt with the given arguments, and releases the lock when dbt
ends (or when this process dies: the lock belongs to its connection). A second build waits,
says so, and then runs on the first one's result.

Meltano's `dbt-postgres` commands that build (build, run, seed) run through it, with the
plugin's own Python, which has psycopg2 through dbt-postgres:
    python transform/dbt_with_lock.py build
The connection is resolved exactly as transform/profiles/profiles.yml resolves it
(DBT_POSTGRES_* first, then WAREHOUSE_*, then the loader's defaults; the prod target requires
TLS). Written by hand because dbt has no option for this and hooks cannot hold a lock: dbt
closes the connection a hook ran on right after the hooks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import psycopg2

_PROFILE_DEFAULTS = {
    "host": ("HOST", "localhost"),
    "port": ("PORT", "5432"),
    "dbname": ("DB", "warehouse"),
    "user": ("USER", "postgres"),
    "password": ("PASSWORD", ""),
    "schema": ("ANALYTICS_SCHEMA", "analytics"),
}


def _target(args: Sequence[str], env: Mapping[str, str]) -> str:
    """The dbt target: `--target X` / `-t X` / `--target=X`, else DBT_TARGET, else dev."""
    for index, arg in enumerate(args):
        if arg in ("--target", "-t") and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--target="):
            return arg.split("=", 1)[1]
    return env.get("DBT_TARGET") or "dev"


def connection_settings(args: Sequence[str], env: Mapping[str, str]) -> dict[str, str]:
    """What profiles.yml connects with, for these arguments and this environment."""
    settings = {}
    for field, (warehouse, default) in _PROFILE_DEFAULTS.items():
        dbt_variable = f"DBT_POSTGRES_{field.upper()}"
        settings[field] = env.get(dbt_variable) or env.get(f"WAREHOUSE_{warehouse}") or default
    if _target(args, env) == "prod":
        settings["sslmode"] = env.get("DBT_POSTGRES_SSLMODE") or "require"
    else:
        settings["sslmode"] = (
            env.get("DBT_POSTGRES_SSLMODE") or env.get("WAREHOUSE_SSLMODE") or "prefer"
        )
    return settings


def _lock(settings: Mapping[str, str]) -> psycopg2.extensions.connection:
    """Connect and take the lock of the models' schema, waiting (and saying so) if taken."""
    where = f"{settings['user']}@{settings['host']}:{settings['port']}/{settings['dbname']}"
    try:
        connection = psycopg2.connect(
            host=settings["host"],
            port=int(settings["port"]),
            dbname=settings["dbname"],
            user=settings["user"],
            password=settings["password"] or None,
            sslmode=settings["sslmode"],
            connect_timeout=10,
            application_name="dbt-pen-factory lock",
        )
    except psycopg2.OperationalError as exc:
        reason = (str(exc).strip().splitlines() or ["no reason given"])[0]
        raise SystemExit(f"dbt_with_lock: cannot reach the warehouse {where}: {reason}") from None
    connection.autocommit = True
    key = f"pen-factory dbt: {settings['schema']}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,))
        if not cursor.fetchone()[0]:
            print(
                f"dbt_with_lock: another dbt run is building schema {settings['schema']} in "
                f"{where}; waiting for it to finish",
                flush=True,
            )
            cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
    return connection


def main(args: Sequence[str]) -> int:
    """Hold the lock, run dbt with `args`, return dbt's exit code."""
    dbt = Path(sys.executable).parent / "dbt"
    connection = _lock(connection_settings(args, os.environ))
    try:
        child = subprocess.Popen([str(dbt), *args])
        # Meltano (or a scheduler) stops a command with SIGTERM: pass it on, then wait.
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda received, _frame: child.send_signal(received))
        return child.wait()
    finally:
        connection.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
