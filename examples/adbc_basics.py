"""ADBC basics against stageflight: connect, DDL, parameterized DML and queries, Arrow results, bulk ingest.

    STAGEFLIGHT_URI=grpc://127.0.0.1:31337 STAGEFLIGHT_USER=root STAGEFLIGHT_PASSWORD=... \\
        python examples/adbc_basics.py
"""

from __future__ import annotations

import os
import warnings

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa

URI = os.environ.get("STAGEFLIGHT_URI", "grpc://127.0.0.1:31337")
USER = os.environ.get("STAGEFLIGHT_USER", "root")
PASSWORD = os.environ.get("STAGEFLIGHT_PASSWORD", "")

CITIES = [
    ("Berlin", "DE", 3_850_000),
    ("Hamburg", "DE", 1_890_000),
    ("Munich", "DE", 1_510_000),
    ("Paris", "FR", 2_100_000),
    ("Lyon", "FR", 520_000),
    ("Vienna", "AT", 2_000_000),
]


def connect() -> flightsql.Connection:
    with warnings.catch_warnings():  # the DB-API warns that autocommit is not the PEP 249 default
        warnings.simplefilter("ignore")
        return flightsql.connect(URI, db_kwargs={"username": USER, "password": PASSWORD}, autocommit=True)


def main() -> int:
    with connect() as conn, conn.cursor() as cur:
        info = conn.adbc_get_info()
        print(f"connected to {info.get('vendor_name')} {info.get('vendor_version')} at {URI} as {USER}")

        # DDL, then many rows through one prepared INSERT (parameters travel as Arrow).
        cur.execute(
            "CREATE OR REPLACE TABLE example_cities (name VARCHAR, country VARCHAR, population BIGINT)"
        )
        cur.executemany("INSERT INTO example_cities VALUES (?, ?, ?)", CITIES)
        cur.execute("SELECT count(*) FROM example_cities")
        (count,) = cur.fetchone() or (0,)
        print(f"rows in example_cities: {count}")

        # A parameterized query, rows as Python tuples.
        cur.execute(
            "SELECT name, population FROM example_cities WHERE country = ? ORDER BY population DESC", ("DE",)
        )
        print("German cities by population:")
        for name, population in cur.fetchall():
            print(f"  {name}: {population}")

        # The same result set as Arrow: no row-by-row conversion.
        cur.execute(
            "SELECT country, sum(population) AS total, count(*) AS cities "
            "FROM example_cities GROUP BY country ORDER BY total DESC"
        )
        totals = cur.fetch_arrow_table()
        print(f"arrow result: {totals.num_rows} rows, schema {totals.schema.names}")
        for row in totals.to_pylist():
            print(f"  {row['country']}: {row['total']} in {row['cities']} cities")

        # Bulk ingest of an Arrow table (one DoPut stream), then aggregate it on the server.
        numbers = pa.table(
            {"n": pa.array(range(100_000), pa.int64()), "parity": pa.array(["even", "odd"] * 50_000)}
        )
        ingested = cur.adbc_ingest("example_numbers", numbers, mode="replace")
        print(f"ingested {ingested} rows into example_numbers")
        cur.execute("SELECT parity, sum(n) AS total FROM example_numbers GROUP BY parity ORDER BY parity")
        for parity, total in cur.fetchall():
            print(f"  sum of {parity} numbers: {total}")

        # Catalog metadata through Flight SQL's metadata commands.
        schema = conn.adbc_get_table_schema("example_cities")
        print("example_cities columns: " + ", ".join(f"{f.name} {f.type}" for f in schema))

        cur.execute("DROP TABLE example_cities")
        cur.execute("DROP TABLE example_numbers")
    print("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
