"""Stage statements: CREATE/DROP/ALTER/DESC/SHOW STAGE(S), LIST, REMOVE, PRESIGN, GRANT/REVOKE, VACUUM."""

from __future__ import annotations

import json

import pyarrow as pa
from sqlglot.tokens import TokenType

from engine.catalog.privileges import USER
from engine.catalog.stages import StagePrivilege
from engine.errors import PermissionDenied, StatementRejected
from engine.external import check_endpoint, check_url, normalize_connection, storage_params
from engine.plans import Plan, RunContext, static_query, static_update
from engine.sql.options import parse_options_list
from engine.sql.tokens import TokenCursor
from engine.stage_access import LIST_SCHEMA, PRESIGN_SCHEMA, require_owner
from engine.statements.grantees import grantee as parse_grantee
from engine.statements.grantees import require_grantee
from stages.formats import normalize_format_options
from stages.model import Stage, StageKind, external_stage, internal_stage
from stages.paths import STAGE_NAME_RE, parse_stage_ref

CREATE_STAGE_PRIVILEGE = "CREATE STAGE"

STAGES_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("stage_type", pa.string(), nullable=False),
        pa.field("storage_type", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("endpoint", pa.string()),
        pa.field("has_credentials", pa.bool_(), nullable=False),
        pa.field("has_encryption_key", pa.bool_(), nullable=False),
        pa.field("storage_params", pa.string(), nullable=False),
        pa.field("file_format_options", pa.string(), nullable=False),
        pa.field("creator", pa.string()),
        pa.field("created_on", pa.timestamp("us", tz="UTC")),
        pa.field("comment", pa.string()),
        pa.field("owner", pa.string()),
    ]
)
VACUUM_SCHEMA = pa.schema(
    [
        pa.field("removed_files", pa.int64(), nullable=False),
        pa.field("removed_bytes", pa.int64(), nullable=False),
    ]
)


def plan_stage_statement(sql: str) -> Plan | None:
    cur = TokenCursor(sql)
    first = cur.peek()
    if first is not None and first.text.upper() == "VACUUM":
        # DuckDB's tokenizer reads VACUUM as a command and the rest as one string: re-read the rest.
        rest = TokenCursor(sql[first.end + 1 :])
        return _vacuum(rest) if rest.accept("USER", "STAGES") else None
    if cur.is_word("LIST", "LS"):
        cur.advance()
        return _list(cur)
    if cur.is_word("REMOVE", "RM"):
        cur.advance()
        return _remove(cur)
    if cur.accept("PRESIGN"):
        return _presign(cur)
    if cur.is_word("CREATE") and _stage_after_create(cur):
        return _create_stage(cur)
    if cur.accept("DROP", "STAGE"):
        return _drop_stage(cur)
    if cur.accept("ALTER", "STAGE"):
        return _alter_stage(cur)
    if cur.accept("DESC", "STAGE") or cur.accept("DESCRIBE", "STAGE"):
        return _desc_stage(cur)
    if cur.accept("SHOW", "STAGES"):
        return _show_stages(cur)
    if cur.is_word("GRANT", "REVOKE") and _mentions_stage(cur):
        return _grant(cur)
    return None


def _stage_after_create(cur: TokenCursor) -> bool:
    return cur.words_ahead("CREATE", "STAGE") or cur.words_ahead("CREATE", "OR", "REPLACE", "STAGE")


def _mentions_stage(cur: TokenCursor) -> bool:
    return any(t.text.upper() == "STAGE" and t.token_type != TokenType.STRING for t in cur.tokens)


# -- shared clauses ------------------------------------------------------------------------
def _stage_name(cur: TokenCursor, action: str) -> str:
    tok = cur.peek()
    if tok is not None and tok.token_type == TokenType.TILDE:
        raise StatementRejected(f"User stage (~) is not allowed to be {action}")
    name = cur.identifier("a stage name")
    if not STAGE_NAME_RE.match(name):
        raise StatementRejected(f"Invalid stage name {name!r}: use letters, digits and '_'")
    return name


def _pattern(cur: TokenCursor) -> str | None:
    if cur.accept("PATTERN"):
        cur.expect_type(TokenType.EQ, "'=' after PATTERN")
        return cur.string("PATTERN as a quoted regular expression")
    return None


# -- LIST / REMOVE / PRESIGN -------------------------------------------------------------------
def _stage_ref(cur: TokenCursor) -> str:
    ref = cur.stage_ref()
    parse_stage_ref(ref)  # refuse bad names and unsafe paths at prepare time, before any I/O
    return ref


def _list(cur: TokenCursor) -> Plan:
    ref = _stage_ref(cur)
    pattern = _pattern(cur)
    cur.finish()

    def produce(session: RunContext) -> pa.Table:
        resolved = session.resolve_stage(ref, StagePrivilege.READ)
        return session.engine.stages.list_table(resolved, pattern)

    return static_query(LIST_SCHEMA, produce)


def _remove(cur: TokenCursor) -> Plan:
    ref = _stage_ref(cur)
    pattern = _pattern(cur)
    cur.finish()

    def action(session: RunContext) -> int:
        resolved = session.resolve_stage(ref, StagePrivilege.WRITE)
        return session.engine.stages.remove(resolved, pattern)

    return static_update(action)


def _presign(cur: TokenCursor) -> Plan:
    upload = False
    if cur.accept("UPLOAD"):
        upload = True
    else:
        cur.accept("DOWNLOAD")
    ref = _stage_ref(cur)
    expire, content_type = 3600, None
    while not cur.at_end():
        if cur.accept("EXPIRE"):
            cur.expect_type(TokenType.EQ, "'=' after EXPIRE")
            expire = cur.number("EXPIRE in seconds")
        elif cur.accept("CONTENT_TYPE"):
            cur.expect_type(TokenType.EQ, "'=' after CONTENT_TYPE")
            content_type = cur.string("CONTENT_TYPE as a quoted string")
        else:
            raise StatementRejected(f"Unknown PRESIGN option: {cur.advance().text}")

    def produce(session: RunContext) -> pa.Table:
        privilege = StagePrivilege.WRITE if upload else StagePrivilege.READ
        resolved, binding = session.engine.presign_target(session, ref, privilege)
        return session.engine.stages.presign(resolved, upload, expire, content_type, binding)

    return static_query(PRESIGN_SCHEMA, produce)


# -- DDL ------------------------------------------------------------------------------------
def _create_stage(cur: TokenCursor) -> Plan:
    cur.expect("CREATE")
    replace = cur.accept("OR", "REPLACE")
    cur.expect("STAGE")
    if_not_exists = cur.accept("IF", "NOT", "EXISTS")
    if replace and if_not_exists:
        raise StatementRejected("CREATE OR REPLACE STAGE cannot be combined with IF NOT EXISTS")
    name = _stage_name(cur, "created")
    file_format: dict[str, str] = {}
    comment = None
    url: str | None = None
    connection: dict[str, str] = {}
    while not cur.at_end():
        if cur.accept("FILE_FORMAT"):
            file_format = normalize_format_options(parse_options_list(cur, "FILE_FORMAT"))
        elif cur.is_word("COMMENT", "COMMENTS"):
            cur.advance()
            cur.accept_type(TokenType.EQ)
            comment = cur.string("COMMENT as a quoted string")
        elif cur.accept("URL"):
            cur.accept_type(TokenType.EQ)
            url = check_url(cur.string("URL as a quoted string"))
        elif cur.peek() is not None and cur.peek().token_type == TokenType.STRING:  # type: ignore[union-attr]
            url = check_url(cur.string())
        elif cur.is_word("CONNECTION", "CREDENTIALS"):
            cur.advance()
            connection.update(normalize_connection(parse_options_list(cur, "CONNECTION")))
        elif cur.is_word("STORAGE_INTEGRATION", "ENCRYPTION"):
            raise StatementRejected(f"{cur.advance().text.upper()} is not supported: use CONNECTION = (...)")
        else:
            raise StatementRejected(f"Unknown CREATE STAGE option: {cur.advance().text}")
    if connection and url is None:
        raise StatementRejected("CONNECTION needs URL = 's3://bucket/path/'")

    def action(session: RunContext) -> None:
        engine = session.engine
        if not (session.is_admin or engine.stage_catalog.has_global(session.user, CREATE_STAGE_PRIVILEGE)):
            raise PermissionDenied(
                f"Permission denied: CREATE STAGE requires the CREATE STAGE privilege (user {session.user})"
            )
        if url is not None:
            stage = external_stage(
                name,
                url,
                connection=connection,
                file_format=file_format,
                comment=comment,
                creator=session.user,
            )
        else:
            stage = internal_stage(name, file_format=file_format, comment=comment, creator=session.user)
        engine.stages.create_stage(
            stage,
            session.user,
            session.is_admin,
            replace=replace,
            if_not_exists=if_not_exists,
            validate=None if url is None else lambda s: _check_external(session, s),
        )

    return static_update(action)


def _check_external(session: RunContext, stage: Stage) -> None:
    """The endpoint must be allowed and the URL and CONNECTION well formed; nothing is contacted."""
    check_endpoint(stage.connection.get("ENDPOINT_URL"), session.engine.config.allowed_endpoints)
    session.engine.stages.check_external(stage)


def _drop_stage(cur: TokenCursor) -> Plan:
    if_exists = cur.accept("IF", "EXISTS")
    name = _stage_name(cur, "dropped")
    cur.finish()

    def action(session: RunContext) -> None:
        session.engine.stages.drop_stage(name, session.user, session.is_admin, if_exists=if_exists)

    return static_update(action)


def _alter_stage(cur: TokenCursor) -> Plan:
    if_exists = cur.accept("IF", "EXISTS")
    name = _stage_name(cur, "altered")
    file_format: dict[str, str] | None = None
    comment, unset_comment = None, False
    if cur.accept("SET"):
        if cur.at_end():
            raise StatementRejected("ALTER STAGE ... SET needs FILE_FORMAT = (...) or COMMENT = '...'")
        while not cur.at_end():
            if cur.accept("FILE_FORMAT"):
                file_format = normalize_format_options(parse_options_list(cur, "FILE_FORMAT"))
            elif cur.is_word("COMMENT", "COMMENTS"):
                cur.advance()
                cur.accept_type(TokenType.EQ)
                comment = cur.string("COMMENT as a quoted string")
            elif cur.is_word("URL", "CONNECTION"):
                raise StatementRejected(
                    "ALTER STAGE cannot change URL or CONNECTION: use CREATE OR REPLACE STAGE"
                )
            else:
                raise StatementRejected(f"Unknown ALTER STAGE option: {cur.advance().text}")
    elif cur.accept("UNSET"):
        while not cur.at_end():
            if cur.is_word("COMMENT", "COMMENTS"):
                cur.advance()
                unset_comment = True
            elif cur.accept("FILE_FORMAT"):
                file_format = {}
            else:
                raise StatementRejected(f"Cannot UNSET {cur.advance().text}: use COMMENT or FILE_FORMAT")
            cur.accept_type(TokenType.COMMA)
    else:
        raise StatementRejected("ALTER STAGE needs SET or UNSET")

    def action(session: RunContext) -> None:
        catalog = session.engine.stage_catalog
        if not catalog.exists(name) and if_exists:
            return
        stage = catalog.get(name)
        require_owner(stage, session.user, session.is_admin, "alter")
        catalog.update(name, file_format=file_format, comment=comment, unset_comment=unset_comment)

    return static_update(action)


def _stage_row(stage: Stage) -> dict[str, object]:
    return {
        "name": stage.name,
        "stage_type": "Internal" if stage.kind is StageKind.LEGACY_INTERNAL else str(stage.kind),
        "storage_type": "s3" if (stage.url or "").startswith("s3://") else "fs",
        "url": stage.url,
        "endpoint": stage.connection.get("ENDPOINT_URL"),
        "has_credentials": "SECRET_ACCESS_KEY" in stage.connection,
        "has_encryption_key": False,
        "storage_params": storage_params(stage.connection),
        "file_format_options": json.dumps(dict(stage.file_format)),
        "creator": stage.creator,
        "created_on": stage.created_on,
        "comment": stage.comment,
        "owner": stage.creator,
    }


def _desc_stage(cur: TokenCursor) -> Plan:
    name = _stage_name(cur, "described")
    cur.finish()

    def produce(session: RunContext) -> pa.Table:
        stage = session.engine.stage_catalog.get(name)
        return pa.Table.from_pylist([_stage_row(stage)], schema=STAGES_SCHEMA)

    return static_query(STAGES_SCHEMA, produce)


def _show_stages(cur: TokenCursor) -> Plan:
    like = cur.string("a LIKE pattern") if cur.accept("LIKE") else None
    cur.finish()

    def produce(session: RunContext) -> pa.Table:
        rows = [_stage_row(s) for s in session.engine.stage_catalog.list(like)]
        return pa.Table.from_pylist(rows, schema=STAGES_SCHEMA)

    return static_query(STAGES_SCHEMA, produce)


def _grant(cur: TokenCursor) -> Plan:
    granting = cur.advance().text.upper() == "GRANT"
    if cur.accept("CREATE", "STAGE"):
        if cur.accept("ON"):
            cur.option_value()  # '*.*' style scopes are accepted and ignored: the privilege is global
            while cur.peek() is not None and not cur.is_word("TO", "FROM"):
                cur.advance()
        cur.expect("TO" if granting else "FROM")
        grantee = parse_grantee(cur)
        cur.finish()

        def global_action(session: RunContext) -> None:
            if not session.is_admin:
                raise PermissionDenied("Permission denied: only root may grant CREATE STAGE")
            require_grantee(session, grantee)
            catalog = session.engine.stage_catalog
            if granting:
                catalog.grant_global(grantee, CREATE_STAGE_PRIVILEGE)
            else:
                catalog.revoke_global(grantee, CREATE_STAGE_PRIVILEGE)

        return static_update(global_action)
    privileges: list[StagePrivilege] = []
    while True:
        word = cur.identifier("READ, WRITE or ALL").upper()
        if word == "ALL":
            cur.accept("PRIVILEGES")
            privileges = [StagePrivilege.READ, StagePrivilege.WRITE]
        elif word in ("READ", "WRITE"):
            privileges.append(StagePrivilege(word))
        else:
            raise StatementRejected(f"Unknown stage privilege {word}: use READ, WRITE or ALL")
        if not cur.accept_type(TokenType.COMMA):
            break
    cur.expect("ON", "STAGE")
    name = _stage_name(cur, "granted")
    cur.expect("TO" if granting else "FROM")
    grantee = parse_grantee(cur)
    cur.finish()

    def action(session: RunContext) -> None:
        engine = session.engine
        stage = engine.stage_catalog.get(name)
        require_owner(stage, session.user, session.is_admin, "grant privileges on")
        if grantee.kind == USER and not engine.users.exists(grantee.name):
            raise StatementRejected(f"User does not exist: {grantee.name}")
        require_grantee(session, grantee)
        if granting:
            engine.stage_catalog.grant(name, grantee, privileges, session.user)
        else:
            engine.stage_catalog.revoke(name, grantee, privileges)

    return static_update(action)


def _vacuum(cur: TokenCursor) -> Plan:
    days = None
    if cur.accept("RETAIN"):
        days = cur.number("the retention in days")
        cur.expect("DAYS")
    cur.finish()

    def produce(session: RunContext) -> pa.Table:
        if not session.is_admin:
            raise PermissionDenied("Permission denied: VACUUM USER STAGES requires the root user")
        retention = days if days is not None else session.engine.config.user_stage_retention_days
        if retention is None:
            raise StatementRejected(
                "No retention set: use VACUUM USER STAGES RETAIN <n> DAYS "
                "or start the server with --user-stage-retention-days"
            )
        files, size = session.engine.stages.vacuum_user_stages(retention)
        return pa.table({"removed_files": [files], "removed_bytes": [size]}, schema=VACUUM_SCHEMA)

    return static_query(VACUUM_SCHEMA, produce)
