"""A server held to fewer CPUs than the machine has (taskset, a cpuset) sizes DuckDB to them.

DuckDB counts the machine's CPUs whatever the process's affinity; its extra threads then only
compete for the cores the process has.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pytest

from tests.serverproc import ROOT_PASSWORD, server_process

pytestmark = pytest.mark.skipif(
    shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2,
    reason="needs taskset and at least 2 CPUs",
)


def _threads_line(banner: list[str]) -> str:
    return next(line.strip() for line in banner if line.strip().startswith("threads:"))


def _answer(uri: str) -> list[tuple[object, ...]]:
    with (
        flightsql.connect(
            uri, db_kwargs={"username": "root", "password": ROOT_PASSWORD}, autocommit=True
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("CREATE TABLE t AS SELECT range AS id FROM range(100000)")
        cur.execute("SELECT count(*), sum(id) FROM t")
        return cur.fetchall()


def test_a_server_on_one_cpu_runs_duckdb_on_one_thread(tmp_path: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    with server_process(tmp_path / "pinned", launcher=("taskset", "-c", str(cpu))) as server:
        assert _threads_line(server.banner) == "threads:   1 (DuckDB's; --threads)"
        assert _answer(server.uri) == [(100000, 4999950000)]


def test_threads_given_win_over_the_cpus_it_may_use(tmp_path: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    with server_process(
        tmp_path / "pinned", "--threads", "3", launcher=("taskset", "-c", str(cpu))
    ) as server:
        assert _threads_line(server.banner) == "threads:   3 (DuckDB's; --threads)"
        assert _answer(server.uri) == [(100000, 4999950000)]


def test_a_server_not_pinned_uses_every_cpu_it_may_run_on(tmp_path: Path) -> None:
    # DuckDB's default (the machine's count) when nothing restricts this test process, else the
    # CPUs the cpuset leaves it, as a CI container's
    with server_process(tmp_path / "free") as server:
        expected = len(os.sched_getaffinity(0))
        assert _threads_line(server.banner) == f"threads:   {expected} (DuckDB's; --threads)"
