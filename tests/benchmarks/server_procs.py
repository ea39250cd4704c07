"""Benchmark servers as subprocesses: start one, wait for its ready line, stop it.

Shared by the benchmarks, and free of numpy so bench_lake runs in the lake venv too.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 120.0


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    uri: str
    log: Path


def on_cpu(cpu: int | None) -> list[str]:
    """The argv prefix that holds a process to one CPU (``taskset``); none for ``None``."""
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


def _spawn(
    name: str, argv: list[str], env: dict[str, str], log_dir: Path, marker: str, cwd: Path = REPO_ROOT
) -> Proc:
    out_path, err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        popen = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        for line in out_path.read_text(errors="replace").splitlines():
            if marker in line and "listening on " in line:
                uri = line.split("listening on ", 1)[1].strip()
                return Proc(name, popen, uri, err_path)
        if popen.poll() is not None:
            break
        time.sleep(0.1)
    popen.kill()
    popen.wait()
    raise RuntimeError(
        f"{name} did not start (exit {popen.returncode}):\n"
        f"{out_path.read_text(errors='replace')}\n{err_path.read_text(errors='replace')}"
    )


def _stop(proc: Proc) -> None:
    if proc.popen.poll() is None:
        proc.popen.send_signal(signal.SIGTERM)
        try:
            proc.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait()
