"""Binds the server's own presigned URLs to what their authority rests on (issue 11, item 12).

A URL names each scope it depends on, with that scope's generation when it was issued:

- ``user/<issuer>``: bumped by DROP USER and by a password change (as the user's other sessions
  end then), so a re-created user of the same name never inherits old URLs;
- ``stage/<name>``: bumped by DROP STAGE and CREATE [OR REPLACE] STAGE of the name;
- ``grant/<stage>/<issuer>/<privilege>``: bumped by REVOKE. Present whether the issuer reached
  the stage through a grant or as its owner, so the scopes never depend on who owns the stage at
  the moment (a REVOKE from an owner ends the owner's URLs too; re-issuing is cheap).

The HTTP side serves a URL only while every generation it carries is still current. Names cannot
hold ``/``, ``:`` or ``,`` (stages.paths name rules), so the text below is unambiguous; it is
signed with the URL, so a client cannot change it.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.catalog.privileges import TABLE_PRIVILEGES_SCOPE
from engine.catalog.security_store import SecurityStore
from stages.model import Stage, StageKind


def user_scope(user: str) -> str:
    return f"user/{user}"


def stage_scope(stage: str) -> str:
    return f"stage/{stage}"


def grant_scope(stage: str, grantee: str, privilege: str) -> str:
    return f"grant/{stage}/{grantee}/{privilege}"


def scopes_for(user: str, stage: Stage, privilege: str) -> list[str]:
    """What a URL that ``user`` gets for ``stage`` under ``privilege`` depends on."""
    if stage.kind is StageKind.USER:
        return [user_scope(user)]  # the issuer's own @~: nothing but the issuer
    if stage.kind is StageKind.TABLE:
        return [user_scope(user), stage_scope(stage.name), TABLE_PRIVILEGES_SCOPE]
    return [user_scope(user), stage_scope(stage.name), grant_scope(stage.name, user, privilege)]


def stamp(security: SecurityStore, scopes: Sequence[str]) -> str:
    """The binding text for a URL issued now."""
    current = security.generations(scopes)
    return ",".join(f"{scope}:{current[scope]}" for scope in scopes)


def why_revoked(security: SecurityStore, binding: str | None) -> str | None:
    """None while every generation in ``binding`` is current, else the reason the URL is refused."""
    if binding is None:
        return "URL revoked: it was issued before URLs were bound to their issuer; presign it again"
    issued: dict[str, int] = {}
    for item in binding.split(","):
        scope, _, number = item.rpartition(":")
        if not scope or not number.isdigit():
            return "URL revoked: unreadable binding; presign it again"
        issued[scope] = int(number)
    current = security.generations(issued)
    for scope, generation in issued.items():
        if current[scope] != generation:
            return "URL revoked: " + _describe(scope)
    return None


def _describe(scope: str) -> str:
    kind, _, rest = scope.partition("/")
    parts = rest.split("/")
    if kind == "user":
        return f"user {rest} was dropped or changed password after it was issued"
    if kind == "stage":
        return f"stage @{rest} was dropped or replaced after it was issued"
    if kind == "grant" and len(parts) == 3:
        stage, grantee, privilege = parts
        return f"privilege {privilege} on stage @{stage} was revoked from {grantee} after it was issued"
    if scope == TABLE_PRIVILEGES_SCOPE:
        return "a table privilege was revoked or transferred after it was issued"
    return f"{scope} changed after it was issued"
