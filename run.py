#!/usr/bin/env python3
"""The project's entry point for a new machine: needs only Python 3.10+ (standard library).

    python3 run.py demo [--rows N] [--keep-running]   set up, then run the demo pipeline
    python3 run.py test [pytest arguments]            set up, then lint and run the whole suite
    python3 run.py <pen-factory command> ...          set up, then `pen-factory <command> ...`

Setting up means: create `.venv` in the project when it is missing, and install into it the
project with its `dev` extra and the two plugins in editable mode. The install is repeated
only when a `pyproject.toml` changed since the last one.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PLUGINS = ("tap-manufacturing", "target-warehouse-raw")
STAMP = VENV / ".pen-factory-install"


def _say(message: str) -> None:
    print(f"run.py: {message}", flush=True)


def _bin(name: str) -> Path:
    folder = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return VENV / folder / f"{name}{suffix}"


# Besides the requirements, what an install compiles: an editable install builds the plugins'
# C modules once, in place, and does not notice when their sources change.
BUILD_INPUTS = [
    ROOT / "target-warehouse-raw" / "setup.py",
    ROOT / "target-warehouse-raw" / "target_warehouse_raw" / "_rowcopy.c",
    ROOT / "tap-manufacturing" / "setup.py",
    ROOT / "tap-manufacturing" / "tap_manufacturing" / "_rekey.c",
]


def _requirements_fingerprint() -> str:
    digest = hashlib.sha256()
    manifests = [ROOT / "pyproject.toml", *(ROOT / p / "pyproject.toml" for p in PLUGINS)]
    for path in [*manifests, *BUILD_INPUTS]:
        digest.update(path.name.encode())
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _check(argv: list[str], what: str) -> None:
    """Run an install step; its (noisy) output is shown only when it fails."""
    result = subprocess.run(
        argv, cwd=ROOT, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        _say(f"{what} failed (exit {result.returncode})")
        sys.exit(result.returncode)


def ensure_environment() -> None:
    """Create .venv and install the project into it, unless that is already done."""
    python = _bin("python")
    if not python.exists():
        _say(f"creating the virtualenv {VENV.relative_to(ROOT)}")
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        except (OSError, subprocess.CalledProcessError) as exc:
            _say(
                f"cannot create {VENV}: {exc}. On Debian or Ubuntu the venv module needs "
                "`apt-get install python3-venv`."
            )
            sys.exit(1)
    fingerprint = _requirements_fingerprint()
    if STAMP.exists() and STAMP.read_text().strip() == fingerprint:
        return
    _say("installing the project, its dev tools and the two plugins (first run: about a minute)")
    _check([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], "pip upgrade")
    argv = [str(python), "-m", "pip", "install", "--quiet", "-e", ".[dev]"]
    for plugin in PLUGINS:
        argv += ["-e", f"./{plugin}"]
    _check(argv, "pip install")
    # Byte-compile the editable sources once: the plugins start in about half a second with
    # .pyc files and several times slower without (PYTHONDONTWRITEBYTECODE is common on CI).
    sources = [str(ROOT / "pen_factory"), *(str(ROOT / plugin) for plugin in PLUGINS)]
    _check([str(python), "-m", "compileall", "-q", *sources], "byte-compile")
    STAMP.write_text(fingerprint + "\n")


def _parallel(extra: list[str]) -> list[str]:
    """pytest-xdist arguments, unless the caller chose: one worker per core (at most four),
    each test file whole on one worker (a file's fixtures, e.g. an Airflow install, are then
    built once). Much of the suite waits on PostgreSQL, Meltano and plugin processes: on two
    cores two workers took the suite from 37 to 24 minutes."""
    chosen = "no:xdist" in extra or any(a.startswith(("-n", "--numprocesses")) for a in extra)
    if chosen:
        return []
    workers = max(1, min(4, os.cpu_count() or 1))
    return ["-n", str(workers), "--dist", "loadfile"] if workers > 1 else []


def run_tests(extra: list[str]) -> int:
    """Lint, format check and the whole pytest suite; non-zero when any of them fails."""
    failures = []
    for what, argv in (
        ("ruff check", [str(_bin("ruff")), "check", "."]),
        ("ruff format --check", [str(_bin("ruff")), "format", "--check", "."]),
    ):
        _say(what)
        if subprocess.run(argv, cwd=ROOT, check=False).returncode != 0:
            failures.append(what)
    arguments = [*_parallel(extra), *extra]
    _say("pytest " + " ".join(arguments))
    status = subprocess.run(
        [str(_bin("python")), "-m", "pytest", *arguments], cwd=ROOT, check=False
    ).returncode
    if status != 0:
        failures.append(f"pytest (exit {status})")
    if failures:
        _say("FAILED: " + ", ".join(failures))
        return 1
    _say("all checks passed")
    return 0


def main(argv: list[str]) -> int:
    """Dispatch `demo`, `test` or any other pen-factory command."""
    if sys.version_info < (3, 10):  # noqa: UP036 -- say so clearly on an old Python
        _say("Python 3.10 or newer is needed")
        return 2
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0 if argv else 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "test":
        return run_tests(rest)
    return subprocess.run(
        [str(_bin("pen-factory")), command, *rest], cwd=ROOT, check=False
    ).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
