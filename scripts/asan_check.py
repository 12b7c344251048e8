"""Run the C modules' tests under AddressSanitizer.

    python scripts/asan_check.py            # after `python3 run.py test` has set up .venv

The plugins' C modules (the target's record converter, the tap's row re-keying) read
untrusted bytes. This builds both with `-fsanitize=address` into a temporary folder, makes
Python import those builds instead of the installed ones (a `sitecustomize` import hook), and
runs their tests, hypothesis-generated and damaged lines included, with the sanitizer loaded:
any read or write outside a buffer stops the run with a report. Needs gcc; not part of the
normal test run because a sanitized interpreter is several times slower.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = {
    "target_warehouse_raw._rowcopy": ROOT / "target-warehouse-raw/target_warehouse_raw/_rowcopy.c",
    "tap_manufacturing._rekey": ROOT / "tap-manufacturing/tap_manufacturing/_rekey.c",
}
TESTS = ["tests/target/test_rowcopy.py", "tests/tap/test_rekey.py"]

HOOK = """
import importlib.machinery
import importlib.util
import sys

BUILDS = {builds!r}


class _SanitizedBuilds:
    def find_spec(self, name, path=None, target=None):
        if name in BUILDS:
            loader = importlib.machinery.ExtensionFileLoader(name, BUILDS[name])
            return importlib.util.spec_from_file_location(name, BUILDS[name], loader=loader)
        return None


sys.meta_path.insert(0, _SanitizedBuilds())
"""


def build(folder: Path) -> dict[str, str]:
    """Each C module built with AddressSanitizer; module name -> shared library path."""
    include = sysconfig.get_paths()["include"]
    builds = {}
    for name, source in MODULES.items():
        library = folder / (name.replace(".", "_") + ".so")
        subprocess.run(
            ["gcc", "-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer", "-shared",
             "-fPIC", f"-I{include}", str(source), "-o", str(library)],
            check=True,
        )  # fmt: skip
        builds[name] = str(library)
    return builds


def main() -> int:
    runtime = subprocess.run(
        ["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as folder:
        builds = build(Path(folder))
        (Path(folder) / "sitecustomize.py").write_text(HOOK.format(builds=builds))
        env = {
            **os.environ,
            "PYTHONPATH": folder,
            "LD_PRELOAD": runtime,
            "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",  # CPython itself keeps memory
            "PYTHONMALLOC": "malloc",  # every object its own block, so overruns are seen
        }
        probe = "import importlib; print(*(importlib.import_module(m).__file__ for m in %r))"
        loaded = subprocess.run(
            [sys.executable, "-c", probe % list(builds)],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        if loaded != list(builds.values()):
            print(f"asan_check: the sanitized builds were not imported: {loaded}")
            return 1
        # --capture=sys: the sanitizer writes its report to file descriptor 2, which pytest's
        # default capture would swallow when the process aborts.
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   "--capture=sys", *TESTS, "-m", "not integration", *sys.argv[1:]]  # fmt: skip
        return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
