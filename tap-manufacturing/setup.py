"""Only the C extension; everything else is declared in pyproject.toml.

The read path's row re-keying (tap_manufacturing/_rekey.c) is optional: where no C compiler
is at hand the install still succeeds and the tap asks the server for `row_to_json` rows,
which are the same records (tests/tap/test_rekey.py holds the two to that).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tap_manufacturing._rekey",
            sources=["tap_manufacturing/_rekey.c"],
            optional=True,
        )
    ]
)
