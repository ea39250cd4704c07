"""Issue 11 item 11: wrong passwords back off, per user, without hashing; the answer never changes."""

from __future__ import annotations

import threading
import time

import adbc_driver_manager.dbapi as dbapi

from flight.throttle import LoginThrottle
from tests.conftest import connect
from tests.flight.sessionhelp import create_user

WRONG = "Invalid user name or password"


def _can_log_in(running, user: str, password: str) -> bool:
    try:
        with connect(running, user=user, password=password) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchall() == [(1,)]
    except dbapi.ProgrammingError as exc:
        assert WRONG in str(exc)  # the same text, whether the password was checked or not
        return False


def test_wrong_passwords_back_off_through_the_server(start_server):
    running = start_server(login_failures=3, login_backoff_seconds=2, login_backoff_max_seconds=4)
    alice_pw = create_user(running, "alice")
    bob_pw = create_user(running, "bob")
    for _ in range(3):
        assert not _can_log_in(running, "alice", "guess")
    # Within the delay even the right password is refused, with the same message.
    assert not _can_log_in(running, "alice", alice_pw)
    assert _can_log_in(running, "bob", bob_pw)  # other users are unaffected
    assert _can_log_in(running, "root", "root-test-pw")
    time.sleep(2.5)
    assert _can_log_in(running, "alice", alice_pw)
    # The success cleared alice's record: two more wrong passwords do not lock her out.
    for _ in range(2):
        assert not _can_log_in(running, "alice", "guess")
    assert _can_log_in(running, "alice", alice_pw)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_delay_doubles_is_capped_and_skips_the_hash():
    clock = _Clock()
    throttle = LoginThrottle(failures=2, base_delay=1, max_delay=4, clock=clock)
    hashed: list[str] = []

    def wrong() -> bool:
        hashed.append("wrong")
        return False

    delays = []
    for _ in range(6):
        assert not throttle.attempt("root", wrong)
        start = clock.now
        while throttle.blocked("root"):
            assert not throttle.attempt("root", wrong)  # refused, not hashed, not extended
            clock.now += 0.25
        delays.append(clock.now - start)
    assert len(hashed) == 6
    assert delays == [0, 1, 2, 4, 4, 4]  # nothing after the first failure, then doubling, capped
    assert throttle.attempt("root", lambda: True)
    assert not throttle.blocked("root") and throttle.size() == 0


def test_failures_outside_the_window_are_forgotten():
    clock = _Clock()
    throttle = LoginThrottle(failures=2, window_seconds=60, clock=clock)
    throttle.failed("alice")
    clock.now += 61
    throttle.failed("alice")
    assert not throttle.blocked("alice")
    throttle.failed("alice")
    assert throttle.blocked("alice")


def test_sprayed_user_names_do_not_grow_the_table():
    throttle = LoginThrottle(failures=1, max_entries=100)
    for i in range(1000):
        throttle.failed(f"sprayed{i}")
    assert throttle.size() == 100
    throttle.failed("root")
    assert throttle.blocked("root")  # the newest failure is kept, the oldest sprayed one dropped


def test_password_checks_run_a_bounded_number_at_once():
    throttle = LoginThrottle(failures=1000, concurrent_checks=2)
    lock = threading.Lock()
    release = threading.Event()
    running = [0]
    most = [0]

    def check() -> bool:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        release.wait(10)
        with lock:
            running[0] -= 1
        return False

    threads = [threading.Thread(target=throttle.attempt, args=(f"u{i}", check)) for i in range(6)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 10
    while running[0] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # room for a third check to start, were the bound broken
    assert running[0] == 2
    release.set()
    for th in threads:
        th.join()
    assert most[0] == 2
