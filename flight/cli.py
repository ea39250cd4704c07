"""The ``stageflight`` command: ``serve`` starts the server, ``init-lake`` creates a lake once."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

import pyarrow as pa

from client import cli as client_cli
from engine import Engine, EngineError
from flight import app
from flight.config import ServerConfig, load_config

USAGE = """usage: stageflight <command> [options]

commands:
  serve     start the Flight SQL server (stageflight serve --help)
  init-lake create a lake and its catalog once, before any node starts (serve's --catalog,
            --tables lake, --storage-root and --storage-* options); running it again changes nothing
  put       upload local files to a stage:    stageflight put FILE... @~/dir/
  get       download staged files:            stageflight get @~/path LOCAL_DIR
  ls        list a stage:                     stageflight ls @~[/path]
"""


def banner(running: app.RunningServer) -> str:
    cfg: ServerConfig = running.config
    host, port = cfg.host, running.port
    tls = cfg.tls
    lines = [
        f"stageflight ready: listening on {running.uri}",
        f"  data dir:  {cfg.data_dir.resolve()}",
        f"  threads:   {running.engine.db.threads()} (DuckDB's; --threads)",
    ]
    if cfg.catalog:  # never holds a password (refused in the URL)
        lines.append(f"  catalog:   {cfg.catalog} (users, roles and grants, shared with other nodes)")
    if running.http is not None:
        lines.append(f"  http:      http://{host}:{running.http.port} (/health, /metrics)")
    if running.generated_root_password:
        lines.append(
            f"  root password (generated, shown once; only a hash is stored): "
            f"{running.generated_root_password}"
        )
    else:
        lines.append("  user:      root (password from STAGEFLIGHT_ROOT_PASSWORD or set earlier)")
    lines += [
        "  ADBC:      import adbc_driver_flightsql.dbapi as fs; "
        f"conn = fs.connect('{running.uri}', db_kwargs={{'username': 'root', 'password': '<password>'}})",
        f"  JDBC:      jdbc:arrow-flight-sql://{host}:{port}/?user=root&password=<password>"
        + ("" if tls else "&useEncryption=false"),
    ]
    if not tls:
        lines.append("  warning:   TLS is off; use --tls-cert/--tls-key outside of localhost")
    return "\n".join(lines)


def serve(argv: Sequence[str]) -> int:
    config = load_config(argv, os.environ)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if config.threads:  # pyarrow's own pool (Parquet and CSV decoding) keeps to the bound as well
        pa.set_cpu_count(config.threads)
    try:
        running = app.start(config)
    except EngineError as exc:  # e.g. the --catalog database is unreachable: say so, no traceback
        print(f"stageflight: cannot start: {exc}", file=sys.stderr)
        return 1
    print(banner(running), flush=True)

    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # The gRPC server already serves from its own threads; the main thread only waits (in short
    # steps, so Python's signal handlers get to run) and then shuts everything down.
    while not stopping.wait(0.5):
        pass
    running.stop()
    return 0


def init_lake(argv: Sequence[str]) -> int:
    """Create the lake (its metadata schema and data path), the catalog tables and root, then stop.

    The nodes would do the same at their first start (under an advisory lock, so nodes starting
    together do not collide); this lets an operator do it once, see the root password, and start
    nodes that need not be first."""
    config = load_config(argv, os.environ)
    if config.tables != "lake" or config.catalog is None:
        print("stageflight: init-lake needs --catalog postgresql://... and --tables lake", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        engine = Engine(config.engine_config())
    except EngineError as exc:
        print(f"stageflight: cannot create the lake: {exc}", file=sys.stderr)
        return 1
    try:
        generated = engine.users.ensure_root(config.root_password)
        layout = engine.db.lake_layout()
    finally:
        engine.close()
    print("stageflight: lake ready")
    for what, where in layout.items():
        print(f"  {what + ':':16}{where}")
    if generated:
        print(f"  root password (generated, shown once; only a hash is stored): {generated}")
    else:
        print("  user:           root (password from STAGEFLIGHT_ROOT_PASSWORD or set earlier)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "serve":
        return serve(rest)
    if command == "init-lake":
        return init_lake(rest)
    if command in client_cli.COMMANDS:
        return client_cli.main(command, rest)
    print(f"stageflight: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
