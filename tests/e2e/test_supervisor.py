"""The supervisor (issue 3, DESIGN §1 "Supervisor"): recycling on
maximum-requests / restart-interval / inactivity-timeout / memory-limit /
a touched script, request-timeout (504 + stack dump + interrupt),
queue-timeout and listen-backlog (503), deadlock-timeout, graceful reload on
SIGHUP under load, graceful stop, and daemons run as another user."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

import oxhttp
from oxserver import APPS, proc_exists, wait_for

SUPERVISED = '''
import os, re, time

_hog = []

def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    if path == "/sleep":
        time.sleep(float(query or 30))
    elif path == "/spin":
        # Pure Python: an injected exception can interrupt it.
        end = time.time() + float(query or 30)
        while time.time() < end:
            pass
    elif path == "/hog":
        _hog.append(bytearray(int(query) * 1024 * 1024))
    elif path == "/drip":
        start_response("200 OK", [("Content-Type", "text/plain")])
        def drip():
            yield b"start\\n"
            time.sleep(float(query or 30))
            yield b"late\\n"
        return drip()
    elif path == "/gil":
        # Catastrophic backtracking: the regex engine holds the GIL.
        re.match(r"(a+)+$", "a" * 40 + "b")
    body = ("%d %d" % (os.getpid(), os.getuid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def pid_of(port, path="/"):
    r = oxhttp.get(port, path, timeout=30)
    assert r.status == 200, (r.status, r.body[:200])
    return int(r.body.split()[0])


@pytest.fixture
def app_file(tmp_path):
    path = tmp_path / "supervised.py"
    path.write_text(SUPERVISED)
    return path


def site(app_file, **group):
    return {
        "access-log": False,
        "groups": {"g": {"processes": 1, "threads": 2, **group}},
        "mount": [{"path": "/", "script": str(app_file), "group": "g"}],
    }


def test_maximum_requests_recycles(server, app_file):
    srv = server().start_run(site(app_file, **{"maximum-requests": 5}))
    pids = [pid_of(srv.port) for _ in range(16)]
    assert len(set(pids)) >= 3, pids
    # Each process served at most maximum-requests requests.
    runs = [pids.count(p) for p in set(pids)]
    assert max(runs) <= 5, pids


def test_request_timeout_answers_504_dumps_stacks_and_recycles(server, app_file):
    srv = server().start_run(site(app_file, **{"request-timeout": 2}))
    before = pid_of(srv.port)
    mark = srv.stderr_mark()
    t0 = time.monotonic()
    r = oxhttp.get(srv.port, "/sleep?30", timeout=30)
    assert r.status == 504
    assert time.monotonic() - t0 < 15
    log = srv.wait_stderr("in application", mark=mark, timeout=10)
    assert "request-timeout" in log
    after = wait_for(lambda: pid_of(srv.port) != before and pid_of(srv.port))
    assert after and after != before


def test_request_timeout_cuts_a_response_still_streaming(server, app_file):
    # The head went out, so no 504 is possible: the connection is cut at the
    # deadline and the process is recycled, as for any request past it.
    srv = server().start_run(site(app_file, **{"request-timeout": 2}))
    before = pid_of(srv.port)
    mark = srv.stderr_mark()
    t0 = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        sock.sendall(b"GET /drip?30 HTTP/1.1\r\nHost: t\r\n\r\n")
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    assert time.monotonic() - t0 < 15, "the stream outlived request-timeout"
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    assert b"start" in received and b"late" not in received, received
    assert not received.endswith(b"0\r\n\r\n"), "a cut stream must not look complete"
    log = srv.wait_stderr("in drip", mark=mark, timeout=10)
    assert "request-timeout" in log
    assert wait_for(lambda: not proc_exists(before), timeout=15)
    assert pid_of(srv.port) != before


def test_interrupt_timeout_raises_in_the_stuck_thread(server, app_file):
    srv = server().start_run(site(app_file, **{"request-timeout": 1, "interrupt-timeout": 5}))
    before = pid_of(srv.port)
    mark = srv.stderr_mark()
    r = oxhttp.get(srv.port, "/spin?20", timeout=30)
    assert r.status == 504
    log = srv.wait_stderr("RequestTimeout", mark=mark, timeout=10)
    assert "interrupted oxwsgi-thread" in log
    # The interrupted process unwinds and exits well before the spin ends.
    assert wait_for(lambda: not proc_exists(before), timeout=10)
    assert pid_of(srv.port) != before


def test_queue_timeout_answers_503(server, app_file):
    srv = server().start_run(site(app_file, threads=1, **{"queue-timeout": 1}))
    busy = threading.Thread(target=oxhttp.get, args=(srv.port, "/sleep?4"), kwargs={"timeout": 30})
    busy.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    r = oxhttp.get(srv.port, "/", timeout=30)
    assert r.status == 503
    assert 0.8 < time.monotonic() - t0 < 4
    busy.join()
    assert oxhttp.get(srv.port, "/", timeout=30).status == 200


def test_listen_backlog_bounds_the_queue(server, app_file):
    srv = server().start_run(site(app_file, threads=1, **{"listen-backlog": 1}))
    statuses = []
    lock = threading.Lock()

    def call(path, query):
        r = oxhttp.get(srv.port, f"{path}?{query}", timeout=30)
        with lock:
            statuses.append(r.status)

    first = threading.Thread(target=call, args=("/sleep", "3"))
    first.start()
    time.sleep(0.5)
    queued = threading.Thread(target=call, args=("/", ""))
    queued.start()
    time.sleep(0.3)
    call("/", "")  # the queue already holds one request: refused at once
    first.join()
    queued.join()
    assert sorted(statuses) == [200, 200, 503]


def test_restart_interval(server, app_file):
    srv = server().start_run(site(app_file, **{"restart-interval": 2}))
    first = pid_of(srv.port)
    assert wait_for(lambda: pid_of(srv.port) != first, timeout=15)


def test_inactivity_timeout(server, app_file):
    srv = server().start_run(site(app_file, **{"inactivity-timeout": 2}))
    first = pid_of(srv.port)
    time.sleep(3.5)
    assert wait_for(lambda: pid_of(srv.port) != first, timeout=15)


def test_memory_limit(server, app_file):
    srv = server().start_run(site(app_file, **{"memory-limit": "60M"}))
    first = pid_of(srv.port)
    assert oxhttp.get(srv.port, "/hog?100", timeout=30).status == 200
    assert wait_for(lambda: pid_of(srv.port) != first, timeout=15)
    assert "memory-limit" in srv.stderr_text()


def test_deadlock_timeout_exits_a_process_holding_the_gil(server, app_file):
    srv = server().start_run(site(app_file, threads=2, **{"deadlock-timeout": 2}))
    first = pid_of(srv.port)
    mark = srv.stderr_mark()
    r = oxhttp.get(srv.port, "/gil", timeout=60)
    assert r.status == 502
    log = srv.wait_stderr("Timeout", mark=mark, timeout=10)
    assert "in application" in log
    assert wait_for(lambda: pid_of(srv.port) != first, timeout=15)


def test_touching_the_script_restarts_the_group(server, app_file):
    srv = server().start_run(site(app_file, processes=2))
    before = {pid_of(srv.port) for _ in range(20)}
    os.utime(app_file, (time.time() + 10, time.time() + 10))
    assert wait_for(lambda: not ({pid_of(srv.port) for _ in range(10)} & before), timeout=20)
    assert "code changed" in srv.stderr_text()


class Load:
    """Client threads in a loop; every answer recorded."""

    def __init__(self, port, n=8):
        self.port = port
        self.statuses = []
        self.errors = []
        self.pids = set()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(n)]

    def run(self):
        deadline = time.monotonic() + 60
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                r = oxhttp.get(self.port, "/", timeout=30)
                self.statuses.append(r.status)
                if r.status == 200:
                    self.pids.add(int(r.body.split()[0]))
            except Exception as e:  # noqa: BLE001 - a failed request is data
                self.errors.append(repr(e))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def test_sighup_reload_under_load_fails_no_request(server, app_file):
    cfg = site(app_file, processes=1)
    srv = server().start_run(cfg)
    old = pid_of(srv.port)
    with Load(srv.port) as load:
        time.sleep(0.5)
        cfg["groups"]["g"]["processes"] = 2
        srv.write_config({"listen": [f"127.0.0.1:{srv.port}"], **cfg})
        mark = srv.stderr_mark()
        srv.signal(signal.SIGHUP)
        srv.wait_stderr("reload complete", mark=mark, timeout=30)
        time.sleep(1.5)
        # A broken config keeps the running site.
        srv.write_config("listen = [\n")
        mark = srv.stderr_mark()
        srv.signal(signal.SIGHUP)
        srv.wait_stderr("keeping the running site", mark=mark, timeout=30)
        time.sleep(0.5)
    assert load.errors == []
    assert set(load.statuses) == {200}, sorted(set(load.statuses))
    assert len(load.statuses) > 50
    assert old in load.pids
    new = {pid_of(srv.port) for _ in range(30)}
    assert old not in new and len(new) == 2, (old, new)
    assert wait_for(lambda: not proc_exists(old), timeout=20)


def test_sigterm_lets_in_flight_requests_finish(server, app_file):
    srv = server().start_run(site(app_file))
    daemon = pid_of(srv.port)
    result = {}
    slow = threading.Thread(
        target=lambda: result.update(r=oxhttp.get(srv.port, "/sleep?2", timeout=30))
    )
    slow.start()
    time.sleep(0.5)
    srv.signal(signal.SIGTERM)
    assert srv.wait(timeout=20) == 0
    slow.join()
    assert result["r"].status == 200
    assert not proc_exists(daemon)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_daemons_run_as_the_configured_user(server, tmp_path):
    python = shutil.which("python3", path="/usr/bin")
    if not python:
        pytest.skip("no system python readable by other users")
    # A folder every user can read, outside pytest's private tmp dir.
    shared = Path("/tmp") / f"oxwsgi-user-{os.getpid()}"
    shared.mkdir(exist_ok=True)
    shared.chmod(0o755)
    app = shared / "app.py"
    app.write_text(SUPERVISED)
    app.chmod(0o644)
    try:
        cfg = {
            "access-log": False,
            "groups": {"g": {"processes": 1, "threads": 2, "user": "nobody", "python": python, "umask": "0077"}},
            "mount": [{"path": "/", "script": str(app), "group": "g"}],
        }
        srv = server().start_run(cfg)
        r = oxhttp.get(srv.port, "/", timeout=30)
        assert r.status == 200, (r.status, srv.logs_tail())
        pid, uid = map(int, r.body.split())
        assert uid == 65534
        assert srv.pid != pid and os.stat(f"/proc/{srv.pid}").st_uid == 0
    finally:
        shutil.rmtree(shared, ignore_errors=True)
