"""The stage-aware DuckDB dialect: stage references become StageRef nodes, the rest stays DuckDB."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from engine.sql.dialect import StageDuckDB, StageRef, stage_options, stage_refs


def _parse(sql: str) -> list[exp.Expr]:
    return [tree for tree in sqlglot.parse(sql, read=StageDuckDB) if tree is not None]


def _refs(sql: str) -> list[str]:
    return [ref.text for tree in _parse(sql) for ref in stage_refs(tree)]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM @~/data.csv", ["@~/data.csv"]),
        ("SELECT * FROM @~", ["@~"]),
        ("SELECT $1, t.$2 FROM @s1/p/ t", ["@s1/p/"]),
        ("SELECT * FROM @~/f.parquet AS x JOIN tbl ON x.a = tbl.a", ["@~/f.parquet"]),
        ("FROM @~/x.csv, @s1/y.csv", ["@~/x.csv", "@s1/y.csv"]),
        ("INSERT INTO t SELECT * FROM @~/x", ["@~/x"]),
        ("CREATE TABLE t AS SELECT * FROM @~/f.parquet", ["@~/f.parquet"]),
        ("FROM '@s1/a b/x.csv'", ["@s1/a b/x.csv"]),
        ("SELECT * FROM '@s1/a b/x.csv' AS q WHERE q.a > 1", ["@s1/a b/x.csv"]),
        ("FROM @%orders/x.csv", ["@%orders/x.csv"]),
        ("FROM @#orders", ["@#orders"]),
        ("FROM @s1/a-b/x.1.csv", ["@s1/a-b/x.1.csv"]),
        ("SELECT * FROM (FROM @~/x.csv) s", ["@~/x.csv"]),
        ("SELECT * FROM t WHERE a IN (SELECT a FROM @s1)", ["@s1"]),
        ("SELECT * FROM @~/a.csv a LEFT JOIN @s1/b.csv b USING (id)", ["@~/a.csv", "@s1/b.csv"]),
        ("FROM @~/x.csv; SELECT * FROM @s2/y/", ["@~/x.csv", "@s2/y/"]),
        ("WITH c AS (FROM @~/in/) SELECT * FROM c", ["@~/in/"]),
        ("MERGE INTO t USING @~/x.csv s ON t.a = s.a WHEN MATCHED THEN DELETE", ["@~/x.csv"]),
        ("COPY INTO t FROM @~/x.csv", ["@~/x.csv"]),
        ("SELECT 1", []),
        ("SELECT * FROM 'x.csv'", []),
    ],
)
def test_stage_reference_text(sql: str, expected: list[str]) -> None:
    assert _refs(sql) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "FROM @~/p/ (FILE_FORMAT => 'CSV', PATTERN => '.*[.]csv', FILES => ('a.csv','b.csv')) t",
            {"FILE_FORMAT": "'CSV'", "PATTERN": "'.*[.]csv'", "FILES": "('a.csv', 'b.csv')"},
        ),
        ("FROM @~/p/(file_format=>my_format)", {"FILE_FORMAT": "my_format"}),
        ("FROM '@s1/a b/' (PATTERN => 'x')", {"PATTERN": "'x'"}),
        ("FROM @s1/x.csv (SKIP_HEADER => 1, FORMAT => 'csv') AS x", {"SKIP_HEADER": "1", "FORMAT": "'csv'"}),
        ("FROM @s1/x.csv", {}),
    ],
)
def test_stage_options(sql: str, expected: dict[str, str]) -> None:
    (ref,) = stage_refs(_parse(sql)[0])
    assert {name: value.sql(dialect="duckdb") for name, value in stage_options(ref).items()} == expected
    for option in ref.args.get("options") or []:
        assert isinstance(option, exp.PropertyEQ) and isinstance(option.this, exp.Var)


def test_alias_follows_options() -> None:
    tree = _parse("FROM @~/p/ (FILE_FORMAT => 'CSV') t")[0]
    table = tree.find(exp.Table)
    assert table is not None and isinstance(table.this, StageRef) and table.alias == "t"


def test_stage_ref_sits_in_a_table_and_can_be_replaced() -> None:
    tree = _parse("SELECT t.$1 FROM @~/x.csv AS t")[0]
    (ref,) = stage_refs(tree)
    assert isinstance(ref.parent, exp.Table) and ref.name == "@~/x.csv"
    ref.replace(exp.to_identifier("__stage_ab12"))
    assert tree.sql(dialect="duckdb") == "SELECT t.$1 FROM __stage_ab12 AS t"


@pytest.mark.parametrize(
    ("sql", "generated"),
    [
        ("SELECT * FROM @~/x.csv", "SELECT * FROM @~/x.csv"),
        ("FROM '@s1/a b/x.csv'", "SELECT * FROM '@s1/a b/x.csv'"),
        ("FROM @~/p/ (PATTERN => '.*') t", "SELECT * FROM @~/p/ (PATTERN => '.*') AS t"),
    ],
)
def test_stage_dialect_generates_readable_text(sql: str, generated: str) -> None:
    assert _parse(sql)[0].sql(dialect=StageDuckDB) == generated


@pytest.mark.parametrize(
    ("sql", "node"),
    [
        ("SELECT @x", exp.Abs),  # DuckDB's prefix '@' is abs()
        ("SELECT $1", exp.Placeholder),
        ("SELECT ?", exp.Placeholder),
        ("SELECT * FROM t WHERE a = $2", exp.Placeholder),
    ],
)
def test_non_stage_at_and_dollar_keep_duckdb_meaning(sql: str, node: type[exp.Expr]) -> None:
    tree = _parse(sql)[0]
    assert not stage_refs(tree)
    assert tree.find(node) is not None


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM @", "Expected a stage name right after '@'"),
        ("SELECT * FROM @ ~/x.csv", "Expected a stage name right after '@'"),
        ("SELECT * FROM @~/a'b'", "Quotes are not allowed inside an unquoted stage reference"),
        ("SELECT * FROM @~/x (FILE_FORMAT => )", "Expected a value for stage option FILE_FORMAT"),
    ],
)
def test_malformed_stage_references(sql: str, message: str) -> None:
    with pytest.raises(ParseError) as err:
        _parse(sql)
    assert err.value.errors[0]["description"] == message
