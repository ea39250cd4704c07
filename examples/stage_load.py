"""Loading files through a stage: ``stageflight put`` to your user stage ``@~``, then ``COPY INTO``.

    STAGEFLIGHT_URI=grpc://127.0.0.1:31337 STAGEFLIGHT_USER=root STAGEFLIGHT_PASSWORD=... \\
        python examples/stage_load.py

Writes a small CSV and a Parquet file to a temporary directory, uploads them with the ``stageflight put``
command (which PUTs each file to a presigned URL from ``PRESIGN UPLOAD``), loads them with ``COPY INTO``
(each file exactly once: the load history skips files already loaded) and queries the table with polars.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

URI = os.environ.get("STAGEFLIGHT_URI", "grpc://127.0.0.1:31337")
USER = os.environ.get("STAGEFLIGHT_USER", "root")
PASSWORD = os.environ.get("STAGEFLIGHT_PASSWORD", "")

CSV_TRIPS = [
    (1, "Oslo", 12.5),
    (2, "Lima", 7.25),
    (3, "Oslo", 30.0),
    (4, "Pune", 4.75),
    (5, "Lima", 9.5),
]
PARQUET_TRIPS = pa.table(
    {
        "id": pa.array([6, 7, 8], pa.int32()),
        "city": ["Pune", "Oslo", "Pune"],
        "fare": [6.0, 18.25, 3.5],
    }
)


def connect() -> flightsql.Connection:
    with warnings.catch_warnings():  # the DB-API warns that autocommit is not the PEP 249 default
        warnings.simplefilter("ignore")
        return flightsql.connect(URI, db_kwargs={"username": USER, "password": PASSWORD}, autocommit=True)


def stageflight_put(files: list[Path], target: str) -> None:
    """``stageflight put FILE... @~/dir/``: the client CLI, with the same connection settings."""
    env = dict(os.environ, STAGEFLIGHT_URI=URI, STAGEFLIGHT_USER=USER, STAGEFLIGHT_PASSWORD=PASSWORD)
    argv = [sys.executable, "-m", "flight.cli", "put", *map(str, files), target]
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"stageflight put failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    print(f"put {len(files)} file(s) to {target}")


def print_copy_result(cur: Any) -> None:
    """COPY INTO answers one row per file: File, Rows_loaded, Errors_seen, First_error, First_error_line."""
    result = cur.fetch_arrow_table().to_pylist()
    if not result:
        print("  no files loaded (all already in the load history)")
    for row in result:
        print(f"  {row['File']}: {row['Rows_loaded']} rows loaded, {row['Errors_seen']} errors")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="stage_load_") as tmp:
        csv_path = Path(tmp) / "trips.csv"
        with csv_path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "city", "fare"])
            writer.writerows(CSV_TRIPS)
        parquet_path = Path(tmp) / "more_trips.parquet"
        pq.write_table(PARQUET_TRIPS, parquet_path)

        with connect() as conn:
            with conn.cursor() as cur:  # start clean, so the example can run again
                cur.execute("REMOVE @~/trips/")
                cur.execute("REMOVE @~/trips_parquet/")
                cur.execute("CREATE OR REPLACE TABLE trips (id INTEGER, city VARCHAR, fare DOUBLE)")

            stageflight_put([csv_path], "@~/trips/")
            stageflight_put([parquet_path], "@~/trips_parquet/")

            with conn.cursor() as cur:
                cur.execute("LIST @~/trips")
                names = [row[0] for row in cur.fetchall()]
                print(f"staged: {', '.join(sorted(names))}")

                print("COPY INTO trips FROM @~/trips/ (CSV):")
                cur.execute("COPY INTO trips FROM @~/trips/ FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1)")
                print_copy_result(cur)

                print("COPY INTO trips FROM @~/trips_parquet/ (Parquet, columns matched by name):")
                cur.execute("COPY INTO trips FROM @~/trips_parquet/ FILE_FORMAT = (TYPE = PARQUET)")
                print_copy_result(cur)

                print("the same CSV COPY again:")
                cur.execute("COPY INTO trips FROM @~/trips/ FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1)")
                print_copy_result(cur)

            by_city = pl.read_database(
                "SELECT city, count(*) AS trips, sum(fare) AS total_fare "
                "FROM trips GROUP BY city ORDER BY city",
                connection=conn,
            )
            print(by_city)
            for row in by_city.iter_rows(named=True):
                print(f"  {row['city']}: {row['trips']} trips, {row['total_fare']:.2f} in fares")
            total = int(by_city["trips"].sum())
            print(f"rows in trips: {total}")

            with conn.cursor() as cur:
                cur.execute("DROP TABLE trips")
                cur.execute("REMOVE @~/trips/")
                cur.execute("REMOVE @~/trips_parquet/")
    print("done")
    return 0 if total == len(CSV_TRIPS) + PARQUET_TRIPS.num_rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
