"""Keep the READMEs' settings tables equal to what the plugins say about themselves.

The tables between `<!-- settings:<plugin> -->` and `<!-- /settings:<plugin> -->` in the
project README and each plugin's README are the "Settings" section of `<plugin> --about
--format=markdown`. Regenerate them with `pen-factory readme-settings` after changing a
plugin's settings; the test suite runs `pen-factory readme-settings --check` (in effect) and
fails when they drift.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

PLUGINS = ("tap-manufacturing", "target-warehouse-raw")
READMES = ("README.md", "tap-manufacturing/README.md", "target-warehouse-raw/README.md")
"""The files that hold settings blocks, relative to the project folder."""


def _executable(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (python3 run.py installs both plugins)")
    return found


def settings_table(plugin: str) -> str:
    """The markdown settings table of `plugin --about --format=markdown`."""
    about = subprocess.run(
        [_executable(plugin), "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    lines = about.splitlines()
    try:
        start = lines.index("## Settings") + 1
    except ValueError:
        raise RuntimeError(f"{plugin} --about has no Settings section") from None
    table = [line for line in lines[start:] if line.startswith("|")]
    return "\n".join(table)


def _block(plugin: str) -> re.Pattern[str]:
    name = re.escape(plugin)
    return re.compile(rf"(<!-- settings:{name} -->\n)(.*?)(<!-- /settings:{name} -->)", re.DOTALL)


def render(readme: str) -> str:
    """The README text with each settings block it holds regenerated."""
    found = False
    for plugin in PLUGINS:
        pattern = _block(plugin)
        if not pattern.search(readme):
            continue
        found = True
        table = settings_table(plugin) + "\n"
        readme = pattern.sub(lambda match, t=table: match.group(1) + t + match.group(3), readme)
    if not found:
        raise RuntimeError("the README has no <!-- settings:<plugin> --> block")
    return readme


def sync(readme_path: Path, *, check: bool) -> bool:
    """Regenerate the blocks (or only compare when `check`); True when they were current."""
    current = readme_path.read_text(encoding="utf-8")
    wanted = render(current)
    if wanted == current:
        return True
    if not check:
        readme_path.write_text(wanted, encoding="utf-8")
    return False


def sync_project(project_dir: Path, *, check: bool) -> list[Path]:
    """Regenerate (or only compare) every README's blocks; the files that were out of date."""
    stale = []
    for name in READMES:
        path = project_dir / name
        if not sync(path, check=check):
            stale.append(path)
    return stale
