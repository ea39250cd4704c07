"""Presigned URLs issued through a role end when the role's grant or the membership goes."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from tests.e2e.stage_helpers import execute, presign, put


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        with err:  # the error is the response: close its socket
            return int(err.code)


@pytest.mark.parametrize("how", ["revoke grant", "revoke role", "drop role"])
def test_role_based_download_url_ends_with_the_role(root_conn: Any, alice: Any, bob: Any, how: str) -> None:
    role, stage = f"dl_{uuid.uuid4().hex[:8]}", f"rolepre_{uuid.uuid4().hex[:8]}"
    execute(root_conn, f"CREATE STAGE {stage}")
    put(root_conn, f"@{stage}/f.csv", b"x\n")
    execute(root_conn, f"CREATE ROLE {role}")
    execute(root_conn, f"GRANT READ ON STAGE {stage} TO ROLE {role}")
    execute(root_conn, f"GRANT ROLE {role} TO {alice.user_name}")
    execute(root_conn, f"GRANT READ ON STAGE {stage} TO {bob.user_name}")
    alices = presign(alice, f"PRESIGN @{stage}/f.csv")["url"]
    bobs = presign(bob, f"PRESIGN @{stage}/f.csv")["url"]
    assert _status(alices) == 200
    if how == "revoke grant":
        execute(root_conn, f"REVOKE READ ON STAGE {stage} FROM ROLE {role}")
    elif how == "revoke role":
        execute(root_conn, f"REVOKE ROLE {role} FROM {alice.user_name}")
    else:
        execute(root_conn, f"DROP ROLE {role}")
    assert _status(alices) == 403
    assert _status(bobs) == 200  # bob's own grant is untouched
    execute(root_conn, f"DROP ROLE IF EXISTS {role}")
    execute(root_conn, f"DROP STAGE {stage}")
