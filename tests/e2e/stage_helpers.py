"""Helpers for stage tests: upload and download through PRESIGN over real HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def query(conn: Any, sql: str) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table().to_pylist()  # type: ignore[no-any-return]


def execute(conn: Any, sql: str) -> int:
    with conn.cursor() as cur:
        cur.execute(sql)
        return int(cur.rowcount)


def presign(conn: Any, sql: str) -> dict[str, Any]:
    [row] = query(conn, sql)
    row["headers"] = json.loads(row["headers"])
    return row


def put(conn: Any, ref: str, data: bytes, content_type: str | None = None) -> int:
    extra = f" CONTENT_TYPE = '{content_type}'" if content_type else ""
    signed = presign(conn, f"PRESIGN UPLOAD {ref}{extra}")
    headers = {"Content-Type": "application/octet-stream", **signed["headers"]}
    request = urllib.request.Request(signed["url"], data=data, method="PUT", headers=headers)
    with urllib.request.urlopen(request) as response:
        return int(response.status)


def get(conn: Any, ref: str) -> bytes:
    signed = presign(conn, f"PRESIGN DOWNLOAD {ref}")
    with urllib.request.urlopen(signed["url"]) as response:
        return response.read()  # type: ignore[no-any-return]


def http_status(
    url: str, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None
) -> int:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        with err:  # the error is the response: close its socket
            return int(err.code)
