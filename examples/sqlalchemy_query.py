"""SQLAlchemy over ADBC Flight SQL (the ``adbc+flightsql://`` dialect from sqlalchemy-adbc).

The URL carries the ADBC options in its query string: ``tls=false`` for a plain ``grpc://`` server,
``username``/``password`` for Basic login (the URL's own user:password part would be sent as a
bearer token instead, which is not what stageflight expects)::

    adbc+flightsql://127.0.0.1:31337?tls=false&username=root&password=...

    STAGEFLIGHT_URI=grpc://127.0.0.1:31337 STAGEFLIGHT_USER=root STAGEFLIGHT_PASSWORD=... \\
        python examples/sqlalchemy_query.py
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

URI = os.environ.get("STAGEFLIGHT_URI", "grpc://127.0.0.1:31337")
USER = os.environ.get("STAGEFLIGHT_USER", "root")
PASSWORD = os.environ.get("STAGEFLIGHT_PASSWORD", "")

PRODUCTS = [
    {"id": 1, "name": "pencil", "category": "office", "price": 0.99},
    {"id": 2, "name": "stapler", "category": "office", "price": 12.5},
    {"id": 3, "name": "kettle", "category": "kitchen", "price": 34.0},
    {"id": 4, "name": "mug", "category": "kitchen", "price": 6.75},
    {"id": 5, "name": "lamp", "category": "home", "price": 45.0},
]


def sqlalchemy_url(uri: str, user: str, password: str) -> URL:
    parts = urlsplit(uri)
    tls = parts.scheme in ("grpc+tls", "https")
    return URL.create(
        "adbc+flightsql",
        host=parts.hostname,
        port=parts.port,
        query={"tls": "true" if tls else "false", "username": user, "password": password},
    )


def make_engine() -> Engine:
    return sa.create_engine(sqlalchemy_url(URI, USER, PASSWORD))


def main() -> int:
    engine = make_engine()
    metadata = sa.MetaData()
    products = sa.Table(
        "example_products",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("category", sa.String, nullable=False),
        sa.Column("price", sa.Double, nullable=False),
    )
    try:
        with engine.begin() as conn:  # one transaction: DDL and inserts commit together
            conn.execute(sa.text("DROP TABLE IF EXISTS example_products"))
            metadata.create_all(conn)
            conn.execute(products.insert(), PRODUCTS)
        print(f"inserted {len(PRODUCTS)} products")

        with engine.connect() as conn:
            # Core expression language, compiled to SQL with ? parameters.
            query = (
                sa.select(
                    products.c.category,
                    sa.func.count().label("items"),
                    sa.func.avg(products.c.price).label("avg"),
                )
                .group_by(products.c.category)
                .order_by(products.c.category)
            )
            print("products per category:")
            for category, items, avg in conn.execute(query):
                print(f"  {category}: {items} items, average price {avg:.2f}")

            # Plain text SQL with a bound parameter.
            cheap = conn.execute(
                sa.text("SELECT name, price FROM example_products WHERE price < :limit ORDER BY price"),
                {"limit": 10},
            ).all()
            print("under 10: " + ", ".join(f"{name} ({price:.2f})" for name, price in cheap))

        # Reflection goes through Flight SQL metadata (ADBC GetObjects -> GetTables with schemas).
        # (Inspector.get_table_names() is not used: sqlalchemy-adbc 0.3 keeps only table_type "table"
        # in lowercase, while Flight SQL servers report "TABLE" as JDBC does.)
        inspector = sa.inspect(engine)
        print(f"has_table example_products: {inspector.has_table('example_products')}")
        with engine.connect() as conn:
            reflected = sa.Table("example_products", sa.MetaData(), autoload_with=conn)
            print("reflected columns: " + ", ".join(f"{c.name} {c.type}" for c in reflected.columns))
            priciest = conn.execute(
                sa.select(reflected.c.name).order_by(reflected.c.price.desc()).limit(1)
            ).scalar_one()
            print(f"most expensive: {priciest}")

        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE example_products"))
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
