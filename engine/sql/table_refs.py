"""What a checked statement needs: the tables it reads, writes, creates and drops, each with the
privilege that allows it (docs/design/catalog-home.md §4 "What each statement needs", §5.1).

Run on a tree :func:`engine.sql.guard.validate` returned, at plan time; the result holds names,
never decisions, so it is cached with the plan and checked at each execution.

Classification is an allowlist. Every ``exp.Table`` in the tree is one of:

* a **target** found through the statement's own argument keys (``Insert.this``, ``Update.this``,
  ``Delete.this``, ``Merge.this``, ``Create.this``, ``Alter.this`` and its rename, ``Drop.tables``,
  ``TruncateTable.expressions``, ``Index.table``): the statement's privilege on it;
* a **CTE reference**, found with ``sqlglot.optimizer.scope.traverse_scope`` (a CTE that shadows a
  table's name is not that table): nothing;
* a **table function** (``range``, ``generate_series``, ``unnest``: the only ones the guard lets
  into FROM): nothing; the engine's ``INFER_SCHEMA`` / ``LIST_STAGE`` and stage references
  (``@~``, ``@s``, ``@%t``) are not tables, and a table stage ``@%t`` (``@#t``) is reported in
  :attr:`TableRefs.table_stages`;
* a **catalog view** (``information_schema.*``, ``pg_catalog.*``: DuckDB refuses to create
  anything in those schemas): reported in :attr:`TableRefs.catalog_views`;
* anything else: ``SELECT``. A reference this module does not understand is therefore read, never
  ignored.

No table-valued function that takes a table name as a string (``query_table``,
``pragma_table_info``, ``duckdb_*()``, ...) passes the guard (only the five above are allowed in
table position, and no allowed scalar function reads a table named in a string), so there is no
such name to extract.

Names are normalised as DuckDB looks them up: identifiers are case-insensitive even when quoted
(``"PayRoll"``, ``payroll`` and ``PAYROLL`` are one table), so every part is lower-cased.
Unqualified names keep ``schema=None`` and ``catalog=None``: the caller resolves them against the
session's schema (and DuckDB's search path). A temporary table's CREATE names catalog ``temp``.

Privileges (:data:`PRIVILEGES`):

* ``SELECT INSERT UPDATE DELETE ALTER DROP`` on the named object;
* ``CREATE``: to create an object of that name in that schema (the need names the schema and the
  new object; for ``kind="schema"`` the need names the new schema, a global CREATE);
* ``REPLACE``: ``CREATE OR REPLACE`` of that name: ownership of the object it replaces, if one
  exists (always together with ``CREATE`` on the same name).

Per statement: SELECT and DESCRIBE: SELECT; INSERT: INSERT (+ UPDATE for ``ON CONFLICT DO UPDATE``
and ``INSERT OR REPLACE``); UPDATE: UPDATE; DELETE and TRUNCATE: DELETE; MERGE: the union of its
WHEN actions on the target, SELECT on USING; ``RETURNING``: also SELECT on the target; ALTER:
ALTER (a rename also CREATE of the new name in the table's schema); CREATE INDEX: ALTER on its
table; DROP: DROP; CREATE TABLE/VIEW/SEQUENCE/SCHEMA: CREATE (+ REPLACE); whatever the statement
reads (CTAS and view queries, USING, FROM, subqueries, REFERENCES): SELECT.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.scope import Scope, ScopeType, traverse_scope

from engine.errors import StatementRejected
from engine.sql.dialect import StageDuckDB, StageRef
from engine.sql.explain import Explain
from stages.paths import BadStagePath, parse_stage_ref

PRIVILEGES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "ALTER", "DROP", "CREATE", "REPLACE"})
# Object kinds a need can name. "table" is any relation a statement reads or writes (a table or a
# view: DuckDB gives them one namespace); DDL names its own kind.
KINDS = frozenset({"table", "view", "schema", "sequence", "index"})
# Schemas of DuckDB's system catalog: views over the catalog, never user objects.
CATALOG_VIEW_SCHEMAS = frozenset({"information_schema", "pg_catalog"})
# The engine answers these table functions from a stage (engine/statements/query.py).
_STAGE_FUNCTIONS = frozenset({"infer_schema", "list_stage"})
_ROOTS = (
    exp.Query,
    exp.Values,
    exp.Describe,
    exp.Show,
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.TruncateTable,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
)


@dataclass(frozen=True)
class TableNeed:
    """One privilege on one named object; names are lower-case, ``None`` when not written."""

    catalog: str | None
    schema: str | None
    name: str
    privilege: str
    kind: str = "table"

    def __post_init__(self) -> None:
        if self.privilege not in PRIVILEGES:
            raise ValueError(f"Unknown privilege {self.privilege!r}")
        if self.kind not in KINDS:
            raise ValueError(f"Unknown object kind {self.kind!r}")


@dataclass(frozen=True)
class TableRefs:
    """Everything :func:`extract` found, each list in source order without repeats.

    ``table_stages``: one ``SELECT`` need per table stage read (``@%t`` in FROM, DESCRIBE or
    INFER_SCHEMA/LIST_STAGE's LOCATION); the caller maps it to the table's privileges (READ needs
    SELECT on the table). ``catalog_views``: reads of ``information_schema`` / ``pg_catalog``
    views, for the caller's visibility filter rather than a privilege check.
    """

    needs: tuple[TableNeed, ...]
    table_stages: tuple[TableNeed, ...] = ()
    catalog_views: tuple[TableNeed, ...] = ()


def table_needs(tree: exp.Expression) -> list[TableNeed]:
    """The privilege needs of a checked statement (see :func:`extract` for the other lists)."""
    return list(extract(tree).needs)


def extract(tree: exp.Expression) -> TableRefs:
    """The table needs, table stages and catalog views of one statement from ``guard.validate``.

    Raises:
        StatementRejected: the statement is of a kind whose needs are not known, or names
            something this module cannot classify (a MERGE action it does not know).
    """
    if isinstance(tree, Explain):  # EXPLAIN ANALYZE runs it: the explained statement's needs
        return extract(tree.this)
    if not isinstance(tree, _ROOTS):
        raise StatementRejected(f"No table privileges are known for statement {type(tree).__name__}")
    work = normalize_identifiers(tree.copy(), dialect=StageDuckDB)
    targets = _Targets()
    for node in work.walk():
        targets.visit(node)
    ctes = _cte_references(work)
    needs: list[TableNeed] = []
    stages: list[TableNeed] = []
    views: list[TableNeed] = []
    for table in work.find_all(exp.Table, bfs=False):
        key = id(table)
        if key in targets.by_table:
            needs += targets.by_table[key]
        elif isinstance(table.this, StageRef):
            stages += _table_stage(table.this.name)
        elif isinstance(table.this, exp.Func):
            stages += _stage_function_location(table.this)
        elif key in ctes:
            continue
        elif _part(table, "db") in CATALOG_VIEW_SCHEMAS:
            views.append(_need(table, "SELECT"))
        else:
            needs.append(_need(table, "SELECT"))
    needs += targets.extra
    return TableRefs(_unique(needs), _unique(stages), _unique(views))


# -- targets ---------------------------------------------------------------------------------
class _Targets:
    """The Table nodes a statement writes, creates, alters or drops, with their needs."""

    def __init__(self) -> None:
        self.by_table: dict[int, list[TableNeed]] = {}
        self.extra: list[TableNeed] = []  # needs of names that are not a Table node of their own

    def add(self, table: exp.Expr | None, *needs: TableNeed) -> None:
        if isinstance(table, exp.Table):
            self.by_table.setdefault(id(table), []).extend(needs)

    def visit(self, node: exp.Expr) -> None:
        if isinstance(node, exp.Insert | exp.Update | exp.Delete) and not isinstance(node.parent, exp.When):
            self._dml(node)
        elif isinstance(node, exp.Merge):
            self._merge(node)
        elif isinstance(node, exp.TruncateTable):
            for table in node.expressions:
                self.add(table, _need(_table(table), "DELETE"))
        elif isinstance(node, exp.Create):
            self._create(node)
        elif isinstance(node, exp.Drop):
            self._drop(node)
        elif isinstance(node, exp.Alter):
            self._alter(node)

    def _dml(self, node: exp.Insert | exp.Update | exp.Delete) -> None:
        table = _target(node)
        privilege = {exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE"}[type(node)]
        needs = [_need(table, privilege)]
        if isinstance(node, exp.Insert) and _insert_updates(node):
            needs.append(_need(table, "UPDATE"))
        if node.args.get("returning"):
            needs.append(_need(table, "SELECT"))
        self.add(table, *needs)

    def _merge(self, node: exp.Merge) -> None:
        table = _target(node)
        needs = []
        whens = node.args.get("whens")
        for when in whens.expressions if whens else []:
            privilege = _merge_action(when.args.get("then"))
            if privilege is not None:
                needs.append(_need(table, privilege))
        if node.args.get("returning"):
            needs.append(_need(table, "SELECT"))
        self.by_table.setdefault(id(table), []).extend(needs)  # a MERGE that only DOES NOTHING: none

    def _create(self, node: exp.Create) -> None:
        kind = _kind(node)
        if kind == "index":
            index = node.this
            table = index.args.get("table") if isinstance(index, exp.Index) else None
            self.add(table, _need(_table(table), "ALTER"))
            return
        table = _table(node.this, schema=kind == "schema")
        if table is None:
            return
        temporary = any(isinstance(p, exp.TemporaryProperty) for p in _properties(node))
        created = _need(table, "CREATE", kind, default_catalog="temp" if temporary else None)
        needs = [created]
        if node.args.get("replace"):
            needs.append(TableNeed(created.catalog, created.schema, created.name, "REPLACE", kind))
        self.add(table, *needs)

    def _drop(self, node: exp.Drop) -> None:
        if str(node.args.get("kind") or "").upper() == "COLUMN":
            return  # ALTER TABLE t DROP COLUMN c: a column, not an object
        kind = _kind(node)
        for table in node.args.get("tables") or ([node.this] if node.this else []):
            self.add(table, _need(_table(table, schema=kind == "schema"), "DROP", kind))

    def _alter(self, node: exp.Alter) -> None:
        table = _target(node)
        altered = _need(table, "ALTER")
        self.add(table, altered)
        for action in node.args.get("actions") or []:
            if isinstance(action, exp.AlterRename):
                new = _table(action.this)
                if new is None:
                    continue
                self.by_table.setdefault(id(new), [])  # the new name is not read
                catalog = _part(new, "catalog") or altered.catalog
                schema = _part(new, "db") or altered.schema
                self.extra.append(TableNeed(catalog, schema, new.name, "CREATE"))


def _insert_updates(node: exp.Insert) -> bool:
    if str(node.args.get("alternative") or "").upper() == "REPLACE":
        return True  # INSERT OR REPLACE: ON CONFLICT DO UPDATE SET every column
    conflict = node.args.get("conflict")
    return conflict is not None and "UPDATE" in str(conflict.args.get("action") or "").upper()


def _merge_action(then: exp.Expr | None) -> str | None:
    if isinstance(then, exp.Insert):
        return "INSERT"
    if isinstance(then, exp.Update):
        return "UPDATE"
    text = " ".join(str(then.name if isinstance(then, exp.Var) else "").upper().split())
    if text == "DELETE":
        return "DELETE"
    if text == "DO NOTHING":
        return None
    shown = then.sql(dialect="duckdb") if isinstance(then, exp.Expr) else "?"
    raise StatementRejected(f"MERGE action {shown[:60]!r} is not understood")


def _kind(node: exp.Create | exp.Drop) -> str:
    kind = str(node.args.get("kind") or "").lower()
    if kind in KINDS:
        return kind
    # The guard lets only TABLE, VIEW, SCHEMA, SEQUENCE and INDEX through.
    raise StatementRejected(f"No table privileges are known for {kind.upper() or '?'} objects")


def _properties(node: exp.Create) -> list[exp.Expr]:
    properties = node.args.get("properties")
    return list(properties.expressions) if properties else []


def _target(node: exp.Insert | exp.Update | exp.Delete | exp.Merge | exp.Alter) -> exp.Table:
    # A statement that writes to something other than a named table is not classified, not passed.
    table = _table(node.this)
    if table is None:
        shown = node.this.sql(dialect="duckdb") if isinstance(node.this, exp.Expr) else "nothing"
        raise StatementRejected(f"Statement target {shown[:60]!r} is not a table name")
    return table


def _table(node: exp.Expr | None, schema: bool = False) -> exp.Table | None:
    # INSERT INTO t (a, b) and CREATE TABLE t (a INT) wrap the table in an exp.Schema;
    # CREATE/DROP SCHEMA [c.]s is a Table with only db (and catalog).
    while isinstance(node, exp.Schema):
        node = node.this
    if not isinstance(node, exp.Table):
        return None
    named = node.args.get("db") if schema else node.this
    return node if isinstance(named, exp.Identifier) else None


# -- CTE references --------------------------------------------------------------------------
def _cte_references(tree: exp.Expression) -> set[int]:
    """The Table nodes that name a CTE in scope (so are not tables), by node id.

    ``traverse_scope`` keeps CTE names per scope, so a CTE shadows a table only where DuckDB says
    it does. One correction: sqlglot lets the anchor (left side) of a recursive CTE see the CTE
    itself, while DuckDB binds the anchor without it; there such a name is the real table.
    """
    try:
        scopes = list(traverse_scope(tree))
    except (SqlglotError, RecursionError, KeyError, ValueError, AttributeError):
        return set()  # every reference then needs SELECT: too much, never too little
    anchors = _recursive_anchor_tables(tree)
    found: set[int] = set()
    for scope in scopes:
        # UPDATE ... FROM c, DELETE ... USING c, MERGE ... USING c: sqlglot gives such a relation a
        # scope of its own, rooted at the Table, which is then not among the scope's tables.
        rooted = [scope.expression] if isinstance(scope.expression, exp.Table) else []
        for table in [*rooted, *scope.tables]:
            if table.args.get("db") or table.args.get("catalog") or id(table) in anchors:
                continue
            source = scope.cte_sources.get(table.name)
            if isinstance(source, Scope) and source.scope_type == ScopeType.CTE:
                found.add(id(table))
    return found


def _recursive_anchor_tables(tree: exp.Expression) -> set[int]:
    anchors: set[int] = set()
    for with_ in tree.find_all(exp.With):
        if not with_.args.get("recursive"):
            continue
        for cte in with_.expressions:
            body = cte.this
            if isinstance(body, exp.SetOperation):
                anchors.update(id(t) for t in body.this.find_all(exp.Table) if t.name == cte.alias)
    return anchors


# -- stages ----------------------------------------------------------------------------------
def _table_stage(text: str) -> list[TableNeed]:
    try:
        location = parse_stage_ref(text)
    except BadStagePath as exc:
        raise StatementRejected(str(exc)) from None
    if not location.is_table_stage:
        return []
    schema, table = location.table_parts()
    return [TableNeed(None, schema.lower() if schema else None, table.lower(), "SELECT")]


def _stage_function_location(func: exp.Func) -> list[TableNeed]:
    if not isinstance(func, exp.Anonymous) or str(func.name).lower() not in _STAGE_FUNCTIONS:
        return []
    for arg in func.expressions:
        if isinstance(arg, exp.Kwarg) and arg.this.name.upper() == "LOCATION":
            value = arg.expression
            if isinstance(value, exp.Literal) and value.is_string and value.this.startswith("@"):
                return _table_stage(value.this)
    return []  # the engine refuses a LOCATION that is not a literal '@...'


# -- names -----------------------------------------------------------------------------------
def _part(table: exp.Table, key: str) -> str | None:
    value = table.args.get(key)
    return value.name.lower() if isinstance(value, exp.Identifier) else None


def _need(
    table: exp.Table | None, privilege: str, kind: str = "table", default_catalog: str | None = None
) -> TableNeed:
    if table is None:
        raise StatementRejected("Table reference without a name is not allowed")
    if kind == "schema":
        # CREATE/DROP SCHEMA [catalog.]s: sqlglot keeps the schema in db, its catalog in catalog.
        name = _part(table, "db")
        if name is None:
            raise StatementRejected("Schema reference without a name is not allowed")
        return TableNeed(_part(table, "catalog") or default_catalog, None, name, privilege, kind)
    catalog = _part(table, "catalog") or default_catalog
    return TableNeed(catalog, _part(table, "db"), table.name.lower(), privilege, kind)


def _unique(needs: list[TableNeed]) -> tuple[TableNeed, ...]:
    return tuple(dict.fromkeys(needs))
