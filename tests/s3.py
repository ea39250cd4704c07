"""A real S3 endpoint on loopback for tests: moto's server in a child process.

Import the fixtures into a conftest (``from tests.s3 import moto_s3, moto_s3_auth``) or into a
test module. The server runs in a subprocess, not in-process: moto keeps objects in memory, and
an in-process server would show up in ``tracemalloc`` (the storage contract measures that) and
compete for the GIL with the code under test.

* :func:`moto_server` accepts any credentials (moto's default).
* :func:`moto_server_with_auth` enforces signatures: it starts moto with
  ``INITIAL_NO_AUTH_ACTION_COUNT=4`` and spends those four unauthenticated requests on creating an
  IAM user with an allow-all policy and an access key. From then on only that key is accepted,
  so a wrong secret is refused (``SignatureDoesNotMatch``) and presigned URLs are really checked.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

REGION = "us-east-1"
_ANY_KEY = "testing"  # moto without auth accepts any credentials
_START_TIMEOUT = 30.0
_AUTH_SETUP_ACTIONS = 4  # create_user, create_policy, attach_user_policy, create_access_key
_ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass(frozen=True)
class MotoServer:
    """A running moto server and credentials it accepts."""

    endpoint: str  # 'http://127.0.0.1:<port>'
    access_key: str
    secret_key: str = ""
    region: str = REGION

    def options(self, **overrides: str) -> dict[str, str]:
        """CONNECTION options for ``S3Backend.from_url``."""
        options = {
            "ENDPOINT_URL": self.endpoint,
            "ACCESS_KEY_ID": self.access_key,
            "SECRET_ACCESS_KEY": self.secret_key,
            "REGION": self.region,
        }
        options.update(overrides)
        return options

    def __repr__(self) -> str:  # keep the secret out of pytest's failure output
        return f"MotoServer({self.endpoint!r}, access_key={self.access_key!r})"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(endpoint: str, process: subprocess.Popen[bytes]) -> bool:
    """Poll moto's dashboard-free health URL until it answers (any HTTP status counts)."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            # /moto-api/ does not count as an action, so it does not use up the no-auth budget.
            with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2):
                return True
        except urllib.error.HTTPError as err:
            err.close()  # the error is the response: close its socket
            return True
        except OSError:
            time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def _moto_process(extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Start ``moto_server`` on a free loopback port; yields the endpoint URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(extra_env or {})
    last_error = ""
    for _ in range(3):  # the free port can be taken between probing and binding: retry
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        # moto logs every request: a file, not a pipe nobody drains (a full pipe blocks the server).
        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from moto.server import main; main()",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    str(port),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            try:
                if _wait_ready(endpoint, process):
                    yield endpoint
                    return
            finally:
                _stop(process)
            log.seek(0)
            last_error = log.read().decode(errors="replace")[-2000:]
    raise RuntimeError(f"moto_server did not start: {last_error}")


def _client(service: str, endpoint: str, access_key: str, secret_key: str, region: str = REGION) -> Any:
    import boto3  # test-only dependency

    return boto3.client(
        service,
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
    )


def s3_client(server: MotoServer) -> Any:
    """A boto3 S3 client for ``server`` (to inspect buckets behind the backend's back)."""
    return _client("s3", server.endpoint, server.access_key, server.secret_key, server.region)


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    """A moto S3 server on loopback that accepts any credentials."""
    with _moto_process() as endpoint:
        yield MotoServer(endpoint, _ANY_KEY, _ANY_KEY)


@contextmanager
def moto_server_with_auth() -> Iterator[MotoServer]:
    """A moto server that checks signatures; yields the one access key it accepts."""
    with _moto_process({"INITIAL_NO_AUTH_ACTION_COUNT": str(_AUTH_SETUP_ACTIONS)}) as endpoint:
        iam = _client("iam", endpoint, _ANY_KEY, _ANY_KEY)
        user = f"stageflight-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        policy = iam.create_policy(PolicyName=f"{user}-all", PolicyDocument=json.dumps(_ALLOW_ALL))
        iam.attach_user_policy(UserName=user, PolicyArn=policy["Policy"]["Arn"])
        key = iam.create_access_key(UserName=user)["AccessKey"]
        yield MotoServer(endpoint, key["AccessKeyId"], key["SecretAccessKey"])


def make_bucket(server: MotoServer | str, name: str | None = None) -> str:
    """Create a bucket (a fresh random name by default) and return its name."""
    if isinstance(server, str):
        server = MotoServer(server, _ANY_KEY, _ANY_KEY)
    bucket = name or f"sf-{uuid.uuid4().hex[:16]}"
    s3_client(server).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoServer]:
    """Session-wide moto S3 server (any credentials accepted)."""
    with moto_server() as server:
        yield server


@pytest.fixture(scope="session")
def moto_s3_auth() -> Iterator[MotoServer]:
    """Session-wide moto S3 server that enforces signatures (see :func:`moto_server_with_auth`)."""
    with moto_server_with_auth() as server:
        yield server
