"""The runnable client examples in examples/ work against the real server (each run as a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flight import app
from tests.conftest import ROOT_PASSWORD

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# example script -> lines its output must contain (whole lines, surrounding whitespace ignored)
EXPECTED: dict[str, list[str]] = {
    "adbc_basics.py": [
        "rows in example_cities: 6",
        "Berlin: 3850000",
        "Hamburg: 1890000",
        "Munich: 1510000",
        "arrow result: 3 rows, schema ['country', 'total', 'cities']",
        "DE: 7250000 in 3 cities",
        "ingested 100000 rows into example_numbers",
        "sum of even numbers: 2499950000",
        "sum of odd numbers: 2500000000",
        "example_cities columns: name string, country string, population int64",
        "done",
    ],
    "pandas_roundtrip.py": [
        "to_sql wrote 8 rows into example_orders",
        "2024-01: 59.75",
        "2024-02: 144.99",
        "2024-03: 55.51",
        "round trip identical: True",
    ],
    "polars_roundtrip.py": [
        "write_database wrote 12 rows into example_readings",
        "s1: n=4 low=20.5 high=22.0 mean=21.250",
        "s3: n=4 low=25.25 high=26.5 mean=25.875",
        "round trip identical: True",
    ],
    "stage_load.py": [
        "put 1 file(s) to @~/trips/",
        "put 1 file(s) to @~/trips_parquet/",
        "staged: trips/trips.csv, trips_parquet/more_trips.parquet",
        "trips/trips.csv: 5 rows loaded, 0 errors",
        "trips_parquet/more_trips.parquet: 3 rows loaded, 0 errors",
        "no files loaded (all already in the load history)",
        "Lima: 2 trips, 16.75 in fares",
        "Oslo: 3 trips, 60.75 in fares",
        "Pune: 3 trips, 14.25 in fares",
        "rows in trips: 8",
        "done",
    ],
    "sqlalchemy_query.py": [
        "inserted 5 products",
        "home: 1 items, average price 45.00",
        "kitchen: 2 items, average price 20.38",
        "office: 2 items, average price 6.75",
        "under 10: pencil (0.99), mug (6.75)",
        "has_table example_products: True",
        "most expensive: lamp",
    ],
}


def run_example(script: str, running: app.RunningServer) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ, STAGEFLIGHT_URI=running.uri, STAGEFLIGHT_USER="root", STAGEFLIGHT_PASSWORD=ROOT_PASSWORD
    )
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=EXAMPLES.parent,
    )


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs(script: str, server: app.RunningServer) -> None:
    done = run_example(script, server)
    output = f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, f"{script} exited {done.returncode}\n{output}"
    lines = {line.strip() for line in done.stdout.splitlines()}
    missing = [line for line in EXPECTED[script] if line not in lines]
    assert not missing, f"{script}: missing output lines {missing}\n{output}"
