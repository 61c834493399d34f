"""Slow and stalled clients never hold a group's Python threads (issue 15,
items 1 and 2; docs/design.md §9):

* a request body up to `body-buffer-size` is read whole before a thread is
  taken, so slow uploaders hold connections, not threads;
* a body that stalls past the body read timeout (`body-timeout` +
  `body-min-rate`, mod_reqtimeout's `body=` stage) ends with 408, whether it
  was still being buffered or already streaming to the application, and the
  daemon is not recycled for it;
* a response is taken off the daemon up to `response-buffer-size` past its
  window, so a client that never reads it does not hold the thread; past
  that bound the daemon waits for the client (the bound is real).
"""

from __future__ import annotations

import socket
import threading
import time

import oxhttp
from oxserver import free_port, wait_for
from test_admin import Admin, metric

APP = '''
import os

def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/upload":
        inp = environ["wsgi.input"]
        n = 0
        while True:
            piece = inp.read(65536)
            if not piece:
                break
            n += len(piece)
        body = b"%d" % n
    elif path == "/big":
        size = int(environ.get("QUERY_STRING") or 0)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))])
        piece = b"x" * 65536
        return (piece[: min(65536, size - i)] for i in range(0, size, 65536))
    else:
        body = b"%d" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def site(app_file, admin_port, **top):
    return {
        "access-log": False,
        "admin": f"127.0.0.1:{admin_port}",
        **top,
        "groups": {"g": {"processes": 1, "threads": 2, "read-ahead": 0}},
        "mount": [{"path": "/", "script": str(app_file), "group": "g"}],
    }


def start(server, tmp_path, **top):
    app_file = tmp_path / "slow_app.py"
    app_file.write_text(APP)
    admin_port = free_port()
    srv = server().start_run(site(app_file, admin_port, **top), ready=("/hello",))
    return srv, Admin(admin_port)


def busy(admin) -> int:
    return admin.status()["groups"][0]["busy"]


def slow_upload(port: int, total: int, first: int) -> socket.socket:
    """A POST of `total` bytes of which only `first` are sent."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % total
        + b"a" * first
    )
    return s


def read_status(s: socket.socket, timeout: float = 30.0) -> int:
    s.settimeout(timeout)
    data = b""
    while b"\r\n" not in data:
        piece = s.recv(4096)
        if not piece:
            break
        data += piece
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data.split()[1])


def test_slow_uploads_hold_connections_not_threads(server, tmp_path):
    # The body deadline: 3 s plus 1 s per 100 000 bytes received.
    srv, admin = start(server, tmp_path, **{"body-timeout": 3, "body-min-rate": 100_000})
    pid = int(oxhttp.get(srv.port, "/hello").body)
    stop = threading.Event()
    clients = [slow_upload(srv.port, 200_000, 70_000) for _ in range(6)]

    def trickle():
        while not stop.wait(0.5):
            for s in clients:
                try:
                    s.send(b"a")
                except OSError:
                    pass

    dripper = threading.Thread(target=trickle, daemon=True)
    dripper.start()
    try:
        # Six uploads in progress on a group of two threads: none is taken.
        for _ in range(5):
            r = oxhttp.get(srv.port, "/hello", timeout=10)
            assert r.status == 200 and int(r.body) == pid, r
            assert busy(admin) == 0
        # Each stalled body ends with 408 once its deadline passes.
        assert [read_status(s) for s in clients] == [408] * 6
    finally:
        stop.set()
        dripper.join(10)
        for s in clients:
            s.close()
    assert int(oxhttp.get(srv.port, "/hello").body) == pid
    assert sum(admin.status()["groups"][0]["restarts_by_reason"].values()) == 0
    # A body that keeps the rate is read whole and reaches the app.
    r = oxhttp.request(srv.port, "POST", "/upload", body=b"b" * 300_000)
    assert r.status == 200 and r.body == b"300000", r


def test_a_streamed_body_that_stalls_is_408_and_frees_the_thread(server, tmp_path):
    srv, admin = start(
        server,
        tmp_path,
        **{"body-timeout": 2, "body-min-rate": 1_000_000, "body-buffer-size": 65536},
    )
    pid = int(oxhttp.get(srv.port, "/hello").body)
    # Past the 64 KiB buffer, the body streams to the app, which waits in
    # wsgi.input.read() for the rest until the deadline cuts it off.
    stalled = [slow_upload(srv.port, 400_000, 150_000) for _ in range(2)]
    try:
        assert wait_for(lambda: busy(admin) == 2, timeout=20), admin.status()
        assert [read_status(s) for s in stalled] == [408, 408]
    finally:
        for s in stalled:
            s.close()
    assert wait_for(lambda: busy(admin) == 0, timeout=20), admin.status()
    assert int(oxhttp.get(srv.port, "/hello").body) == pid
    assert sum(admin.status()["groups"][0]["restarts_by_reason"].values()) == 0
    assert "request body stalled" in srv.stderr_text()


def unread_get(port: int, target: str) -> socket.socket:
    """A GET whose response is never read (small receive buffer)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % target.encode())
    return s


def test_unread_responses_are_taken_off_the_daemon(server, tmp_path):
    srv, admin = start(server, tmp_path)
    readers = [unread_get(srv.port, "/big?8000000") for _ in range(4)]
    try:
        # Four 8 MB answers nobody reads, on two threads: all were taken
        # off the daemon, which serves others at once.
        assert wait_for(lambda: busy(admin) == 0, timeout=30), admin.status()
        t0 = time.monotonic()
        assert oxhttp.get(srv.port, "/hello", timeout=10).status == 200
        assert time.monotonic() - t0 < 5
        # And the client that reads at last gets every byte.
        s = readers[0]
        total = 0
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(65536)
        total = len(head.split(b"\r\n\r\n", 1)[1])
        while total < 8_000_000:
            piece = s.recv(1 << 20)
            assert piece, total
            total += len(piece)
        assert total == 8_000_000
    finally:
        for s in readers:
            s.close()


def test_past_response_buffer_size_the_daemon_waits_for_the_client(server, tmp_path):
    srv, admin = start(server, tmp_path, **{"response-buffer-size": "1M"})
    readers = [unread_get(srv.port, "/big?40000000") for _ in range(2)]
    try:
        # 40 MB is past the window, the buffer and what the sockets hold:
        # both threads wait for their clients.
        assert wait_for(lambda: busy(admin) == 2, timeout=20), admin.status()
        time.sleep(1)
        assert busy(admin) == 2
    finally:
        for s in readers:
            s.close()
    # Clients gone: the threads are free again.
    assert wait_for(lambda: busy(admin) == 0, timeout=30), admin.status()
