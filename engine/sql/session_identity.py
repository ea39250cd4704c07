"""``current_user``, ``session_user``, ``user`` and ``current_role`` answer the session's own names.

DuckDB's built-in versions answer 'duckdb'. Plans are cached per statement text for every user,
so the names cannot be written into the plan; instead each session's cursor (its own DuckDB
connection) gets temporary macros of the same names, which DuckDB resolves before its built-ins,
bare (``SELECT current_user``) or called (``current_user()``), and which a table column of the same
name still shadows exactly as before. The role is read from a connection variable that the session
sets before running user SQL whenever SET ROLE changed it (variables are not transactional).
User SQL can neither call ``getvariable`` nor create or drop macros (engine/sql/guard.py).
"""

from __future__ import annotations

ROLE_VARIABLE = "stageflight_current_role"
SET_ROLE_SQL = f"SET VARIABLE {ROLE_VARIABLE} = ?"
# Every user's role when none is set (engine/catalog/security_db.py PUBLIC_ROLE).
NO_ROLE = "public"


def identity_macros(user: str) -> list[str]:
    """Server-built statements creating the session's identity macros on its cursor."""
    name = "'" + user.replace("'", "''") + "'"
    macros = [
        f"CREATE OR REPLACE TEMP MACRO {fn}() AS {name}" for fn in ("current_user", "session_user", '"user"')
    ]
    macros.append(f"CREATE OR REPLACE TEMP MACRO current_role() AS getvariable('{ROLE_VARIABLE}')")
    return macros
