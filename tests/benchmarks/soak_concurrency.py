"""Long mixed-load soak: many ADBC clients against a server in its own process (issue 11).

    .venv/bin/python -m tests.benchmarks.soak_concurrency                 # 32 clients x 180 s
    .venv/bin/python -m tests.benchmarks.soak_concurrency --clients 8 --seconds 30

Each client runs, on its own connection, new-cursor ``SELECT 1``, ~10 ms range queries, prepared
re-executions, INSERTs read back (every row counted), and long queries it cancels; clients are spread
over root and three users. Exits non-zero when the server died or any answer was wrong or an error.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.concurrency.load import connect, run_mixed_load
from tests.serverproc import ROOT_PASSWORD, server_process


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--users", type=int, default=3, help="users besides root")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, server_process(Path(tmp) / "data") as proc:
        users = [("root", ROOT_PASSWORD)]
        with connect(proc.uri, "root", ROOT_PASSWORD) as conn, conn.cursor() as cur:
            for i in range(args.users):
                cur.execute(f"CREATE USER soak{i} IDENTIFIED BY 'soak-pw-{i}'")
                users.append((f"soak{i}", f"soak-pw-{i}"))
        started = time.monotonic()
        report = run_mixed_load(proc.uri, users, args.clients, args.seconds)
        elapsed = time.monotonic() - started
        alive = proc.alive()
        print(report.summary())
        print(f"wall {elapsed:.1f} s, {report.total / elapsed:.0f} statements/s, server alive: {alive}")
        for error in report.errors[:20]:
            print("  error:", error)
        if not alive:
            print(proc.log_text()[-4000:])
        crashed = not alive or "Fatal Python error" in proc.log_text()
    return 1 if crashed or report.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
