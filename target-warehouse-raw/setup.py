"""Only the C extension; everything else is declared in pyproject.toml.

The hot path's converter (target_warehouse_raw/_rowcopy.c) is optional: where no C compiler
is at hand the install still succeeds and the target runs its Python path alone, which gives
the same rows (tests/target/test_rowcopy.py holds the two to that).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "target_warehouse_raw._rowcopy",
            sources=["target_warehouse_raw/_rowcopy.c"],
            optional=True,
        )
    ]
)
