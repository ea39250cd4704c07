"""polars through ADBC: ``DataFrame.write_database(engine="adbc")`` and ``polars.read_database``.

    STAGEFLIGHT_URI=grpc://127.0.0.1:31337 STAGEFLIGHT_USER=root STAGEFLIGHT_PASSWORD=... \\
        python examples/polars_roundtrip.py
"""

from __future__ import annotations

import os
import warnings

import adbc_driver_flightsql.dbapi as flightsql
import polars as pl

URI = os.environ.get("STAGEFLIGHT_URI", "grpc://127.0.0.1:31337")
USER = os.environ.get("STAGEFLIGHT_USER", "root")
PASSWORD = os.environ.get("STAGEFLIGHT_PASSWORD", "")


def connect() -> flightsql.Connection:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flightsql.connect(URI, db_kwargs={"username": USER, "password": PASSWORD}, autocommit=True)


def main() -> int:
    readings = pl.DataFrame(
        {
            "sensor": ["s1", "s2", "s3"] * 4,
            "hour": [h for h in range(4) for _ in range(3)],
            "celsius": [20.5, 18.0, 25.25, 21.0, 18.5, 25.75, 21.5, 19.0, 26.0, 22.0, 19.5, 26.5],
        }
    )
    with connect() as conn:
        written = readings.write_database(
            "example_readings", connection=conn, if_table_exists="replace", engine="adbc"
        )
        print(f"write_database wrote {written} rows into example_readings")

        summary = pl.read_database(
            "SELECT sensor, count(*) AS n, min(celsius) AS low, max(celsius) AS high, avg(celsius) AS mean "
            "FROM example_readings GROUP BY sensor ORDER BY sensor",
            connection=conn,
        )
        print(summary)
        for row in summary.iter_rows(named=True):
            print(
                f"  {row['sensor']}: n={row['n']} low={row['low']} high={row['high']} mean={row['mean']:.3f}"
            )

        back = pl.read_database("SELECT * FROM example_readings ORDER BY hour, sensor", connection=conn)
        same = back.equals(readings.sort("hour", "sensor"))
        print(f"round trip identical: {same}")

        with conn.cursor() as cur:
            cur.execute("DROP TABLE example_readings")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
