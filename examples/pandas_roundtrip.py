"""pandas through ADBC: ``DataFrame.to_sql`` (bulk ingest) and ``pandas.read_sql`` (Arrow results).

    STAGEFLIGHT_URI=grpc://127.0.0.1:31337 STAGEFLIGHT_USER=root STAGEFLIGHT_PASSWORD=... \\
        python examples/pandas_roundtrip.py
"""

from __future__ import annotations

import os
import warnings

import adbc_driver_flightsql.dbapi as flightsql
import pandas as pd

URI = os.environ.get("STAGEFLIGHT_URI", "grpc://127.0.0.1:31337")
USER = os.environ.get("STAGEFLIGHT_USER", "root")
PASSWORD = os.environ.get("STAGEFLIGHT_PASSWORD", "")


def connect() -> flightsql.Connection:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flightsql.connect(URI, db_kwargs={"username": USER, "password": PASSWORD}, autocommit=True)


def main() -> int:
    orders = pd.DataFrame(
        {
            "order_id": range(1, 9),
            "customer": ["alice", "bob", "alice", "carol", "bob", "alice", "carol", "dave"],
            "amount": [12.5, 40.0, 7.25, 99.99, 15.0, 30.0, 0.01, 55.5],
            "ordered_on": pd.to_datetime(
                [
                    "2024-01-03",
                    "2024-01-03",
                    "2024-01-07",
                    "2024-02-01",
                    "2024-02-11",
                    "2024-02-12",
                    "2024-03-01",
                    "2024-03-05",
                ]
            ),
        }
    )
    with connect() as conn:
        written = orders.to_sql("example_orders", conn, if_exists="replace", index=False)
        print(f"to_sql wrote {written} rows into example_orders")

        per_customer = pd.read_sql(
            "SELECT customer, count(*) AS orders, round(sum(amount), 2) AS total "
            "FROM example_orders GROUP BY customer ORDER BY total DESC",
            conn,
        )
        print("orders per customer:")
        print(per_customer.to_string(index=False))

        monthly = pd.read_sql(
            "SELECT strftime(ordered_on, '%Y-%m') AS month, round(sum(amount), 2) AS revenue "
            "FROM example_orders GROUP BY month ORDER BY month",
            conn,
        )
        print("revenue per month:")
        for month, revenue in monthly.itertuples(index=False):
            print(f"  {month}: {revenue:.2f}")

        back = pd.read_sql("SELECT * FROM example_orders ORDER BY order_id", conn)
        same = (
            list(back.columns) == list(orders.columns)
            and back["order_id"].tolist() == orders["order_id"].tolist()
            and back["customer"].tolist() == orders["customer"].tolist()
            and back["amount"].tolist() == orders["amount"].tolist()
            and [str(t.date()) for t in back["ordered_on"]] == [str(t.date()) for t in orders["ordered_on"]]
        )
        print(f"round trip identical: {same}")

        with conn.cursor() as cur:
            cur.execute("DROP TABLE example_orders")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
