"""Run a plugin as if its install had found no C compiler (shared by tap and target tests)."""

from __future__ import annotations

from pathlib import Path

_BLOCKER = """
import sys


class _BlockCompiledModules:
    # As if the install had found no C compiler: the plugins' C modules do not import.
    def find_spec(self, name, path=None, target=None):
        if name in ("target_warehouse_raw._rowcopy", "tap_manufacturing._rekey"):
            raise ImportError(f"{name} is blocked by this test")
        return None


sys.meta_path.insert(0, _BlockCompiledModules())
"""


def without_c_modules(folder: Path) -> dict[str, str]:
    """Environment for a plugin process in which the C modules fail to import.

    Python imports `sitecustomize` from the path at start-up; this one blocks the modules.
    """
    (folder / "sitecustomize.py").write_text(_BLOCKER)
    return {"PYTHONPATH": str(folder)}
