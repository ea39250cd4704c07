"""The statement allowlist: what passes, what is refused and why, and that regenerated SQL runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from sqlglot import exp

from engine.errors import StatementRejected
from engine.sql import catalog_policy, guard
from engine.sql.dialect import stage_refs

ALLOWED = [
    "SELECT 1",
    "FROM t",
    "SELECT * FROM @~/data.csv",
    "SELECT $1, t.$2 FROM @s1/p/ (FILE_FORMAT => 'CSV', FILES => ('a.csv', 'b.csv')) t",
    "SELECT * FROM t JOIN '@s1/a b/x.csv' u USING (a)",
    "DESCRIBE @~/x.parquet",
    "MERGE INTO t USING @~/x.csv s ON t.a = s.a WHEN MATCHED THEN UPDATE SET a = s.a",
    "SELECT 1 UNION ALL SELECT 2",
    "VALUES (1), (2)",
    "INSERT INTO t VALUES (1) RETURNING *",
    "INSERT INTO t BY NAME SELECT 1 AS a",
    "UPDATE t SET a = a + 1 WHERE a > 0",
    "DELETE FROM t WHERE a = 1",
    "CREATE TABLE t (a INT DEFAULT 1 CHECK (a > 0), b VARCHAR)",
    "CREATE TEMP TABLE t AS SELECT 1 AS a",
    "CREATE OR REPLACE TABLE t AS FROM range(3)",
    "CREATE TABLE IF NOT EXISTS s.t (a INT)",
    "CREATE VIEW v AS SELECT a FROM t",
    "CREATE SCHEMA IF NOT EXISTS s",
    "CREATE SEQUENCE seq START 1",
    "CREATE INDEX i ON t (a)",
    "DROP TABLE IF EXISTS t",
    "DROP VIEW v",
    "DROP SCHEMA s CASCADE",
    "DROP SEQUENCE seq",
    "DROP INDEX i",
    "ALTER TABLE t ADD COLUMN c INT",
    "ALTER TABLE t RENAME TO u",
    "ALTER TABLE t DROP COLUMN IF EXISTS c",
    "ALTER TABLE t ALTER COLUMN a SET DEFAULT 1",
    "TRUNCATE t",
    "DESCRIBE t",
    "SHOW TABLES",
    "BEGIN",
    "BEGIN TRANSACTION",
    "COMMIT",
    "ROLLBACK",
    "SELECT * FROM information_schema.tables",
    "SELECT nextval('seq')",
    "SELECT * FROM t AS x(a, b)",
    "SELECT 'read_csv(''/etc/passwd'')' AS not_a_call",
]

REFUSED = [
    ("ATTACH ':memory:' AS m", "Statement ATTACH is not allowed"),
    ("CREATE MACRO m(a) AS a", "Statement CREATE MACRO is not allowed"),
    ("DROP MACRO m", "Statement DROP MACRO is not allowed"),
    ("DROP SECRET s", "Statement DROP SECRET is not allowed"),
    ("ALTER VIEW v RENAME TO w", "Statement ALTER VIEW is not allowed"),
    ("SHOW ALL TABLES", "Statement SHOW ALL TABLES is not allowed"),
    ("VACUUM", "Statement VACUUM is not allowed"),
    ("ANALYZE", "Statement ANALYZE is not allowed"),
    ("ABORT", "Statement ABORT is not allowed"),
    ("ALTER TABLE t ADD COLUMN c INT DEFAULT (SELECT 1 FROM glob('/*'))", "Function glob"),
    ("COPY INTO t FROM @~/x.csv", "Statement COPY is not allowed"),
    ("SELECT * FROM (PIVOT t ON a USING sum(b))", "read by DuckDB as "),
    ("SELECT * FROM t, LATERAL foo(t.a)", "Table function foo is not allowed"),
    ("SELECT * FROM json_each('{}')", "Table function json_each is not allowed"),
    ("SELECT * FROM main.range(3)", "Table function range cannot be schema-qualified"),
    ("CREATE TABLE @~/x.csv (a INT)", "can only be read from"),
    ("DROP TABLE '@s1/x.csv'", "can only be read from"),
    ("SELECT * FROM @~/x (PATTERN => (SELECT 1))", "Stage option PATTERN must be a literal or a name"),
    ('SELECT * FROM "My Table"', "Table name 'My Table' is not a plain identifier"),
    ("SELECT 1 AS __stage_x", "Name __stage_x is reserved"),
    ("SELECT '__stageflight' AS s", "names a reserved object"),
    ("SELECT 1;; SELECT * FROM read_csv('x')", "Function read_csv"),
    ("SELECT * FROM", "Cannot parse statement"),
    ("SELEC 1", "Cannot parse statement"),
    ("   ;  ", "Empty statement"),
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_allowed_statements_pass(sql: str) -> None:
    trees = guard.validate(sql)
    assert len(trees) == 1


@pytest.mark.parametrize(("sql", "fragment"), REFUSED)
def test_refused_statements(sql: str, fragment: str) -> None:
    with pytest.raises(StatementRejected) as err:
        for tree in guard.validate(sql):
            guard.regenerate(tree)
    assert fragment in str(err.value)


def test_a_batch_with_one_bad_statement_is_refused_whole() -> None:
    with pytest.raises(StatementRejected, match="ATTACH"):
        guard.validate("CREATE TABLE t (a INT); INSERT INTO t VALUES (1); ATTACH ':memory:' AS m")
    assert len(guard.validate("SELECT 1; SELECT 2;")) == 2


def test_parse_errors_are_one_clean_line() -> None:
    with pytest.raises(StatementRejected) as err:
        guard.parse_statements("SELECT * FROM t WHERE (")
    message = str(err.value)
    assert message.startswith("Cannot parse statement: ") and "(line 1, column" in message
    assert "\n" not in message and "\x1b" not in message


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELECT 1\x00", "NUL"),
        ("SELECT 1 " + "-- padding\n" * 120_000, "longer than"),
        ("SELECT " + "(" * 2000 + "1" + ")" * 2000, "nested too deeply"),
        ("SELECT 'open", "Cannot read statement"),
    ],
)
def test_hostile_input_shapes(sql: str, fragment: str) -> None:
    with pytest.raises(StatementRejected, match=fragment):
        guard.parse_statements(sql)


def test_regenerate_needs_resolved_stages() -> None:
    (tree,) = guard.validate("SELECT * FROM @~/x.csv t")
    with pytest.raises(StatementRejected, match="resolved"):
        guard.regenerate(tree)
    for ref in stage_refs(tree):
        ref.replace(exp.to_identifier("__stage_0a1b"))
    assert guard.regenerate(tree) == "SELECT * FROM __stage_0a1b AS t"


def test_regenerate_drops_comments_and_hidden_statements() -> None:
    # Whatever a nested comment hides from sqlglot never reaches DuckDB: only the regenerated text runs.
    (tree,) = guard.validate("/* /* */ ATTACH ':memory:' AS m; -- */ SELECT 1 /* trailing */")
    assert guard.regenerate(tree) == "SELECT 1"


def test_regenerate_refuses_denied_names_sqlglot_might_model_differently() -> None:
    tree = exp.select("*").from_(exp.Table(this=exp.Anonymous(this="read_text", expressions=[])))
    with pytest.raises(StatementRejected, match="read_text"):
        guard.regenerate(tree)


def test_regenerate_refuses_roots_outside_the_allowlist() -> None:
    with pytest.raises(StatementRejected, match="ATTACH"):
        guard.regenerate(exp.Attach(this=exp.Literal.string(":memory:")))


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", True),
        ("FROM t", True),
        ("SELECT 1 UNION SELECT 2", True),
        ("VALUES (1)", True),
        ("DESCRIBE t", True),
        ("SHOW TABLES", True),
        ("INSERT INTO t VALUES (1) RETURNING a", True),
        ("UPDATE t SET a = 1 RETURNING *", True),
        ("DELETE FROM t RETURNING a", True),
        ("INSERT INTO t VALUES (1)", False),
        ("UPDATE t SET a = 1", False),
        ("DELETE FROM t", False),
        ("CREATE TABLE t (a INT)", False),
        ("CREATE TABLE t AS SELECT 1", False),
        ("DROP TABLE t", False),
        ("BEGIN", False),
        ("TRUNCATE t", False),
    ],
)
def test_is_query(sql: str, expected: bool) -> None:
    (tree,) = guard.validate(sql)
    assert guard.is_query(tree) is expected


# -- round trips: the regenerated SQL runs on a real DuckDB file and means the same thing ------------
@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    conn = duckdb.connect(str(tmp_path / "roundtrip.duckdb"))
    conn.execute("CREATE TABLE sales (region VARCHAR, item VARCHAR, qty INTEGER, price DOUBLE)")
    conn.execute(
        "INSERT INTO sales VALUES ('eu', 'pen', 3, 1.5), ('eu', 'ink', 1, 7.0), "
        "('us', 'pen', 5, 1.25), ('us', 'pad', 2, 3.0), ('ap', 'pen', 1, 1.75)"
    )
    yield conn
    conn.close()


ROUND_TRIPS = [
    "FROM sales SELECT region, item WHERE qty > 1 ORDER BY ALL",
    "SELECT region, sum(qty * price) AS revenue FROM sales GROUP BY ALL ORDER BY ALL",
    "SELECT * EXCLUDE (price) FROM sales ORDER BY region, item",
    "SELECT * REPLACE (qty * 10 AS qty) FROM sales ORDER BY region, item",
    "SELECT region, item FROM sales QUALIFY row_number() OVER (PARTITION BY region ORDER BY qty DESC) = 1 "
    "ORDER BY region",
    "SELECT [x * 2 FOR x IN [1, 2, 3] IF x > 1] AS doubled",
    "SELECT list_transform([1, 2, 3], lambda x: x + 1) AS l",
    "WITH big AS (SELECT * FROM sales WHERE qty >= 2) SELECT count(*) FROM big",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT sum(n) FROM r",
    "SELECT item, qty, sum(qty) OVER (PARTITION BY item ORDER BY region) AS running FROM sales "
    "ORDER BY item, region",
    "SELECT DISTINCT ON (region) region, item FROM sales ORDER BY region, qty DESC",
    "SELECT string_agg(item, ',' ORDER BY item) FROM sales",
    "SELECT {'a': 1, 'b': [1, 2]}.b[2], 'hello'[2:3], 7 // 2, 2 ** 3",
    "SELECT * FROM range(3) r(x) CROSS JOIN generate_series(1, 2) g(y) ORDER BY ALL",
    "SELECT u.x FROM unnest([3, 1, 2]) AS u(x) ORDER BY u.x",
    "VALUES (1, 'a'), (2, 'b')",
    "SELECT region FROM sales UNION ALL BY NAME SELECT 'zz' AS region ORDER BY region",
    "SELECT arg_max(item, qty), TRY_CAST('x' AS INTEGER), strftime(DATE '2024-03-01', '%Y-%m') FROM sales",
]


@pytest.mark.parametrize("sql", ROUND_TRIPS)
def test_regenerated_query_gives_the_same_rows(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    (tree,) = guard.validate(sql)
    regenerated = guard.regenerate(tree)
    assert con.execute(regenerated).fetchall() == con.execute(sql).fetchall()


def test_regenerated_statements_run_in_sequence(con: duckdb.DuckDBPyConnection) -> None:
    script = [
        ("CREATE TEMP TABLE notes (id INTEGER, body VARCHAR DEFAULT 'none', CHECK (id > 0))", None),
        ("INSERT INTO notes (id) VALUES (1), (2) RETURNING id, body", [(1, "none"), (2, "none")]),
        ("UPDATE notes SET body = 'x' WHERE id = 2 RETURNING body", [("x",)]),
        ("CREATE TABLE copy_of AS SELECT * FROM notes", None),
        ("BEGIN", None),
        ("DELETE FROM copy_of WHERE id = 1", None),
        ("ROLLBACK", None),
        ("SELECT count(*) FROM copy_of", [(2,)]),
        ("ALTER TABLE copy_of ADD COLUMN extra INTEGER", None),
        ("ALTER TABLE copy_of DROP COLUMN extra", None),
        ("CREATE VIEW v AS SELECT id FROM copy_of WHERE id > 1", None),
        ("SELECT * FROM v", [(2,)]),
        ("DESCRIBE copy_of", None),
        ("SHOW TABLES", None),
        ("TRUNCATE copy_of", None),
        ("SELECT count(*) FROM copy_of", [(0,)]),
        ("DROP VIEW v", None),
    ]
    from engine.metadata import EVERYTHING
    from engine.statements.visibility import visibility_table

    con.register("__stage_visible", visibility_table(EVERYTHING))  # SHOW TABLES reads it (issue 13)
    for sql, expected in script:
        (tree,) = guard.validate(sql)
        rows = con.execute(guard.regenerate(tree))
        if expected is not None:
            assert rows.fetchall() == expected, sql


def test_comment_inside_a_function_name_splits_it() -> None:
    # Both sqlglot and DuckDB read 'read_/**/csv(...)' as table read_ with alias csv(col): no file access.
    (tree,) = guard.validate("SELECT * FROM read_/**/csv('/etc/passwd')")
    assert guard.regenerate(tree) == 'SELECT * FROM read_ AS csv("/etc/passwd")'


# -- catalog qualifiers, time travel, __ducklake (issue 13 PR 5; catalog-home.md §5.2) --------------
CATALOG_REFUSED = [
    ("SELECT * FROM memory.main.t", "Catalog not allowed: memory"),
    ('SELECT * FROM "memory".main.t', "Catalog not allowed: memory"),
    ('SELECT * FROM "MEMORY"."main"."t"', "Catalog not allowed: MEMORY"),
    ("SELECT * FROM system.main.x", "Catalog not allowed: system"),
    ("SELECT * FROM system.x", "Catalog not allowed: system"),  # DuckDB reads x.t as catalog x
    ("SELECT * FROM t JOIN memory.t2 ON true", "Catalog not allowed: memory"),
    ("SELECT * FROM other_db.main.t", "Catalog not allowed: other_db"),
    ("INSERT INTO memory.main.t VALUES (1)", "Catalog not allowed: memory"),
    ("DELETE FROM t USING system.main.u", "Catalog not allowed: system"),
    ("CREATE TABLE memory.main.t (a INT)", "Catalog not allowed: memory"),
    ("CREATE SCHEMA memory.s", "Catalog not allowed: memory"),
    ("CREATE SCHEMA system", "Schema name system is not allowed: it names a catalog"),
    ("DROP TABLE memory.main.t", "Catalog not allowed: memory"),
    ("SHOW TABLES FROM system", "Catalog not allowed: system"),
    ("SHOW TABLES FROM memory.main", "Catalog not allowed: memory"),
    ("SELECT nextval('memory.main.seq')", "Catalog not allowed: memory"),
    ("SELECT nextval('system.seq')", "Catalog not allowed: system (in nextval)"),
    (
        "SELECT * FROM __ducklake_metadata_lake.lake_meta.ducklake_table",
        "Name __ducklake_metadata_lake is reserved",
    ),
    ('DELETE FROM "__ducklake_metadata_lake".x.y', "Name __ducklake_metadata_lake is reserved"),
    (
        "SELECT * FROM __DuckLake_metadata_lake.ducklake_snapshot",
        "Schema __DuckLake_metadata_lake is reserved",
    ),
    ("CREATE TABLE __ducklake_t (a INT)", "Name __ducklake_t is reserved"),
    ("CREATE SCHEMA __ducklake_s", "Schema __ducklake_s is reserved"),
    ("SELECT nextval('__ducklake_metadata_lake.s.q')", "Catalog not allowed: __ducklake_metadata_lake"),
    ("SELECT '__ducklake_metadata_lake' AS s", "names a reserved object"),
    ("SELECT * FROM t AT (VERSION => 3)", "Time travel is not allowed: AT (VERSION => ...)"),
    (
        "SELECT * FROM s.t AT (TIMESTAMP => now() - INTERVAL 1 DAY) x",
        "Time travel is not allowed: AT (TIMESTAMP",
    ),
    ("SELECT * FROM t BEFORE (STATEMENT => 'q')", "Time travel is not allowed: BEFORE (STATEMENT => ...)"),
    ("SELECT * FROM u WHERE a IN (SELECT a FROM t AT (VERSION => 1))", "Time travel is not allowed"),
]


@pytest.mark.parametrize(("sql", "fragment"), CATALOG_REFUSED)
def test_catalog_qualifiers_time_travel_and_ducklake_names_are_refused(sql: str, fragment: str) -> None:
    with pytest.raises(StatementRejected) as err:
        guard.validate(sql)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM stageflight.main.t",
        'SELECT * FROM "StageFlight"."Main".t',
        "SELECT * FROM stageflight.t",
        "SELECT * FROM temp.main.t",
        "CREATE SCHEMA stageflight.s",
        "SELECT nextval('stageflight.main.seq')",
        "SELECT * FROM main.t",
        "SHOW TABLES FROM main",
    ],
)
def test_the_main_database_and_temp_may_qualify_names(sql: str) -> None:
    (tree,) = guard.validate(sql)
    assert guard.regenerate(tree)


@pytest.fixture
def lake_catalogs() -> Iterator[None]:
    saved = (catalog_policy._allowed_catalogs, catalog_policy._refused_catalogs)
    catalog_policy.configure_catalogs(
        {"lake", "temp"}, ["lake", "__ducklake_metadata_lake", "memory", "stageflight"]
    )
    try:
        yield
    finally:
        catalog_policy._allowed_catalogs, catalog_policy._refused_catalogs = saved


def test_the_allowed_catalogs_are_a_setting(lake_catalogs: None) -> None:
    # Lake mode (catalog-home.md §5.2): `lake` and `temp` only; the file database is another catalog.
    assert catalog_policy.allowed_catalogs() == {"lake", "temp"}
    assert guard.validate("SELECT * FROM lake.main.t")
    for sql, name in [
        ("SELECT * FROM stageflight.main.t", "stageflight"),
        ("SELECT * FROM stageflight.t", "stageflight"),
    ]:
        with pytest.raises(StatementRejected, match=f"Catalog not allowed: {name}"):
            guard.validate(sql)


def test_configure_catalogs_needs_a_catalog() -> None:
    with pytest.raises(ValueError, match="at least one allowed catalog"):
        catalog_policy.configure_catalogs([])


def test_configure_catalogs_from_reads_duckdb(tmp_path: Path) -> None:
    saved = (catalog_policy._allowed_catalogs, catalog_policy._refused_catalogs)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("ATTACH ':memory:' AS scratch")
    try:
        catalog_policy.configure_catalogs_from(con)
        assert catalog_policy.allowed_catalogs() == {"warehouse", "temp"}
        assert guard.validate("SELECT * FROM warehouse.main.t")
        with pytest.raises(StatementRejected, match="Catalog not allowed: scratch"):
            guard.validate("SELECT * FROM scratch.t")
    finally:
        catalog_policy._allowed_catalogs, catalog_policy._refused_catalogs = saved
        con.close()
