"""Table-reference extraction (engine/sql/table_refs.py): an adversarial corpus with the exact needs.

Every statement passes the real guard first (``guard.validate``), as at plan time. A need is written
``(catalog, schema, name, privilege)`` for tables, with a fifth element for other object kinds.
Under-demand is the failure that matters: every case lists all the needs, and the extractor's
result must be exactly that set, without repeats.
"""

from __future__ import annotations

import pytest

from engine.errors import StatementRejected
from engine.sql import guard
from engine.sql.table_refs import TableNeed, TableRefs, extract, table_needs

Need = tuple[str | None, ...]


def _refs(sql: str) -> TableRefs:
    (tree,) = guard.validate(sql)
    return extract(tree)


def _as_tuples(needs: tuple[TableNeed, ...] | list[TableNeed]) -> list[Need]:
    out: list[Need] = []
    for n in needs:
        base: Need = (n.catalog, n.schema, n.name, n.privilege)
        out.append(base if n.kind == "table" else (*base, n.kind))
    return out


def S(name: str, schema: str | None = None, catalog: str | None = None) -> Need:
    return (catalog, schema, name, "SELECT")


CORPUS: list[tuple[str, list[Need]]] = [
    # -- names: quoting and case fold to one table, qualifiers are kept
    ('SELECT * FROM "PayRoll"', [S("payroll")]),
    ("SELECT * FROM PAYROLL", [S("payroll")]),
    ('SELECT * FROM "PAYROLL" p JOIN payroll q USING (id)', [S("payroll")]),
    ("SELECT * FROM hr.payroll", [S("payroll", "hr")]),
    ('SELECT * FROM "HR"."PayRoll"', [S("payroll", "hr")]),
    ("SELECT * FROM stageflight.hr.payroll", [S("payroll", "hr", "stageflight")]),
    ('SELECT * FROM "StageFlight".main.t', [S("t", "main", "stageflight")]),
    ("SELECT * FROM temp.main.t", [S("t", "main", "temp")]),
    # -- CTEs: a CTE is not a table, even when it shadows one; a qualified name is never a CTE
    ("WITH payroll AS (SELECT 1 AS a) SELECT * FROM payroll", []),
    ("WITH payroll AS (SELECT * FROM secret) SELECT * FROM payroll", [S("secret")]),
    ('WITH "PayRoll" AS (SELECT 1 AS a) SELECT * FROM PAYROLL', []),
    ("WITH payroll AS (SELECT 1 AS a) SELECT * FROM main.payroll", [S("payroll", "main")]),
    ("WITH payroll AS (SELECT 1 AS a) SELECT * FROM payroll, main.payroll", [S("payroll", "main")]),
    # a CTE body does not see itself (not RECURSIVE): the inner name is the real table
    ("WITH t AS (SELECT * FROM t) SELECT * FROM t", [S("t")]),
    # nor does the anchor of a recursive CTE (DuckDB binds it without the CTE)
    ("WITH RECURSIVE t AS (SELECT * FROM t UNION SELECT * FROM t) SELECT * FROM t", [S("t")]),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r", []),
    (
        "WITH a AS (SELECT * FROM t1), b AS (WITH a AS (SELECT * FROM t2) SELECT * FROM a) "
        "SELECT * FROM a, b",
        [S("t1"), S("t2")],
    ),
    # a CTE defined inside a derived table is not visible outside it
    ("SELECT * FROM (WITH c AS (SELECT 1 AS a) SELECT * FROM c) x, c", [S("c")]),
    ("SELECT * FROM (WITH c AS (SELECT * FROM hidden) SELECT * FROM c) x", [S("hidden")]),
    # a later CTE sees an earlier one
    ("WITH a AS (SELECT * FROM t), b AS (SELECT * FROM a) SELECT * FROM b", [S("t")]),
    # a derived table's alias is not a table either, but a FROM of that name inside a subquery is
    ("SELECT * FROM (SELECT 1 AS a) AS x WHERE EXISTS (SELECT 1 FROM x)", [S("x")]),
    # -- subqueries anywhere
    (
        "SELECT (SELECT max(a) FROM u) AS m, * FROM t WHERE a IN (SELECT a FROM w) "
        "GROUP BY ALL HAVING count(*) > (SELECT count(*) FROM h)",
        [S("u"), S("t"), S("w"), S("h")],
    ),
    ("SELECT * FROM t WHERE EXISTS (SELECT 1 FROM s.u WHERE u.a = t.a)", [S("t"), S("u", "s")]),
    ("SELECT * FROM (SELECT * FROM (SELECT * FROM deep) d1) d2", [S("deep")]),
    ("SELECT CASE WHEN a > 0 THEN (SELECT 1 FROM c) END FROM t", [S("c"), S("t")]),
    ("SELECT * FROM t ORDER BY (SELECT 1 FROM o LIMIT 1)", [S("t"), S("o")]),
    ("SELECT * FROM t WHERE a IN (WITH c AS (SELECT * FROM x) SELECT * FROM c)", [S("t"), S("x")]),
    ("WITH c AS (SELECT 1 AS a) SELECT * FROM t WHERE EXISTS (SELECT 1 FROM c)", [S("t")]),
    ("WITH c AS (SELECT 1 AS a) SELECT * FROM (SELECT * FROM c JOIN c AS d ON true) x", []),
    # a CTE sees only the CTEs before it: a later one's name is a table there
    ("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", [S("b")]),
    # -- joins, USING, set operations, lateral
    (
        "SELECT * FROM a JOIN b USING (id) LEFT JOIN c.d ON true CROSS JOIN e",
        [S("a"), S("b"), S("d", "c"), S("e")],
    ),
    ("SELECT * FROM a, (b JOIN c ON true)", [S("a"), S("b"), S("c")]),
    (
        "SELECT 1 FROM a UNION SELECT 2 FROM b EXCEPT SELECT 3 FROM c INTERSECT SELECT 4 FROM d",
        [S(x) for x in "abcd"],
    ),
    ("(SELECT * FROM a) UNION ALL BY NAME (SELECT * FROM b)", [S("a"), S("b")]),
    ("SELECT * FROM t, LATERAL (SELECT * FROM u WHERE u.a = t.a) AS l", [S("t"), S("u")]),
    ("SELECT * FROM t SEMI JOIN u USING (a) ANTI JOIN v USING (a)", [S("t"), S("u"), S("v")]),
    # a lateral subquery sees CTEs, but a derived table's alias is no table inside it
    ("WITH c AS (SELECT 1 AS a) SELECT * FROM t, LATERAL (SELECT * FROM c WHERE c.a = t.a)", [S("t")]),
    ("SELECT * FROM (SELECT 1 AS a) AS x, LATERAL (SELECT * FROM x)", [S("x")]),
    ("WITH c AS (SELECT * FROM x) SELECT * FROM c UNION SELECT * FROM c", [S("x")]),
    ("WITH c AS (SELECT 1) SELECT * FROM t AS c", [S("t")]),
    ("WITH c AS (SELECT 1) SELECT * FROM c AS t", []),
    ("SELECT * FROM t ASOF JOIN u ON t.a >= u.a", [S("t"), S("u")]),
    # -- table functions and stages are not tables; a table stage is reported apart
    ("SELECT * FROM range(3) r, generate_series(1, 2), unnest([1, 2])", []),
    ("SELECT * FROM t AS range", [S("t")]),
    ("SELECT * FROM @~/data.csv", []),
    ("SELECT * FROM @landing/p/ (PATTERN => '.*') s JOIN t ON true", [S("t")]),
    ("SELECT * FROM infer_schema(LOCATION => '@~/x.csv')", []),
    # -- DML
    ("INSERT INTO t VALUES (1)", [(None, None, "t", "INSERT")]),
    (
        "INSERT INTO s.t (a, b) SELECT a, b FROM u JOIN s.w USING (a)",
        [(None, "s", "t", "INSERT"), S("u"), S("w", "s")],
    ),
    ("INSERT INTO t BY NAME SELECT * FROM t", [(None, None, "t", "INSERT"), S("t")]),
    ("WITH c AS (SELECT * FROM src) INSERT INTO t SELECT * FROM c", [(None, None, "t", "INSERT"), S("src")]),
    # a CTE named like the target does not hide the target
    ("WITH t AS (SELECT 1 AS a) INSERT INTO t SELECT * FROM t", [(None, None, "t", "INSERT")]),
    ("WITH c AS (SELECT * FROM src) UPDATE t SET a = c.a FROM c", [(None, None, "t", "UPDATE"), S("src")]),
    (
        "WITH c AS (SELECT * FROM src) DELETE FROM t USING c WHERE t.a = c.a",
        [(None, None, "t", "DELETE"), S("src")],
    ),
    (
        "WITH c AS (SELECT 1 AS a) UPDATE t SET a = 1 FROM main.c",
        [(None, None, "t", "UPDATE"), S("c", "main")],
    ),
    ("INSERT INTO t VALUES (1) RETURNING *", [(None, None, "t", "INSERT"), S("t")]),
    (
        "INSERT INTO t VALUES (1, 2) ON CONFLICT (a) DO UPDATE SET b = excluded.b",
        [(None, None, "t", "INSERT"), (None, None, "t", "UPDATE")],
    ),
    ("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", [(None, None, "t", "INSERT")]),
    ("INSERT OR REPLACE INTO t VALUES (1)", [(None, None, "t", "INSERT"), (None, None, "t", "UPDATE")]),
    ("INSERT OR IGNORE INTO t VALUES (1)", [(None, None, "t", "INSERT")]),
    ("INSERT INTO t SELECT $1 FROM @~/x.csv", [(None, None, "t", "INSERT")]),
    ("UPDATE t SET a = a + 1 WHERE a > 0", [(None, None, "t", "UPDATE")]),
    ("UPDATE s.t SET a = u.a FROM u WHERE t.id = u.id", [(None, "s", "t", "UPDATE"), S("u")]),
    (
        "UPDATE t SET a = (SELECT max(a) FROM u) WHERE b IN (SELECT b FROM w)",
        [(None, None, "t", "UPDATE"), S("u"), S("w")],
    ),
    ("UPDATE t SET a = 1 RETURNING a", [(None, None, "t", "UPDATE"), S("t")]),
    ("DELETE FROM t WHERE a = 1", [(None, None, "t", "DELETE")]),
    ("DELETE FROM t USING u, s.w WHERE t.a = u.a", [(None, None, "t", "DELETE"), S("u"), S("w", "s")]),
    ("DELETE FROM t WHERE a IN (SELECT a FROM u)", [(None, None, "t", "DELETE"), S("u")]),
    ('DELETE FROM "T" RETURNING *', [(None, None, "t", "DELETE"), S("t")]),
    ("TRUNCATE t", [(None, None, "t", "DELETE")]),
    ("TRUNCATE TABLE s.t", [(None, "s", "t", "DELETE")]),
    # -- MERGE: the union of its WHEN actions on the target, SELECT on the source
    (
        "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED AND s.b THEN DELETE "
        "WHEN MATCHED THEN UPDATE SET a = s.a WHEN NOT MATCHED THEN INSERT VALUES (s.a)",
        [(None, None, "t", "DELETE"), (None, None, "t", "UPDATE"), (None, None, "t", "INSERT"), S("s")],
    ),
    (
        "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN UPDATE SET a = 1",
        [(None, None, "t", "UPDATE"), S("s")],
    ),
    (
        "MERGE INTO t USING s ON t.a = s.a WHEN NOT MATCHED THEN INSERT VALUES (1)",
        [(None, None, "t", "INSERT"), S("s")],
    ),
    ("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DO NOTHING", [S("s")]),
    (
        "WITH c AS (SELECT * FROM src) MERGE INTO t USING c ON t.a = c.a WHEN MATCHED THEN DELETE",
        [(None, None, "t", "DELETE"), S("src")],
    ),
    (
        "MERGE INTO x.t USING (SELECT * FROM y.src JOIN z ON true) AS s ON t.a = s.a "
        "WHEN MATCHED THEN DELETE",
        [(None, "x", "t", "DELETE"), S("src", "y"), S("z")],
    ),
    (
        "MERGE INTO t USING @~/x.csv s ON t.a = s.a WHEN MATCHED THEN UPDATE SET a = s.a",
        [(None, None, "t", "UPDATE")],
    ),
    # -- CREATE: CREATE on the new name, REPLACE for OR REPLACE, SELECT on what it reads
    ("CREATE TABLE t (a INT)", [(None, None, "t", "CREATE")]),
    ("CREATE TABLE IF NOT EXISTS s.t (a INT)", [(None, "s", "t", "CREATE")]),
    ('CREATE TABLE "Hr"."New" (a INT)', [(None, "hr", "new", "CREATE")]),
    ("CREATE TEMP TABLE t (a INT)", [("temp", None, "t", "CREATE")]),
    ("CREATE TABLE t (a INT REFERENCES p (a))", [(None, None, "t", "CREATE"), S("p")]),
    ("CREATE TABLE t AS SELECT * FROM u JOIN w USING (a)", [(None, None, "t", "CREATE"), S("u"), S("w")]),
    ("CREATE TABLE t AS SELECT * FROM t", [(None, None, "t", "CREATE"), S("t")]),
    (
        "CREATE OR REPLACE TABLE s.t AS WITH c AS (SELECT * FROM u) SELECT * FROM c",
        [(None, "s", "t", "CREATE"), (None, "s", "t", "REPLACE"), S("u")],
    ),
    (
        "CREATE OR REPLACE TABLE t AS FROM range(3)",
        [(None, None, "t", "CREATE"), (None, None, "t", "REPLACE")],
    ),
    ("CREATE VIEW v AS SELECT a FROM t", [(None, None, "v", "CREATE", "view"), S("t")]),
    (
        "CREATE OR REPLACE VIEW s.v AS SELECT * FROM v WHERE a IN (SELECT a FROM w)",
        [(None, "s", "v", "CREATE", "view"), (None, "s", "v", "REPLACE", "view"), S("v"), S("w")],
    ),
    ("CREATE SCHEMA s", [(None, None, "s", "CREATE", "schema")]),
    ("CREATE SCHEMA IF NOT EXISTS stageflight.s", [("stageflight", None, "s", "CREATE", "schema")]),
    ("CREATE SEQUENCE s.q START 1", [(None, "s", "q", "CREATE", "sequence")]),
    ("CREATE INDEX i ON s.t (a)", [(None, "s", "t", "ALTER")]),
    # -- ALTER: ALTER on the table, CREATE on the new name in its schema for a rename
    ("ALTER TABLE t ADD COLUMN c INT", [(None, None, "t", "ALTER")]),
    ("ALTER TABLE t DROP COLUMN c", [(None, None, "t", "ALTER")]),
    ("ALTER TABLE t RENAME COLUMN a TO b", [(None, None, "t", "ALTER")]),
    ("ALTER TABLE t RENAME TO u", [(None, None, "t", "ALTER"), (None, None, "u", "CREATE")]),
    (
        'ALTER TABLE hr."PayRoll" RENAME TO Wages',
        [(None, "hr", "payroll", "ALTER"), (None, "hr", "wages", "CREATE")],
    ),
    # -- DROP: every object listed
    ("DROP TABLE t", [(None, None, "t", "DROP")]),
    (
        'DROP TABLE IF EXISTS a, s.b, "C"',
        [(None, None, "a", "DROP"), (None, "s", "b", "DROP"), (None, None, "c", "DROP")],
    ),
    ("DROP VIEW v", [(None, None, "v", "DROP", "view")]),
    ("DROP SCHEMA s CASCADE", [(None, None, "s", "DROP", "schema")]),
    ("DROP SEQUENCE q", [(None, None, "q", "DROP", "sequence")]),
    ("DROP INDEX s.i", [(None, "s", "i", "DROP", "index")]),
    # -- DESCRIBE, SHOW, transactions
    ("DESCRIBE s.t", [S("t", "s")]),
    ("DESCRIBE @~/x.csv", []),
    ("SHOW TABLES", []),
    ("BEGIN", []),
    ("COMMIT", []),
    ("VALUES (1), (2)", []),
]


@pytest.mark.parametrize("sql, expected", CORPUS, ids=[f"refs{i}" for i in range(len(CORPUS))])
def test_needs_are_exact(sql: str, expected: list[Need]) -> None:
    got = _as_tuples(_refs(sql).needs)
    assert len(got) == len(set(got)), f"repeated needs: {got}"
    assert set(got) == set(expected)


def test_corpus_is_large_and_covers_every_privilege() -> None:
    assert len(CORPUS) >= 80
    privileges = {need[3] for _, expected in CORPUS for need in expected}
    assert privileges == {"SELECT", "INSERT", "UPDATE", "DELETE", "ALTER", "DROP", "CREATE", "REPLACE"}


def test_needs_come_in_source_order() -> None:
    needs = table_needs(guard.validate("SELECT * FROM b JOIN a ON true WHERE x IN (SELECT x FROM c)")[0])
    assert [n.name for n in needs] == ["b", "a", "c"]


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("SELECT * FROM @%orders", [S("orders")]),
        ("SELECT * FROM @#orders/2024/", [S("orders")]),
        ("SELECT * FROM '@%sales.orders/x.csv' JOIN @%Other o ON true", [S("orders", "sales"), S("other")]),
        ("SELECT * FROM list_stage(LOCATION => '@%orders/')", [S("orders")]),
        ("SELECT * FROM infer_schema(LOCATION => '@%sales.orders/a.csv')", [S("orders", "sales")]),
        ("DESCRIBE @%orders/a.parquet", [S("orders")]),
        ("INSERT INTO orders SELECT $1 FROM @%orders", [S("orders")]),
        ("SELECT * FROM @~/x.csv, @landing/", []),
    ],
)
def test_table_stages_are_reported_apart(sql: str, expected: list[Need]) -> None:
    refs = _refs(sql)
    assert _as_tuples(refs.table_stages) == expected
    # a table stage is never a read of the table itself (the caller maps it: READ needs SELECT)
    assert S("orders") not in _as_tuples(refs.needs)


def test_catalog_views_are_reported_apart() -> None:
    refs = _refs("SELECT * FROM information_schema.tables t JOIN pg_catalog.pg_class c ON true, pg_namespace")
    assert _as_tuples(refs.catalog_views) == [S("tables", "information_schema"), S("pg_class", "pg_catalog")]
    # unqualified, pg_namespace may be a user's own table (main is searched first): it is a need
    assert _as_tuples(refs.needs) == [S("pg_namespace")]


def test_an_unknown_merge_action_is_refused_not_ignored() -> None:
    from sqlglot import exp

    (tree,) = guard.validate("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE")
    tree.args["whens"].expressions[0].set("then", exp.var("EXPLODE"))
    with pytest.raises(StatementRejected, match="MERGE action 'EXPLODE' is not understood"):
        extract(tree)


def test_a_statement_kind_without_known_needs_is_refused() -> None:
    from sqlglot import exp

    with pytest.raises(StatementRejected, match="No table privileges are known for statement Command"):
        extract(exp.Command(this="VACUUM"))


def test_a_write_to_something_other_than_a_table_is_refused() -> None:
    from sqlglot import exp

    (tree,) = guard.validate("DELETE FROM t")
    tree.set("this", exp.Table(this=exp.Anonymous(this="range", expressions=[exp.Literal.number(3)])))
    with pytest.raises(StatementRejected, match="Statement target 'RANGE\\(3\\)' is not a table name"):
        extract(tree)


def test_the_tree_is_not_changed() -> None:
    (tree,) = guard.validate('SELECT * FROM "PayRoll"')
    before = tree.sql(dialect="duckdb")
    extract(tree)
    assert tree.sql(dialect="duckdb") == before == 'SELECT * FROM "PayRoll"'


def test_need_rejects_unknown_privileges_and_kinds() -> None:
    with pytest.raises(ValueError, match="Unknown privilege 'OWN'"):
        TableNeed(None, None, "t", "OWN")
    with pytest.raises(ValueError, match="Unknown object kind 'macro'"):
        TableNeed(None, None, "t", "SELECT", "macro")
