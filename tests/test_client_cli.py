"""stageflight put/get/ls against the real server: PRESIGN over ADBC, bytes over the HTTP side."""

from __future__ import annotations

import getpass
import hashlib
import io
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from client import cli as client_cli
from client.cli import CliError, Progress, Signed, format_table, local_destination, upload_targets
from flight import app
from flight import cli as flight_cli
from tests.conftest import ROOT_PASSWORD, connect

MiB = 1 << 20
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def as_user(
    server: app.RunningServer, monkeypatch: pytest.MonkeyPatch, make_user: Callable[[], tuple[str, str]]
) -> Callable[[], tuple[str, str]]:
    """Point the CLI's environment at the shared server as a fresh user; returns (name, password)."""

    def login() -> tuple[str, str]:
        name, password = make_user()
        use(monkeypatch, server, name, password)
        return name, password

    return login


def use(monkeypatch: pytest.MonkeyPatch, server: app.RunningServer, user: str, password: str) -> None:
    monkeypatch.setenv("STAGEFLIGHT_URI", server.uri)
    monkeypatch.setenv("STAGEFLIGHT_USER", user)
    monkeypatch.setenv("STAGEFLIGHT_PASSWORD", password)


def run(capsys: pytest.CaptureFixture[str], command: str, *args: str | Path) -> tuple[int, str, str]:
    code = client_cli.main(command, [str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def ls_rows(capsys: pytest.CaptureFixture[str], location: str = "@~") -> dict[str, int]:
    code, out, err = run(capsys, "ls", location)
    assert code == 0, err
    header, *lines = out.splitlines()
    assert header.split() == ["name", "size", "md5", "last_modified", "creator"]
    fields = [re.split(r" {2,}", line.strip()) for line in lines]  # columns are 2+ spaces apart
    return {name: int(size) for name, size, *_ in fields}


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


# -- end to end -----------------------------------------------------------------------------------------


def test_put_three_files_then_ls(
    as_user: Callable[[], tuple[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    as_user()
    files = [
        write(tmp_path / "a.csv", b"a,b\n1,2\n"),
        write(tmp_path / "b.ndjson", b'{"x": 1}\n' * 100),
        write(tmp_path / "empty.txt", b""),
    ]
    code, out, err = run(capsys, "put", *files, "@~/dir/")
    assert code == 0, err
    assert out.splitlines() == [f"{f}  {f.stat().st_size} bytes  -> @~/dir/{f.name}  uploaded" for f in files]
    assert ls_rows(capsys, "@~/dir/") == {"dir/a.csv": 8, "dir/b.ndjson": 900, "dir/empty.txt": 0}


def test_ls_table_is_aligned(
    as_user: Callable[[], tuple[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    as_user()
    run(
        capsys,
        "put",
        write(tmp_path / "x.csv", b"1"),
        write(tmp_path / "long_name_here.csv", b"12345"),
        "@~/",
    )
    code, out, _ = run(capsys, "ls")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    size_end = lines[0].index("size") + len("size")
    assert [line[size_end - 1] for line in lines[1:]] == ["5", "1"]  # right-aligned under 'size'
    modified_at = lines[0].index("last_modified")
    assert all(line[modified_at : modified_at + 2] == "20" for line in lines[1:])


def test_get_downloads_identical_bytes(
    as_user: Callable[[], tuple[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    as_user()
    data = {"one.bin": os.urandom(5000), "sub/two.bin": os.urandom(3 * MiB + 1), "sub/deeper/3.csv": b"x\n"}
    for name, content in data.items():
        source = write(tmp_path / "src" / name.replace("/", "_"), content)
        assert run(capsys, "put", source, f"@~/data/{name}")[0] == 0
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "get", "@~/data/", out_dir)
    assert code == 0, err
    for name, content in data.items():
        assert (out_dir / "data" / name).read_bytes() == content
    assert len(out.splitlines()) == 3 and all(line.endswith("downloaded") for line in out.splitlines())
    leftovers = [p for p in out_dir.rglob("*") if p.name.endswith(".part")]
    assert leftovers == []


def test_get_single_file_and_overwrite(
    as_user: Callable[[], tuple[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    as_user()
    run(capsys, "put", write(tmp_path / "v1.csv", b"new content"), "@~/report.csv")
    write(tmp_path / "out" / "report.csv", b"stale local copy that is longer")
    code, _, err = run(capsys, "get", "@~/report.csv", tmp_path / "out")
    assert code == 0, err
    assert (tmp_path / "out" / "report.csv").read_bytes() == b"new content"


@pytest.mark.slow
def test_50mb_round_trip(
    as_user: Callable[[], tuple[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    as_user()
    big = tmp_path / "big.bin"
    block = os.urandom(MiB)
    with big.open("wb") as handle:
        for i in range(50):
            handle.write(block[i:] + block[:i])  # every MiB differs
    code, out, err = run(capsys, "put", big, "@~/big/")
    assert code == 0, err
    assert f"{50 * MiB} bytes" in out
    assert ls_rows(capsys, "@~/big/") == {"big/big.bin": 50 * MiB}
    code, _, err = run(capsys, "get", "@~/big/big.bin", tmp_path / "out")
    assert code == 0, err
    assert sha256(tmp_path / "out" / "big" / "big.bin") == sha256(big)


def test_user_isolation(
    server: app.RunningServer,
    make_user: Callable[[], tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alice, bob = make_user(), make_user()
    use(monkeypatch, server, *alice)
    assert run(capsys, "put", write(tmp_path / "secret.csv", b"alice only"), "@~/private/")[0] == 0
    use(monkeypatch, server, *bob)
    code, out, err = run(capsys, "get", "@~/private/secret.csv", tmp_path / "bob")
    assert code == 1 and out == ""
    assert "no files at @~/private/secret.csv" in err
    assert not (tmp_path / "bob").exists()
    assert ls_rows(capsys, "@~") == {}
    # bob's own file of the same name is his, and alice's stays untouched
    assert run(capsys, "put", write(tmp_path / "b" / "secret.csv", b"bob's"), "@~/private/")[0] == 0
    use(monkeypatch, server, *alice)
    run(capsys, "get", "@~/private/", tmp_path / "alice")
    assert (tmp_path / "alice" / "private" / "secret.csv").read_bytes() == b"alice only"


def test_names_with_spaces_and_quotes(
    as_user: Callable[[], tuple[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    as_user()
    source = write(tmp_path / "it's a file.csv", b"quoted")
    code, out, err = run(capsys, "put", source, "@~/with space/")
    assert code == 0, err
    assert "-> @~/with space/it's a file.csv  uploaded" in out
    assert run(capsys, "get", "@~/with space/", tmp_path / "out")[0] == 0
    assert (tmp_path / "out" / "with space" / "it's a file.csv").read_bytes() == b"quoted"


def test_password_prompt(
    server: app.RunningServer,
    monkeypatch: pytest.MonkeyPatch,
    make_user: Callable[[], tuple[str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    name, password = make_user()
    use(monkeypatch, server, name, password)
    monkeypatch.delenv("STAGEFLIGHT_PASSWORD")
    prompts: list[str] = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt: prompts.append(prompt) or password)
    assert run(capsys, "ls")[0] == 0
    assert prompts == [f"Password for {name}: "]


def test_flags_override_environment(
    server: app.RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(monkeypatch, server, "nobody", "wrong")
    code, _, err = run(capsys, "ls", "--user", "root", "--password", ROOT_PASSWORD)
    assert code == 0, err


# -- errors ---------------------------------------------------------------------------------------------


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def test_missing_local_file(
    as_user: Callable[[], tuple[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    as_user()
    present = write(tmp_path / "here.csv", b"1")
    code, out, err = run(capsys, "put", present, tmp_path / "missing.csv", "@~/d/")
    assert_one_line_error(code, err, "missing.csv", "No such file")
    assert out == ""
    assert ls_rows(capsys) == {}  # checked before anything was uploaded


def test_wrong_password(
    server: app.RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(monkeypatch, server, "root", "not-the-password")
    code, _, err = run(capsys, "ls")
    assert_one_line_error(code, err, "stageflight ls: Invalid user name or password")
    assert "[FlightSQL]" not in err and "Detail" not in err


def test_unreachable_server(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nobody listens there
    monkeypatch.setenv("STAGEFLIGHT_PASSWORD", "x")
    code, _, err = run(capsys, "ls", "--uri", f"grpc://127.0.0.1:{port}")
    assert_one_line_error(code, err, "stageflight ls:")


def test_server_error_text(
    as_user: Callable[[], tuple[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    as_user()
    code, _, err = run(capsys, "put", write(tmp_path / "x.csv", b"1"), "@~/../other/x.csv")
    assert_one_line_error(code, err, "stageflight put:", "..")
    code, _, err = run(capsys, "ls", "@no_such_stage")
    assert_one_line_error(code, err, "no_such_stage")


@pytest.mark.parametrize("target", ["dir/", "~/x", "@"])
def test_bad_target(
    as_user: Callable[[], tuple[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    as_user()
    code, _, err = run(capsys, "put", write(tmp_path / "x.csv", b"1"), target)
    assert_one_line_error(code, err, "not a stage location")


def test_http_error_is_reported(server: app.RunningServer, tmp_path: Path) -> None:
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute("PRESIGN UPLOAD @~/cli/tampered.csv")
        method, headers, url = cur.fetchone()
    source = write(tmp_path / "x.csv", b"data" * 1000)
    signed = Signed(method, {}, url.replace("tampered.csv", "other.csv"))
    with pytest.raises(CliError, match=r"HTTP 403 FORBIDDEN: signature mismatch"):
        client_cli.upload(signed, source, 4000, "@~/cli/other.csv", None)
    good = Signed(method, {}, url)
    client_cli.upload(good, source, 4000, "@~/cli/tampered.csv", None)
    with pytest.raises(CliError, match=r"HTTP 403 FORBIDDEN: method not allowed for this URL"):
        client_cli.download(good, tmp_path / "out.csv", "@~/cli/tampered.csv", 4000, None)
    assert not (tmp_path / "out.csv").exists()


def test_upload_of_shrinking_file_stores_nothing(server: app.RunningServer, tmp_path: Path) -> None:
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute("PRESIGN UPLOAD @~/cli/shrunk.csv")
        method, _, url = cur.fetchone()
        source = write(tmp_path / "x.csv", b"1" * 1000)
        with pytest.raises(CliError, match="shrank"):
            client_cli.upload(Signed(method, {}, url), source, 1000 + MiB, "@~/cli/shrunk.csv", None)
        cur.execute("LIST @~/cli/shrunk")
        assert cur.fetchall() == []


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert client_cli.main("put", ["only-one-arg"]) == 1
    assert "at least one local file and a target" in capsys.readouterr().err
    assert client_cli.main("get", []) == 2
    assert client_cli.main("frobnicate", []) == 2
    assert client_cli.main("ls", ["--help"]) == 0
    assert "STAGEFLIGHT_URI" in capsys.readouterr().out


# Until put/get/ls are hooked into flight/cli.py, run client_cli.main the same way in a child process.
_DIRECT = (
    "import sys; from flight import client_cli; raise SystemExit(client_cli.main(sys.argv[1], sys.argv[2:]))"
)
ENTRY = ["-m", "flight.cli"] if "put" in flight_cli.USAGE else ["-c", _DIRECT]


def _cli_env(server: app.RunningServer, name: str, password: str) -> dict[str, str]:
    """The environment a `stageflight` subprocess reads its connection from."""
    return {
        **os.environ,
        "STAGEFLIGHT_URI": server.uri,
        "STAGEFLIGHT_USER": name,
        "STAGEFLIGHT_PASSWORD": password,
        "PYTHONPATH": str(REPO),
    }


def test_subprocess_entry_point(
    server: app.RunningServer, make_user: Callable[[], tuple[str, str]], tmp_path: Path
) -> None:
    env = _cli_env(server, *make_user())
    source = write(tmp_path / "sub.csv", b"via subprocess")

    def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *ENTRY, *map(str, args)],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    done = cli("put", source, "@~/p/")
    assert done.returncode == 0, done.stderr
    assert "uploaded" in done.stdout and done.stderr == ""  # stderr is no TTY: no progress bar
    assert "p/sub.csv" in cli("ls", "@~/p/").stdout
    assert cli("get", "@~/p/", tmp_path / "o").returncode == 0
    assert (tmp_path / "o" / "p" / "sub.csv").read_bytes() == b"via subprocess"
    failed = cli("put", tmp_path / "nope.csv", "@~/p/")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().endswith("nope.csv: No such file or directory")


# -- helpers --------------------------------------------------------------------------------------------


def test_upload_targets() -> None:
    one, two = Path("/x/a.csv"), Path("b.csv")
    assert upload_targets([one], "@~/dir/") == ["@~/dir/a.csv"]
    assert upload_targets([one], "@~/dir/name.csv") == ["@~/dir/name.csv"]
    assert upload_targets([one], "@~") == ["@~/a.csv"]
    assert upload_targets([one], "@s1") == ["@s1/a.csv"]
    assert upload_targets([one, two], "@~/dir") == ["@~/dir/a.csv", "@~/dir/b.csv"]
    with pytest.raises(CliError, match=r"'dir/' is not a stage location \(expected @~/path or @stage/path\)"):
        upload_targets([one], "dir/")


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a\\..\\b", "", "a/"])
def test_local_destination_refuses_escapes(tmp_path: Path, name: str) -> None:
    with pytest.raises(CliError, match="refusing"):
        local_destination(tmp_path, name)


def test_local_destination_refuses_symlinked_dir(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(CliError, match="symlink"):
        local_destination(tmp_path / "dl", "link/x.csv")
    assert local_destination(tmp_path / "dl", "d/x.csv") == tmp_path / "dl" / "d" / "x.csv"


def test_format_table_nulls_and_alignment() -> None:
    rows = [
        {"name": "a.csv", "size": 5, "md5": None, "last_modified": "t1", "creator": None},
        {"name": "longer/b.csv", "size": 12345, "md5": "abc", "last_modified": "t2", "creator": None},
    ]
    assert format_table(rows).splitlines() == [
        "name           size  md5  last_modified  creator",
        "a.csv             5       t1",
        "longer/b.csv  12345  abc  t2",
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_only_on_a_terminal() -> None:
    quiet = io.StringIO()
    with Progress("@~/x", 100, quiet) as progress:
        progress.advance(100)
    assert quiet.getvalue() == ""
    term = _Terminal()
    with Progress("@~/x", 2 * MiB, term) as progress:
        progress.advance(2 * MiB)
    drawn = term.getvalue()
    assert "@~/x" in drawn and "100%" in drawn and "2.0 MiB/2.0 MiB" in drawn and "/s" in drawn
    assert drawn.endswith("\r\x1b[K")  # cleared at the end
    assert Progress("z", 0, term).render(1.0).count("#") == 24  # empty file: complete, no division by 0
    halfway = Progress("@~/y", 200 * MiB, term)
    halfway.done = 50 * MiB
    assert halfway.render(10.0).endswith("5.0 MiB/s ETA 0:30")  # 150 MiB left at 5 MiB/s


def test_progress_bar_in_a_real_pseudo_terminal(server: Any, make_user: Any, tmp_path: Path) -> None:
    """`stageflight put` with stderr on a pty draws the bar (bytes, rate, ETA) and clears it."""
    import pty

    env = _cli_env(server, *make_user())
    source = write(tmp_path / "big.bin", os.urandom(24 * MiB))
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, *ENTRY, "put", str(source), "@~/pty/"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=terminal,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        os.close(terminal)
        terminal = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the other side is closed: everything was read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        if terminal != -1:
            os.close(terminal)
        os.close(controller)
    assert done.returncode == 0
    assert b"uploaded" in done.stdout
    text = drawn.decode()
    assert "big.bin" in text and "100%" in text and "24.0 MiB/24.0 MiB" in text and "/s" in text
    assert text.endswith("\r\x1b[K")  # cleared: the result line stands alone on stdout
