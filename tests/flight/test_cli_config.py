"""The command line: configuration precedence, --help, the ready banner, first-start password."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from flight.config import ServerConfig, build_parser, load_config


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path: Path):
    config_file = tmp_path / "stageflight.toml"
    config_file.write_text('port = 1111\nhost = "0.0.0.0"\nthreads = 3\nmemory_limit = "1GB"\n')
    env = {"STAGEFLIGHT_PORT": "2222", "STAGEFLIGHT_THREADS": "4"}
    config = load_config(["--config", str(config_file), "--port", "3333"], env)
    assert config.port == 3333  # flag
    assert config.threads == 4  # environment over file
    assert config.host == "0.0.0.0"  # file over default
    assert config.memory_limit == "1GB"
    assert config.http_port == ServerConfig().http_port  # default


def test_unknown_config_key_is_named(tmp_path: Path):
    config_file = tmp_path / "bad.toml"
    config_file.write_text("prot = 1\n")
    with pytest.raises(SystemExit, match="unknown option"):
        load_config(["--config", str(config_file)], {})


def test_tls_flags_go_together():
    with pytest.raises(SystemExit, match="must be given together"):
        load_config(["--tls-cert", "c.pem"], {})


def test_help_documents_every_option():
    text = build_parser().format_help()
    for name in ServerConfig.__dataclass_fields__:
        if name == "root_password":
            assert "STAGEFLIGHT_ROOT_PASSWORD" in text
            continue
        assert "--" + name.replace("_", "-") in text, name
        assert "STAGEFLIGHT_" + name.upper() in text, name


def test_readme_documents_every_option():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in ServerConfig.__dataclass_fields__:
        assert f"`{name}`" in readme or f"`{name.upper()}`" in readme or name == "root_password", name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(data_dir: Path, env_password: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "STAGEFLIGHT_ROOT_PASSWORD"}
    if env_password:
        env["STAGEFLIGHT_ROOT_PASSWORD"] = env_password
    # As a context manager, so that the stdout pipe is closed as well.
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flight.cli",
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(_free_port()),
            "--http-port",
            "-1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        lines = []
        for _ in range(12):
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("  warning") or not line:
                break
        proc.terminate()
        proc.wait(timeout=30)
    return "".join(lines)


def test_banner_has_connection_strings_and_generated_password_once(tmp_path: Path):
    first = _serve(tmp_path, None)
    assert first.startswith("stageflight ready: listening on grpc://127.0.0.1:")
    assert "adbc_driver_flightsql.dbapi" in first and "jdbc:arrow-flight-sql://" in first
    assert "useEncryption=false" in first
    assert "root password (generated, shown once" in first
    second = _serve(tmp_path, None)
    assert "generated" not in second  # shown once: only the hash is stored
    import duckdb

    con = duckdb.connect(str(tmp_path / "security.duckdb"), read_only=True)  # hashes live apart
    [hash_value] = con.execute("SELECT password_hash FROM users WHERE name = 'root'").fetchone()
    con.close()
    assert hash_value.startswith("$argon2id$")
    password = first.split("shown once; only a hash is stored): ")[1].split()[0]
    assert password not in hash_value


def test_top_level_usage():
    out = subprocess.run([sys.executable, "-m", "flight.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("serve", "put", "get", "ls"):
        assert command in out.stdout
    bad = subprocess.run([sys.executable, "-m", "flight.cli", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown command 'nope'" in bad.stderr
