"""Wires configuration, engine, Flight server and HTTP side together (used by the CLI and the tests)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pyarrow.flight as flight

from engine import Engine
from flight.config import ServerConfig
from flight.http import HttpSide
from flight.server import StageflightServer
from flight.sessions import SessionLimits
from flight.throttle import LoginThrottle

log = logging.getLogger("stageflight")


@dataclass
class RunningServer:
    config: ServerConfig
    engine: Engine
    flight_server: StageflightServer
    http: HttpSide | None
    generated_root_password: str | None

    @property
    def port(self) -> int:
        return int(self.flight_server.port)

    @property
    def scheme(self) -> str:
        return "grpc+tls" if self.config.tls else "grpc"

    @property
    def uri(self) -> str:
        return f"{self.scheme}://{self.config.host}:{self.port}"

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
        self.flight_server.shutdown()
        self.engine.close()


def session_limits(config: ServerConfig) -> SessionLimits:
    return SessionLimits(
        max_sessions=config.max_sessions,
        per_user=config.max_sessions_per_user,
        idle_seconds=config.session_idle_seconds,
        unused_seconds=config.unused_session_seconds,
        result_ttl=config.result_ttl_seconds,
        unread_results_per_user=config.max_unread_results_per_user,
    )


def login_throttle(config: ServerConfig, engine: Engine) -> LoginThrottle:
    return LoginThrottle(
        failures=config.login_failures,
        window_seconds=config.login_failure_window_seconds,
        base_delay=config.login_backoff_seconds,
        max_delay=config.login_backoff_max_seconds,
        concurrent_checks=config.concurrent_password_checks,
        shared=engine.shared_login_failures(),
    )


def start(config: ServerConfig) -> RunningServer:
    engine = Engine(config.engine_config())
    generated = engine.users.ensure_root(config.root_password)
    tls = None
    if config.tls_cert and config.tls_key:
        tls = [flight.CertKeyPair(config.tls_cert.read_bytes(), config.tls_key.read_bytes())]
    scheme = "grpc+tls" if tls else "grpc"
    server = StageflightServer(
        f"{scheme}://{config.host}:{config.port}",
        engine,
        token_ttl=config.token_ttl_seconds,
        session_idle=config.session_idle_seconds,
        result_ttl=config.result_ttl_seconds,
        max_sessions=config.max_sessions,
        tls_certificates=tls,
        limits=session_limits(config),
        token_max_lifetime=config.token_max_lifetime_seconds,
        login_throttle=login_throttle(config, engine),
    )
    http = None
    if config.http_port >= 0:
        http = HttpSide(config.host, config.http_port, server.metrics, health=engine.db.health)
        base_url = config.public_url or f"http://{config.host}:{http.port}"
        http.route_prefix("/files/", engine.enable_local_presign(base_url))
        http.start()
    return RunningServer(config, engine, server, http, generated)
