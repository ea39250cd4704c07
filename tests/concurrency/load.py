"""A mixed multi-client workload against a running server: short statements, ~10 ms queries, prepared
re-executions, writes read back, and cancelled long queries. Used by the bounded test in the suite and
by the long soak in tests/benchmarks/soak_concurrency.py.

Every statement's answer is checked; a wrong answer or an unexpected error counts as an error.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql

LONG_QUERY = "SELECT count(*) FROM range(100000000000) a"


@dataclass
class LoadReport:
    clients: int = 0
    seconds: float = 0.0
    statements: Counter[str] = field(default_factory=Counter)
    rows_checked: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.statements.values())

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.statements.items()))
        return (
            f"{self.clients} clients x {self.seconds:.0f} s: {self.total} statements ({kinds}), "
            f"{self.rows_checked} rows checked, {len(self.errors)} errors"
        )


def connect(uri: str, user: str, password: str) -> Any:
    return flightsql.connect(uri, db_kwargs={"username": user, "password": password}, autocommit=True)


def _expect(actual: object, wanted: object, what: str) -> None:
    if actual != wanted:
        raise AssertionError(f"{what}: got {actual!r}, wanted {wanted!r}")


class _Client:
    def __init__(self, n: int, uri: str, user: str, password: str, report: LoadReport, lock: threading.Lock):
        self.n, self.uri, self.user, self.password = n, uri, user, password
        self.report, self.lock = report, lock
        self.rng = random.Random(n)
        self.table = f"load_{user}_{n}"
        self.inserted = 0

    def count(self, kind: str, rows: int = 0) -> None:
        with self.lock:
            self.report.statements[kind] += 1
            self.report.rows_checked += rows

    def run(self, deadline: float) -> None:
        try:
            conn = connect(self.uri, self.user, self.password)
        except Exception as exc:
            with self.lock:
                self.report.errors.append(f"client {self.n} connect: {exc}")
            return
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE OR REPLACE TABLE {self.table} (id INTEGER, v VARCHAR)")
            while time.monotonic() < deadline:
                step = self.rng.random()
                try:
                    if step < 0.35:
                        self.select_one(conn)
                    elif step < 0.6:
                        self.short_query(conn)
                    elif step < 0.8:
                        self.prepared(conn)
                    elif step < 0.97:
                        self.write_and_read(conn)
                    else:
                        self.cancel_long(conn)
                except Exception as exc:
                    with self.lock:
                        self.report.errors.append(f"client {self.n}: {type(exc).__name__}: {exc}"[:500])
        finally:
            try:
                with conn.cursor() as cur:
                    cur.execute(f"DROP TABLE IF EXISTS {self.table}")
            finally:
                conn.close()

    def select_one(self, conn: Any) -> None:
        with conn.cursor() as cur:  # a new cursor each time, as pandas and BI tools do
            cur.execute("SELECT 1")
            _expect(cur.fetchall(), [(1,)], "SELECT 1")
        self.count("select_1", 1)

    def short_query(self, conn: Any) -> None:
        n = self.rng.randrange(100_000, 400_000)
        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*), sum(range) FROM range({n})")
            _expect(cur.fetchall(), [(n, n * (n - 1) // 2)], "range query")
        self.count("short_query", 1)

    def prepared(self, conn: Any) -> None:
        with conn.cursor() as cur:
            for _ in range(3):  # the same text re-executes the prepared statement
                x = self.rng.randrange(1_000_000)
                cur.execute("SELECT ? + 1 AS y", (x,))
                _expect(cur.fetchall(), [(x + 1,)], "prepared")
                self.count("prepared", 1)

    def write_and_read(self, conn: Any) -> None:
        rows = self.rng.randrange(1, 20)
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self.table} VALUES (?, ?)",
                [(self.inserted + i, f"r{i}") for i in range(rows)],
            )
            self.inserted += rows
            cur.execute(f"SELECT count(*), count(DISTINCT id) FROM {self.table}")
            _expect(cur.fetchall(), [(self.inserted, self.inserted)], "rows read back")
        self.count("write_read", rows)

    def cancel_long(self, conn: Any) -> None:
        with conn.cursor() as cur:
            done = threading.Event()
            first = self.rng.uniform(0.05, 0.3)

            def cancel() -> None:
                # The driver drops a cancel that lands between two of its RPCs, so press it again
                # until the query gives up, as an impatient user would.
                if not done.wait(first):
                    cur.adbc_cancel()
                    while not done.wait(0.2):
                        cur.adbc_cancel()

            canceller = threading.Thread(target=cancel)
            canceller.start()
            try:
                started = time.monotonic()
                cur.execute(LONG_QUERY)
                rows = cur.fetchall()
                raise AssertionError(
                    f"a cancelled query finished: {rows} after {time.monotonic() - started:.2f} s"
                )
            except flightsql.Error as exc:
                if "cancel" not in str(exc).lower():
                    raise
            finally:
                done.set()
                canceller.join()
        # The session keeps serving after a cancel.
        self.select_one(conn)
        self.count("cancelled")


def run_mixed_load(uri: str, users: list[tuple[str, str]], clients: int, seconds: float) -> LoadReport:
    """``clients`` threads, each on its own ADBC connection, spread over ``users``."""
    report = LoadReport(clients=clients, seconds=seconds)
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    threads = []
    for n in range(clients):
        user, password = users[n % len(users)]
        client = _Client(n, uri, user, password, report, lock)
        threads.append(threading.Thread(target=client.run, args=(deadline,), name=f"load-{n}"))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    with lock:
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            report.errors.append(f"clients still running long after the deadline: {stuck}")
    return report
