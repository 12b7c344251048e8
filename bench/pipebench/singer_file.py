"""The target's input as a file: the tap's output captured once, optionally ASCII-escaped.

Timing the target alone, fed from a file, separates its cost from the tap's (the `target`
method). Our tap writes non-ASCII characters as raw UTF-8, as PostgreSQL renders them; taps
built on Python's `json` module (singer-python's default `ensure_ascii`) write every one as a
`\\uXXXX` escape, and characters outside the Basic Multilingual Plane (emoji) as a surrogate
pair. With `escape_non_ascii` the captured file is rewritten that way, so the benchmark also
shows which conversion path such input takes in the target.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def escape_non_ascii(line: str) -> str:
    """The same JSON with every non-ASCII character as a \\u escape (surrogate pairs above
    U+FFFF). In valid JSON such characters occur only inside strings, so this is lossless."""
    return _NON_ASCII.sub(_escape, line)


def capture(tap_argv: list[str], into: Path, *, escape: bool) -> Path:
    """Run the tap once into `into` (ASCII-escaped with `escape`); return the file."""
    raw = into.with_suffix(".raw") if escape else into
    with raw.open("wb") as out:
        result = subprocess.run(tap_argv, stdout=out, stderr=subprocess.PIPE, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"tap failed while capturing its output:\n{result.stderr[-3000:]!r}")
    if escape:
        with (
            raw.open(encoding="utf-8", newline="") as lines,
            into.open("w", encoding="ascii", newline="") as out,
        ):
            for line in lines:
                out.write(escape_non_ascii(line))
        raw.unlink()
    return into
