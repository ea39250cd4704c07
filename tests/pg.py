"""A throwaway PostgreSQL cluster for tests: Debian's binaries, a random loopback port, scram auth.

``initdb`` refuses to run as root, so under root the cluster belongs to the ``postgres`` user
(``runuser -u postgres --``) in a temp dir it owns. The superuser and the test role ``sf`` log in
with passwords (scram-sha-256, also on the Unix socket), as a deployment would. Durability is off
(fsync, synchronous_commit, full_page_writes): the cluster lives for one test session.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"
ROLE = "sf"
DATABASE = "stageflight"


def find_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name)
    )
    return Path(found[-1]).parent if found else None


def missing_reason() -> str | None:
    """Why the cluster cannot start here (None: it can)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    if find_bin_dir() is None:
        return "PostgreSQL server binaries are missing (apt-get install -y postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: initdb needs a non-root user"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgCluster:
    bin_dir: Path
    base: Path
    port: int
    superuser_password: str
    role_password: str
    host: str = "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", SUPERUSER, "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.base / "log"), *args)

    def start(self) -> None:
        self._pg_ctl("-w", "-t", "60", "start")

    def restart(self) -> None:
        """A fast restart: every open connection is cut, as when PostgreSQL restarts in production."""
        self._pg_ctl("-w", "-t", "60", "-m", "fast", "restart")

    def stop(self) -> None:
        self._pg_ctl("-w", "-t", "60", "-m", "immediate", "stop")

    def admin(self, dbname: str = DATABASE):  # type: ignore[no-untyped-def]
        """A superuser connection (autocommit); close it."""
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=SUPERUSER,
            password=self.superuser_password,
            dbname=dbname,
            autocommit=True,
        )

    def url(self, schema: str) -> str:
        """The --catalog URL for ``schema`` (the password comes from PGPASSWORD)."""
        return f"postgresql://{ROLE}@{self.host}:{self.port}/{DATABASE}?schema={schema}"

    def new_schema(self) -> str:
        name = "t_" + secrets.token_hex(6)
        with self.admin() as con:
            con.execute(f"CREATE SCHEMA {name} AUTHORIZATION {ROLE}")
        return name

    def drop_schema(self, name: str) -> None:
        with self.admin() as con:
            con.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def start_cluster() -> PgCluster:
    bin_dir = find_bin_dir()
    assert bin_dir is not None, missing_reason()
    base = Path(tempfile.mkdtemp(prefix="sf-pg-"))
    cluster = PgCluster(bin_dir, base, _free_port(), secrets.token_urlsafe(12), secrets.token_urlsafe(12))
    pwfile = base / "pw"
    pwfile.write_text(cluster.superuser_password + "\n")
    (base / "sock").mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, SUPERUSER)
        for item in (pwfile, base / "sock"):
            shutil.chown(item, SUPERUSER)
    os.chmod(pwfile, 0o600)
    cluster._run(
        str(bin_dir / "initdb"),
        "-D",
        str(cluster.data_dir),
        "-U",
        SUPERUSER,
        "-A",
        "scram-sha-256",
        f"--pwfile={pwfile}",
        "-E",
        "UTF8",
        "--no-sync",
    )
    pwfile.unlink()
    conf = "\n".join(
        [
            f"port = {cluster.port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{base / 'sock'}'",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "max_connections = 200",
            "shared_buffers = 32MB",
            "",
        ]
    )
    with open(cluster.data_dir / "postgresql.conf", "a") as f:
        f.write(conf)
    cluster.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            con = cluster.admin("postgres")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with con:
        con.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{cluster.role_password}'")
        con.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
    return cluster


def remove_cluster(cluster: PgCluster) -> None:
    try:
        cluster.stop()
    finally:
        shutil.rmtree(cluster.base, ignore_errors=True)
