"""The real server in its own process, for tests that must see it crash (a segfault in-process would
take pytest down with it) or that load it from many clients at once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT_PASSWORD = "root-proc-pw"
_READY = re.compile(r"listening on (grpc(?:\+tls)?://\S+)")
_HTTP = re.compile(r"http:\s+(http://\S+)")


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    uri: str
    http_url: str
    log_path: Path
    banner: list[str]  # the lines it printed up to its HTTP address

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def server_process(
    data_dir: Path,
    *args: str,
    ready_timeout: float = 60.0,
    root_password: str = ROOT_PASSWORD,
    launcher: Sequence[str] = (),
) -> Iterator[ServerProcess]:
    """``stageflight serve`` in a subprocess (started through ``launcher``, e.g. ``taskset -c 0``)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}.log"
    env = {**os.environ, "STAGEFLIGHT_ROOT_PASSWORD": root_password, "PYTHONFAULTHANDLER": "1"}
    cmd = [
        *launcher,
        sys.executable,
        "-m",
        "flight.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--http-port",
        "0",
        "--data-dir",
        str(data_dir),
        *args,
    ]
    with open(log_path, "w") as log:
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    try:
        uri = http_url = ""
        banner: list[str] = []
        deadline = time.monotonic() + ready_timeout
        assert process.stdout is not None
        while time.monotonic() < deadline and not (uri and http_url):
            line = process.stdout.readline()
            if not line:
                raise AssertionError(f"server exited before it was ready:\n{log_path.read_text()}")
            banner.append(line.rstrip("\n"))
            if m := _READY.search(line):
                uri = m.group(1)
            if m := _HTTP.search(line):
                http_url = m.group(1)
        assert uri and http_url, "server did not print its ready lines in time"
        yield ServerProcess(process, uri, http_url, log_path, banner)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
