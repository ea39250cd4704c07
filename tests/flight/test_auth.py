"""Authentication: Basic -> Bearer, refused credentials and tokens, TLS."""

from __future__ import annotations

import datetime
import ipaddress
import time

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager.dbapi as dbapi
import pyarrow.flight as flight
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import ROOT_PASSWORD, connect
from tests.flight.rawclient import RawClient


def test_handshake_returns_bearer_token(server):
    client = flight.FlightClient(server.uri)
    name, value = client.authenticate_basic_token(b"root", ROOT_PASSWORD.encode())
    assert name == b"authorization"
    assert value.startswith(b"Bearer ") and len(value) > 40
    client.close()


def test_unpadded_basic_credentials_are_accepted(server):
    # The Go driver (ADBC) sends base64 without '=' padding; this password needs padding.
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user IS NOT NULL")
        assert cur.fetchall() == [(True,)]


def test_wrong_password_is_refused(server):
    with pytest.raises(dbapi.ProgrammingError, match="Invalid user name or password"):
        connect(server, password="wrong")


def test_unknown_user_is_refused(server):
    with pytest.raises(dbapi.ProgrammingError, match="Invalid user name or password"):
        connect(server, user="nobody_here", password="x")


def test_forged_token_is_refused(server):
    conn = flightsql.connect(
        server.uri,
        db_kwargs={
            adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer forged-token-value",
        },
        autocommit=True,
    )
    with pytest.raises(dbapi.Error, match="Invalid or expired token"):
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    conn.close()


def test_missing_credentials_are_refused(server):
    client = flight.FlightClient(server.uri)
    with pytest.raises(flight.FlightUnauthenticatedError, match="Authentication required"):
        list(client.list_actions())
    client.close()


def test_bearer_token_from_handshake_works_for_another_connection(server):
    raw = RawClient(server.uri, "root", ROOT_PASSWORD)
    conn = flightsql.connect(
        server.uri,
        db_kwargs={
            adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: raw.token,
        },
        autocommit=True,
    )
    with conn.cursor() as cur:
        cur.execute("SELECT 7")
        assert cur.fetchall() == [(7,)]
    conn.close()
    raw.close()


def test_tokens_expire(start_server):
    running = start_server(token_ttl_seconds=1)
    raw = RawClient(running.uri, "root", ROOT_PASSWORD)
    assert raw.query("SELECT 1 AS a").num_rows == 1
    time.sleep(2.2)
    # An expired token says so (it was valid once); a made-up one is merely invalid.
    with pytest.raises(flight.FlightUnauthenticatedError, match="Token expired: connect again"):
        raw.query("SELECT 1 AS a")
    raw.close()


def test_password_change_revokes_tokens(server, make_user):
    name, password = make_user()
    raw = RawClient(server.uri, name, password)
    assert raw.query("SELECT 1 AS a").num_rows == 1
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute(f"ALTER USER {name} IDENTIFIED BY 'new-password-1'")
    with pytest.raises(flight.FlightUnauthenticatedError, match="Invalid or expired token: connect again"):
        raw.query("SELECT 1 AS a")
    with pytest.raises(dbapi.ProgrammingError, match="Invalid user name or password"):
        connect(server, user=name, password=password)
    with connect(server, user=name, password="new-password-1") as conn, conn.cursor() as cur:
        cur.execute("SELECT 3")
        assert cur.fetchall() == [(3,)]
    raw.close()


def _self_signed() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def test_tls_with_self_signed_certificate(start_server, tmp_path):
    cert, key = _self_signed()
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    running = start_server(tls_cert=tmp_path / "cert.pem", tls_key=tmp_path / "key.pem")
    assert running.uri.startswith("grpc+tls://")
    conn = flightsql.connect(
        running.uri,
        db_kwargs={
            "username": "root",
            "password": ROOT_PASSWORD,
            adbc_driver_flightsql.DatabaseOptions.TLS_ROOT_CERTS.value: cert.decode(),
        },
        autocommit=True,
    )
    with conn.cursor() as cur:
        cur.execute("SELECT 'secure' AS s")
        assert cur.fetchall() == [("secure",)]
    conn.close()
    # A client that does not trust the certificate cannot connect.
    with pytest.raises(dbapi.OperationalError, match="tls: failed to verify certificate"):
        flightsql.connect(running.uri, db_kwargs={"username": "root", "password": ROOT_PASSWORD})
    # Plaintext gRPC against the TLS port fails too.
    plain = flight.FlightClient(running.uri.replace("grpc+tls", "grpc"))
    # gRPC's wording for a handshake stream that the TLS port closed before it could be written.
    with pytest.raises(flight.FlightInternalError, match="Could not finish writing before closing"):
        plain.authenticate_basic_token(b"root", ROOT_PASSWORD.encode())
