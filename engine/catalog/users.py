"""SQL users: Argon2id hashes in the security database, out of the user-facing instance's reach."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pyarrow as pa

from engine.catalog import passwords
from engine.catalog.database import Database, first_row
from engine.catalog.presign_binding import user_scope
from engine.catalog.privileges import ACCOUNT_ADMIN, USER, Principal, PrivilegeStore
from engine.catalog.security_store import DuplicateRow
from engine.errors import ObjectAlreadyExists, ObjectNotFound, StatementRejected

# User names become storage path segments (stage/user/<name>/): the stage layer's rule.
from stages.paths import USER_NAME_RE

ROOT_USER = "root"
TOKEN_KEY_NAME = "bearer-token-key"

USERS_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("is_admin", pa.bool_(), nullable=False),
        pa.field("created_on", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def check_user_name(name: str) -> str:
    if not USER_NAME_RE.match(name):
        raise StatementRejected(
            f"Invalid user name {name!r}: use letters, digits and '_' (not starting with a digit), at most 64"
        )
    return name


class UserDirectory:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._privileges = PrivilegeStore(db.security)
        self._on_drop: list[Callable[[str], None]] = []

    def on_drop(self, hook: Callable[[str], None]) -> None:
        """Run ``hook(name)`` after a user is dropped (token revocation, user-stage cleanup)."""
        self._on_drop.append(hook)

    def _hash_of(self, name: str) -> str | None:
        with self._db.security.cursor() as cur:
            row = first_row(cur, "SELECT password_hash FROM users WHERE name = ?", [name])
        return None if row is None else str(row[0])

    def exists(self, name: str) -> bool:
        return self._hash_of(name) is not None

    def is_admin(self, name: str) -> bool:
        """Root, or a user holding account_admin (directly or through other roles)."""
        if name == ROOT_USER:
            return True
        return self.exists(name) and self._privileges.is_member(name, ACCOUNT_ADMIN)

    def default_role(self, name: str) -> str | None:
        with self._db.security.cursor() as cur:
            row = first_row(cur, "SELECT default_role FROM users WHERE name = ?", [name])
        return None if row is None or row[0] is None else str(row[0])

    def set_default_role(self, name: str, role: str | None) -> None:
        if not self.exists(name):
            raise ObjectNotFound(f"User does not exist: {name}")
        if role is not None:
            self._privileges.require_role(role)
        with self._db.security.transaction() as cur:
            cur.execute("UPDATE users SET default_role = ? WHERE name = ?", [role, name])
            self._db.security.bump_version(cur)

    def authenticate(self, name: str, password: str) -> bool:
        return passwords.verify_password(password, self._hash_of(name))

    def ensure_root(self, password: str | None) -> str | None:
        """Create root on first start. Returns a generated password to show once, else None."""
        existing = self._hash_of(ROOT_USER)
        if existing is not None:
            if password is not None and not passwords.verify_password(password, existing):
                self._set_hash(ROOT_USER, passwords.hash_password(password))
            return None
        generated = None
        if password is None:
            password = generated = passwords.generate_password()
        try:
            self._insert(ROOT_USER, passwords.hash_password(password), is_admin=True)
        except DuplicateRow:  # another node sharing the catalog made root at the same moment
            return None if generated else self.ensure_root(password)
        return generated

    def _insert(self, name: str, password_hash: str, *, is_admin: bool = False) -> None:
        with self._db.security.transaction() as cur:
            # Grants left by a DROP USER that raced a GRANT must not pass to the new user, nor
            # presigned URLs issued to the old one (its generation moves on).
            self._db.security.bump(cur, user_scope(name))
            self._privileges.forget_user(cur, name)
            cur.execute("INSERT INTO users (name, password_hash) VALUES (?, ?)", [name, password_hash])
            if is_admin:
                cur.execute(
                    "INSERT INTO role_grants VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [ACCOUNT_ADMIN, USER, name, ROOT_USER],
                )

    def _set_hash(self, name: str, password_hash: str) -> None:
        with self._db.security.transaction() as cur:
            # A new password ends the user's presigned URLs, as it ends the user's other sessions.
            self._db.security.bump(cur, user_scope(name))
            cur.execute("UPDATE users SET password_hash = ? WHERE name = ?", [password_hash, name])

    def create(self, name: str, password: str, *, if_not_exists: bool = False) -> None:
        check_user_name(name)
        if self.exists(name):
            if if_not_exists:
                return
            raise ObjectAlreadyExists(f"User already exists: {name}")
        try:
            self._insert(name, passwords.hash_password(password))
        except DuplicateRow:  # made since the check, maybe by another node sharing the catalog
            if if_not_exists:
                return
            raise ObjectAlreadyExists(f"User already exists: {name}") from None

    def alter_password(self, name: str, password: str) -> None:
        if not self.exists(name):
            raise ObjectNotFound(f"User does not exist: {name}")
        self._set_hash(name, passwords.hash_password(password))

    def drop(self, name: str, *, if_exists: bool = False) -> None:
        if name == ROOT_USER:
            raise StatementRejected("The root user cannot be dropped")
        if not self.exists(name):
            if if_exists:
                return
            raise ObjectNotFound(f"User does not exist: {name}")
        # One transaction of the security database: the user's grants and role memberships go
        # with the user, what it owned there passes to root, and the URLs it was issued stop working.
        with self._db.security.transaction() as cur:
            self._db.security.bump(cur, user_scope(name))
            self._privileges.forget_user(cur, name)
            cur.execute("DELETE FROM users WHERE name = ?", [name])
        for hook in self._on_drop:
            hook(name)

    def list(self) -> pa.Table:
        rows = self._db.security.rows("SELECT name, created_on FROM users ORDER BY name")
        admins = {p.name for p in self._privileges.members(ACCOUNT_ADMIN)} | {ROOT_USER}
        return pa.Table.from_pylist(
            [{"name": r[0], "is_admin": r[0] in admins, "created_on": r[1]} for r in rows],
            schema=USERS_SCHEMA,
        )

    # -- bearer tokens every node verifies (a shared catalog only) --------------------------
    def token_secret(self) -> bytes | None:
        """The key all nodes sharing the catalog sign bearer tokens with; None on one node."""
        if not self._db.security.shared:
            return None
        return bytes.fromhex(self._db.security.shared_secret(TOKEN_KEY_NAME, secrets.token_hex(32)))

    def token_generation(self, name: str) -> int:
        """Moves on at CREATE USER, every password change and DROP USER, on any node: a token
        stamped with an older one is refused (the same generation presigned URLs carry)."""
        return self._db.security.generations([user_scope(name)])[user_scope(name)]

    def principal(self, name: str) -> Principal:
        if not self.exists(name):
            raise ObjectNotFound(f"User does not exist: {name}")
        return Principal(USER, name)
