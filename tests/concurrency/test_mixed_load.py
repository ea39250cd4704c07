"""Many clients at once against a server in its own process: it must neither crash nor answer wrongly.

The cancel watcher once polled gRPC contexts of calls that had already returned (use-after-free);
32 clients running short statements crashed the server within seconds.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

from tests.concurrency.load import connect, run_mixed_load
from tests.serverproc import ROOT_PASSWORD, server_process

CLIENTS = 24
SECONDS = 30


def test_mixed_concurrent_load_neither_crashes_nor_errs(tmp_path: Path) -> None:
    with server_process(tmp_path / "data") as proc:
        users = [("root", ROOT_PASSWORD)]
        with connect(proc.uri, "root", ROOT_PASSWORD) as conn, conn.cursor() as cur:
            for i in range(3):
                cur.execute(f"CREATE USER loader{i} IDENTIFIED BY 'load-pw-{i}'")
                users.append((f"loader{i}", f"load-pw-{i}"))

        report = run_mixed_load(proc.uri, users, CLIENTS, SECONDS)

        assert proc.alive(), f"server died ({proc.process.returncode}):\n{proc.log_text()[-4000:]}"
        assert report.errors == [], report.summary() + "\n" + "\n".join(report.errors[:20])
        assert report.statements["select_1"] > 0 and report.statements["cancelled"] > 0, report.summary()
        with urllib.request.urlopen(proc.http_url + "/health", timeout=10) as response:
            assert response.status == 200
        with connect(proc.uri, "root", ROOT_PASSWORD) as conn, conn.cursor() as cur:
            cur.execute("SELECT 42")
            assert cur.fetchall() == [(42,)]
    assert "Fatal Python error" not in proc.log_text()
