"""Client commands ``stageflight put|get|ls``: move files between local disk and a stage.

Files never go through Flight: the client asks the server for a presigned URL (``PRESIGN``) over
ADBC and streams the bytes with plain HTTP, so the same code works for the server's own HTTP side
and for object stores that presign natively (S3). Bodies are streamed in chunks, never read whole.
"""

from __future__ import annotations

import argparse
import getpass
import http.client
import json
import os
import re
import ssl
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, TextIO
from urllib.parse import urlsplit

DEFAULT_URI = "grpc://127.0.0.1:31337"
CHUNK_BYTES = 1 << 20
HTTP_TIMEOUT_SECONDS = 600.0
_TLS_ROOT_CERTS_OPTION = "adbc.flight.sql.client_option.tls_root_certs"
_LIST_COLUMNS = ("name", "size", "md5", "last_modified", "creator")
COMMANDS = ("put", "get", "ls")


class CliError(Exception):
    """A problem reported as one line on stderr (exit status 1)."""


# -- options and connection ---------------------------------------------------------------------------


def _parser(command: str) -> argparse.ArgumentParser:
    descriptions = {
        "put": "Upload local files to a stage: put FILE... @~/dir/ (or @~/dir/name for one file).",
        "get": "Download every file under a stage path: get @~/path LOCAL_DIR.",
        "ls": "List the files under a stage path: ls [@~/path].",
    }
    usage = "%(prog)s [options] FILE... @STAGE/PATH" if command == "put" else None
    parser = argparse.ArgumentParser(
        prog=f"stageflight {command}", usage=usage, description=descriptions[command]
    )
    if command == "put":
        parser.add_argument(
            "paths", nargs="+", metavar="PATH", help="local files, then the target @stage/path"
        )
    elif command == "get":
        parser.add_argument("source", metavar="@STAGE/PATH")
        parser.add_argument("local_dir", metavar="LOCAL_DIR", type=Path)
    else:
        parser.add_argument("location", nargs="?", default="@~", metavar="@STAGE/PATH")
    parser.add_argument(
        "--uri",
        default=os.environ.get("STAGEFLIGHT_URI", DEFAULT_URI),
        help=f"Flight SQL server (env STAGEFLIGHT_URI; default {DEFAULT_URI})",
    )
    parser.add_argument(
        "--user",
        default=os.environ.get("STAGEFLIGHT_USER", "root"),
        help="user name (env STAGEFLIGHT_USER; default root)",
    )
    parser.add_argument(
        "--password",
        default=os.environ.get("STAGEFLIGHT_PASSWORD"),
        help="password (env STAGEFLIGHT_PASSWORD; prompted for when absent)",
    )
    parser.add_argument(
        "--tls-root-certs",
        type=Path,
        metavar="FILE",
        help="PEM file with the CA certificates to trust (for grpc+tls:// and https://)",
    )
    return parser


def _connect(opts: argparse.Namespace) -> Any:
    try:
        import adbc_driver_flightsql.dbapi as flightsql  # imported late: `ls --help` stays fast
    except ImportError as exc:
        raise CliError(
            f"the ADBC Flight SQL driver is missing ({exc.name}): "
            "pip install 'adbc-driver-flightsql>=1.10,<2'"
        ) from None

    password = opts.password if opts.password is not None else getpass.getpass(f"Password for {opts.user}: ")
    db_kwargs = {"username": opts.user, "password": password}
    if opts.tls_root_certs is not None:
        db_kwargs[_TLS_ROOT_CERTS_OPTION] = _read_text(opts.tls_root_certs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the driver warns about optional features we do not use
        return flightsql.connect(opts.uri, db_kwargs=db_kwargs, autocommit=True)


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


def _query(conn: Any, sql: str) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        rows: list[dict[str, Any]] = cur.fetch_arrow_table().to_pylist()
        return rows


def _sql_string(text: str) -> str:
    # The quoted form '@~/a b.csv' lets names with spaces or quotes through the statement parser.
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Signed:
    method: str
    headers: dict[str, str]
    url: str


def _presign(conn: Any, upload: bool, ref: str) -> Signed:
    rows = _query(conn, f"PRESIGN {'UPLOAD' if upload else 'DOWNLOAD'} {_sql_string(ref)}")
    if len(rows) != 1:
        raise CliError(f"PRESIGN {ref} returned {len(rows)} rows, expected 1")
    row = rows[0]
    headers = json.loads(row["headers"] or "{}")
    if not isinstance(headers, dict):
        raise CliError(f"PRESIGN {ref} returned headers that are not a JSON object")
    return Signed(str(row["method"]), {str(k): str(v) for k, v in headers.items()}, str(row["url"]))


# -- HTTP -----------------------------------------------------------------------------------------------


def _http_connection(url: str, ca_file: Path | None) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        context = ssl.create_default_context()
        if ca_file is not None:
            context.load_verify_locations(cafile=str(ca_file))  # in addition to the system CAs
        secure = http.client.HTTPSConnection(parts.netloc, timeout=HTTP_TIMEOUT_SECONDS, context=context)
        return secure, target
    if parts.scheme == "http":
        return http.client.HTTPConnection(parts.netloc, timeout=HTTP_TIMEOUT_SECONDS), target
    raise CliError(f"the server returned a URL this client cannot use: {parts.scheme}://...")


def _http_failure(response: http.client.HTTPResponse, what: str) -> CliError:
    text = response.read(500).decode("utf-8", "replace").strip().splitlines()
    detail = f": {text[0]}" if text else ""
    return CliError(f"{what} failed: HTTP {response.status} {response.reason}{detail}")


def _send_put(
    conn: http.client.HTTPConnection,
    target: str,
    signed: Signed,
    source: IO[bytes],
    size: int,
    progress: Progress,
) -> None:
    # putrequest/putheader instead of request(): exactly Host, Content-Length and the signed
    # headers go out, since S3 signatures may cover headers and extra ones can break them.
    conn.putrequest("PUT", target, skip_accept_encoding=True)
    conn.putheader("Content-Length", str(size))
    for name, value in signed.headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    remaining = size
    while remaining > 0:
        # Never more than announced (a growing log file would corrupt the HTTP stream); a file
        # that shrank is an error, and the server discards the short upload.
        chunk = source.read(min(CHUNK_BYTES, remaining))
        if not chunk:
            raise CliError(f"upload of {progress.label} failed: the local file shrank while it was read")
        conn.send(chunk)
        remaining -= len(chunk)
        progress.advance(len(chunk))


def upload(signed: Signed, local: Path, size: int, label: str, ca_file: Path | None) -> None:
    """Stream ``local`` to a presigned PUT URL.

    Raises:
        CliError: the file cannot be read, the connection fails, or the answer is not 2xx.
    """
    conn, target = _http_connection(signed.url, ca_file)
    try:
        with open(local, "rb") as source, Progress(label, size) as progress:
            try:
                _send_put(conn, target, signed, source, size, progress)
            except OSError as exc:
                # The server may have refused early (bad signature) and closed: show its answer.
                raise _early_answer(conn, label) or CliError(f"upload of {label} failed: {exc}") from None
        response = conn.getresponse()
        if not 200 <= response.status < 300:
            raise _http_failure(response, f"upload of {label}")
        response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise CliError(f"upload of {label} failed: {exc}") from None
    finally:
        conn.close()


def _early_answer(conn: http.client.HTTPConnection, label: str) -> CliError | None:
    try:
        response = conn.getresponse()
    except (OSError, http.client.HTTPException):
        return None
    return _http_failure(response, f"upload of {label}") if response.status >= 300 else None


def download(signed: Signed, dest: Path, label: str, expected_size: int, ca_file: Path | None) -> int:
    """Stream a presigned GET into ``dest`` via a temporary file and a rename; returns the size.

    Raises:
        CliError: HTTP error, short body, or a local write problem (no partial file is left).
    """
    conn, target = _http_connection(signed.url, ca_file)
    try:
        conn.request("GET", target, headers=signed.headers)
        response = conn.getresponse()
        if response.status != 200:
            raise _http_failure(response, f"download of {label}")
        total = response.length if response.length is not None else expected_size
        with Progress(label, total) as progress:
            return _write_atomically(dest, _body_chunks(response, progress))
    except (OSError, http.client.HTTPException) as exc:
        raise CliError(f"download of {label} failed: {exc}") from None
    finally:
        conn.close()


def _body_chunks(response: http.client.HTTPResponse, progress: Progress) -> Iterator[bytes]:
    # http.client raises IncompleteRead when the body is shorter than Content-Length.
    while chunk := response.read(CHUNK_BYTES):
        progress.advance(len(chunk))
        yield chunk


def _write_atomically(dest: Path, chunks: Iterator[bytes]) -> int:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name[:40]}.", suffix=".part")
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                written += len(chunk)
        os.replace(temp_name, dest)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return written


# -- progress -------------------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self._started = self._drawn = time.monotonic()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")  # clear the bar: the result line goes to stdout
            self.stream.flush()

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and (now - self._drawn >= 0.1 or self.done >= self.total):
            self._drawn = now
            self.stream.write("\r" + self.render(now - self._started) + "\x1b[K")
            self.stream.flush()

    def render(self, elapsed: float) -> str:
        fraction = min(1.0, self.done / self.total) if self.total > 0 else 1.0
        width = 24
        filled = int(fraction * width)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = max(0, self.total - self.done)
        eta = f" ETA {int(left / rate) // 60}:{int(left / rate) % 60:02d}" if rate > 0 and left else ""
        return (
            f"{self.label[-40:]} [{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%} "
            f"{_human(self.done)}/{_human(self.total)} {_human(rate)}/s{eta}"
        )


def _human(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


# -- stage references ----------------------------------------------------------------------------------


def _check_ref(ref: str) -> str:
    if not ref.startswith("@") or len(ref) < 2:
        raise CliError(f"{ref!r} is not a stage location (expected @~/path or @stage/path)")
    return ref


def _stage_root(ref: str) -> str:
    """``@~/a/b`` -> ``@~``: LIST names are relative to the stage root."""
    return ref.split("/", 1)[0]


def upload_targets(files: Sequence[Path], target: str) -> list[str]:
    """The stage reference each file goes to.

    A target ending in ``/`` or a bare stage (``@~``) is a folder: files keep their basename.
    With exactly one file, any other target is the full file path.
    """
    _check_ref(target)
    as_folder = target.endswith("/") or "/" not in target or len(files) > 1
    if not as_folder:
        return [target]
    folder = target if target.endswith("/") else target + "/"
    return [folder + f.name for f in files]


def local_destination(local_dir: Path, name: str) -> Path:
    """``local_dir/name`` for a LIST name, refusing anything that would land outside ``local_dir``.

    The server validates names, but a client must not trust a server with its file system.
    """
    parts = PurePosixPath(name).parts
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or any(p in ("", ".", "..") for p in parts)
        or name != "/".join(parts)
    ):
        raise CliError(f"refusing to write {name!r}: it would escape {local_dir}")
    dest = local_dir.joinpath(*parts)
    root = os.path.realpath(local_dir)
    if os.path.commonpath([root, os.path.realpath(dest)]) != root:
        raise CliError(f"refusing to write {name!r}: it would escape {local_dir} (symlink)")
    return dest


# -- commands -------------------------------------------------------------------------------------------


def _local_files(paths: Sequence[str]) -> list[tuple[Path, int]]:
    found = []
    for text in paths:
        path = Path(text)
        try:
            info = path.stat()
        except OSError as exc:
            raise CliError(f"{text}: {exc.strerror}") from None
        if not path.is_file():
            raise CliError(f"{text}: not a regular file")
        found.append((path, info.st_size))
    return found


def cmd_put(opts: argparse.Namespace, conn_factory: Callable[[], Any]) -> int:
    if len(opts.paths) < 2:
        raise CliError("put needs at least one local file and a target, e.g. put data.csv @~/dir/")
    *sources, target = opts.paths
    files = _local_files(sources)  # all checked before anything is uploaded
    refs = upload_targets([p for p, _ in files], target)
    with conn_factory() as conn:
        for (path, size), ref in zip(files, refs, strict=True):
            signed = _presign(conn, True, ref)
            upload(signed, path, size, ref, opts.tls_root_certs)
            print(f"{path}  {size} bytes  -> {ref}  uploaded", flush=True)
    return 0


def cmd_get(opts: argparse.Namespace, conn_factory: Callable[[], Any]) -> int:
    source = _check_ref(opts.source)
    root = _stage_root(source)
    with conn_factory() as conn:
        listing = _query(conn, f"LIST {_sql_string(source)}")
        if not listing:
            raise CliError(f"no files at {source}")
        plan = [(row, local_destination(opts.local_dir, row["name"])) for row in listing]
        for row, dest in plan:
            ref = f"{root}/{row['name']}"
            signed = _presign(conn, False, ref)
            size = download(signed, dest, ref, int(row["size"]), opts.tls_root_certs)
            print(f"{ref}  -> {dest}  {size} bytes  downloaded", flush=True)
    return 0


def cmd_ls(opts: argparse.Namespace, conn_factory: Callable[[], Any]) -> int:
    location = _check_ref(opts.location)
    with conn_factory() as conn:
        rows = _query(conn, f"LIST {_sql_string(location)}")
    print(format_table(rows))
    return 0


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """LIST rows as an aligned text table (sizes right-aligned, NULL as empty)."""
    cells = [list(_LIST_COLUMNS)] + [
        ["" if row.get(c) is None else str(row[c]) for c in _LIST_COLUMNS] for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_LIST_COLUMNS))]
    lines = []
    for line in cells:
        padded = [
            text.rjust(w) if col == "size" else text.ljust(w)
            for col, text, w in zip(_LIST_COLUMNS, line, widths, strict=True)
        ]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


_HANDLERS: dict[str, Callable[[argparse.Namespace, Callable[[], Any]], int]] = {
    "put": cmd_put,
    "get": cmd_get,
    "ls": cmd_ls,
}


# ADBC wraps server messages: "UNKNOWN: [FlightSQL] <message>. Detail: Failed (Unknown; Prepare)"
# or "IO: [FlightSQL] <message> (Unavailable; AuthenticateBasicToken). Vendor code: 14".
_ADBC_PREFIX_RE = re.compile(r"^[A-Z_]+: \[FlightSQL\] ")
_ADBC_SUFFIX_RE = re.compile(r"(\. Detail: .*| \([A-Za-z]+; [A-Za-z]+\)\. Vendor code: -?\d+)$")


def _error_text(exc: Exception) -> str:
    """One line from a driver or server error, without the driver's status decorations."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return _ADBC_SUFFIX_RE.sub("", _ADBC_PREFIX_RE.sub("", lines[0])) or lines[0]


def main(command: str, argv: list[str]) -> int:
    """Run ``stageflight <command> <argv...>``; returns the exit status."""
    if command not in _HANDLERS:
        print(
            f"stageflight: unknown command {command!r} (expected one of {', '.join(COMMANDS)})",
            file=sys.stderr,
        )
        return 2
    try:
        opts = _parser(command).parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage or --help
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return _HANDLERS[command](opts, lambda: _connect(opts))
    except CliError as exc:
        print(f"stageflight {command}: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"stageflight {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # driver and server errors: one line, no traceback
        print(f"stageflight {command}: {_error_text(exc)}", file=sys.stderr)
    return 1
