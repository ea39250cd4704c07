"""Presigned URLs end with the authority they were issued under (issue 11, item 12).

Every URL is bound to its issuer's generation, the stage's and the issuer's grant on it; DROP
USER, a password change, REVOKE and DROP STAGE move a generation on and the HTTP side refuses
the URL with 403. Real server, real ADBC clients, real HTTP requests against the URLs.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from flight.app import RunningServer
from tests.conftest import connect
from tests.e2e.stage_helpers import execute, presign, put, query


def _http(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as err:
        with err:  # the error is the response: close its socket
            return int(err.code), err.read()


def test_upload_url_dies_with_drop_user_and_plants_nothing_in_the_recreated_user(
    server: RunningServer, root_conn: Any
) -> None:
    execute(root_conn, "CREATE USER gen_drop IDENTIFIED BY 'pw-one'")
    with connect(server, user="gen_drop", password="pw-one") as old:
        url = presign(old, "PRESIGN UPLOAD @~/planted.csv")["url"]
    execute(root_conn, "DROP USER gen_drop")
    execute(root_conn, "CREATE USER gen_drop IDENTIFIED BY 'pw-two'")
    status, body = _http(url, "PUT", b"1,planted\n")
    assert status == 403
    assert body.decode().strip() == (
        "URL revoked: user gen_drop was dropped or changed password after it was issued"
    )
    with connect(server, user="gen_drop", password="pw-two") as new:
        assert query(new, "LIST @~") == []
        # The new user's own URLs work.
        assert put(new, "@~/mine.csv", b"1\n") == 200
        assert [r["name"] for r in query(new, "LIST @~")] == ["mine.csv"]
    execute(root_conn, "DROP USER gen_drop")


def test_revoke_ends_the_grantees_download_urls_only(root_conn: Any, alice: Any, bob: Any) -> None:
    execute(root_conn, "CREATE OR REPLACE STAGE gen_shared")
    put(root_conn, "@gen_shared/f.csv", b"shared\n")
    for user in (alice, bob):
        execute(root_conn, f"GRANT READ ON STAGE gen_shared TO {user.user_name}")
    alices = presign(alice, "PRESIGN @gen_shared/f.csv")["url"]
    bobs = presign(bob, "PRESIGN @gen_shared/f.csv")["url"]
    roots = presign(root_conn, "PRESIGN @gen_shared/f.csv")["url"]
    assert _http(alices) == (200, b"shared\n")

    execute(root_conn, f"REVOKE READ ON STAGE gen_shared FROM {alice.user_name}")
    status, body = _http(alices)
    assert status == 403
    assert body.decode().strip() == (
        f"URL revoked: privilege READ on stage @gen_shared was revoked from {alice.user_name} "
        "after it was issued"
    )
    assert _http(alices, "HEAD")[0] == 403
    # Nobody else's URL for the same file is affected.
    assert _http(bobs) == (200, b"shared\n")
    assert _http(roots) == (200, b"shared\n")
    # A new grant means new URLs; the revoked one stays dead.
    execute(root_conn, f"GRANT READ ON STAGE gen_shared TO {alice.user_name}")
    assert _http(alices)[0] == 403
    assert _http(presign(alice, "PRESIGN @gen_shared/f.csv")["url"]) == (200, b"shared\n")
    execute(root_conn, "DROP STAGE gen_shared")


def test_revoking_write_leaves_read_urls_alone(root_conn: Any, alice: Any) -> None:
    execute(root_conn, "CREATE OR REPLACE STAGE gen_rw")
    put(root_conn, "@gen_rw/f.csv", b"x")
    execute(root_conn, f"GRANT READ ON STAGE gen_rw TO {alice.user_name}")
    execute(root_conn, f"GRANT WRITE ON STAGE gen_rw TO {alice.user_name}")
    download = presign(alice, "PRESIGN @gen_rw/f.csv")["url"]
    upload = presign(alice, "PRESIGN UPLOAD @gen_rw/g.csv")["url"]
    execute(root_conn, f"REVOKE WRITE ON STAGE gen_rw FROM {alice.user_name}")
    assert _http(upload, "PUT", b"g")[0] == 403
    assert _http(download) == (200, b"x")
    assert [r["name"] for r in query(root_conn, "LIST @gen_rw")] == ["f.csv"]
    execute(root_conn, "DROP STAGE gen_rw")


def test_upload_url_dies_with_drop_stage(root_conn: Any) -> None:
    execute(root_conn, "CREATE OR REPLACE STAGE gen_gone")
    url = presign(root_conn, "PRESIGN UPLOAD @gen_gone/late.csv")["url"]
    execute(root_conn, "DROP STAGE gen_gone")
    execute(root_conn, "CREATE STAGE gen_gone")
    status, body = _http(url, "PUT", b"late")
    assert status == 403
    assert body.decode().strip() == "URL revoked: stage @gen_gone was dropped or replaced after it was issued"
    assert query(root_conn, "LIST @gen_gone") == []
    execute(root_conn, "DROP STAGE gen_gone")


def test_password_change_ends_the_users_urls(server: RunningServer, root_conn: Any) -> None:
    execute(root_conn, "CREATE USER gen_pw IDENTIFIED BY 'pw-old'")
    with connect(server, user="gen_pw", password="pw-old") as conn:
        put(conn, "@~/f.csv", b"f")
        url = presign(conn, "PRESIGN @~/f.csv")["url"]
        assert _http(url) == (200, b"f")
    execute(root_conn, "ALTER USER gen_pw IDENTIFIED BY 'pw-new'")
    assert _http(url)[0] == 403
    with connect(server, user="gen_pw", password="pw-new") as conn:
        assert _http(presign(conn, "PRESIGN @~/f.csv")["url"]) == (200, b"f")
    execute(root_conn, "DROP USER gen_pw")


def _without(url: str, param: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != param]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _with(url: str, param: str, value: str) -> str:
    parts = urlsplit(url)
    query = {**dict(parse_qsl(parts.query)), param: value}
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.mark.parametrize("tamper", ["drop", "bump"])
def test_the_binding_is_signed(alice: Any, tamper: str) -> None:
    put(alice, "@~/b.csv", b"b")
    url = presign(alice, "PRESIGN @~/b.csv")["url"]
    binding = dict(parse_qsl(urlsplit(url).query))["bind"]
    assert binding == f"user/{alice.user_name}:" + binding.rpartition(":")[2]
    forged = _without(url, "bind") if tamper == "drop" else _with(url, "bind", binding + "1")
    status, body = _http(forged)
    assert (status, body.decode().strip()) == (403, "signature mismatch")
    assert _http(url) == (200, b"b")


def test_table_stage_url_ends_when_the_table_privilege_is_revoked(
    root_conn: Any, alice: Any, bob: Any, unique_table: Any
) -> None:
    t = unique_table("tsurl")
    execute(alice, f"CREATE TABLE {t} (a INTEGER)")
    put(alice, f"@%{t}/a.csv", b"1\n")
    execute(alice, f"GRANT SELECT ON {t} TO {bob.user_name}")
    url = presign(bob, f"PRESIGN @%{t}/a.csv")["url"]
    assert _http(url) == (200, b"1\n")
    execute(alice, f"REVOKE SELECT ON {t} FROM {bob.user_name}")
    status, body = _http(url)
    assert status == 403
    assert body.decode().strip() == (
        "URL revoked: a table privilege was revoked or transferred after it was issued"
    )
    # The owner's own URL for the same file is issued after the revoke and works.
    assert _http(presign(alice, f"PRESIGN @%{t}/a.csv")["url"]) == (200, b"1\n")
