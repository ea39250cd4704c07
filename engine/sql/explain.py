"""``EXPLAIN [ANALYZE] <statement>``: a node for the guard, holding the inner statement's tree.

sqlglot reads EXPLAIN as an opaque command; the guard parses the rest as a statement of its own
(engine/sql/guard.py), checks it with the same rules and lets EXPLAIN through only around the
statement kinds below. EXPLAIN ANALYZE runs the statement, so its privileges are the inner
statement's (engine/sql/table_refs.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlglot import exp

from engine.errors import StatementRejected

# What may be explained: queries and DML (DDL and transaction control keep their own bookkeeping).
EXPLAINABLE = (exp.Query, exp.Values, exp.Insert, exp.Update, exp.Delete, exp.Merge)


class Explain(exp.Expression):
    """``EXPLAIN [ANALYZE] this``; answers DuckDB's ``explain_key`` / ``explain_value`` rows."""

    arg_types = {"this": True, "analyze": False}

    def sql(self, dialect: Any = None, **opts: Any) -> str:  # type: ignore[override]  # sqlglot types every option
        inner = self.this.sql(dialect=dialect, **opts)
        return f"EXPLAIN {'ANALYZE ' if self.args.get('analyze') else ''}{inner}"


_ANALYZE_RE = re.compile(r"^\s*ANALY[SZ]E\b", re.I)


def explain_node(tree: exp.Expression, parse: Callable[[str], list[exp.Expression]]) -> exp.Expression:
    """sqlglot reads EXPLAIN as an opaque command: parse what it explains (with the guard's
    ``parse``) as a statement of its own; any other tree is returned as it is."""
    if not (isinstance(tree, exp.Command) and str(tree.this).upper() == "EXPLAIN"):
        return tree
    text = tree.text("expression")
    analyze = _ANALYZE_RE.match(text)
    rest = text[analyze.end() :] if analyze else text
    if rest.lstrip().startswith("("):
        raise StatementRejected("EXPLAIN options are not supported: use EXPLAIN or EXPLAIN ANALYZE")
    inner = parse(rest)
    if len(inner) != 1:
        raise StatementRejected("EXPLAIN takes exactly one statement")
    return Explain(this=inner[0], analyze=bool(analyze))
