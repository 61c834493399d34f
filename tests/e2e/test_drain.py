"""The stop a rolling update needs (issue 18, docs/kubernetes.md): with
`drain-grace`, SIGTERM turns `/healthz` 503 at once while the listeners
keep accepting and serving new connections for the grace (so Kubernetes'
endpoints, or any load balancer, stop sending first; HTTP/1 responses say
`Connection: close` meanwhile); then the graceful
stop lets the request in flight and the one already queued finish, and
the server exits 0.

Timing is observed, never assumed: the tests poll for each state with
generous bounds and only compare the clocks they read."""

from __future__ import annotations

import signal
import socket
import threading
import time

import oxhttp
from oxserver import APPS, binary, free_port, proc_exists, wait_for

GRACE = 6.0  # seconds of drain-grace in the main test
SLOW = 3.0  # seconds each slow request sleeps


def drain_site(admin_port: int, **top) -> dict:
    """One thread for the slow mount, no read-ahead (a second slow request
    waits in the front's queue, visible in /status), and a mount of its own
    for the requests made during the grace."""
    return {
        "access-log": False,
        "admin": f"127.0.0.1:{admin_port}",
        "keep-alive-timeout": 60,
        **top,
        "groups": {
            "slow": {"processes": 1, "threads": 1, "read-ahead": 0, "shutdown-timeout": 30},
            "fast": {"processes": 1, "threads": 2},
        },
        "mount": [
            {"path": "/slow", "script": str(APPS / "info.py"), "group": "slow"},
            {"path": "/fast", "script": str(APPS / "info.py"), "group": "fast"},
        ],
    }


def healthz(admin_port: int) -> oxhttp.Response:
    return oxhttp.get(admin_port, "/healthz", timeout=10)


def queued(admin_port: int, group: str) -> int:
    status = oxhttp.get(admin_port, "/status", timeout=10).json()
    return next(g["queued"] for g in status["groups"] if g["name"] == group)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


def test_sigterm_drains_with_grace_then_exits_0(server):
    admin_port = free_port()
    srv = server("drain").start_run(
        drain_site(admin_port, **{"drain-grace": GRACE}), ready=("/slow/", "/fast/")
    )
    assert wait_for(lambda: healthz(admin_port).status == 200, timeout=30)
    daemons = srv.daemon_pids()

    # A keep-alive connection opened before the signal.
    kept = oxhttp.Conn(srv.port, timeout=30)
    kept.send(oxhttp.build_request("GET", "/fast/before"))
    r = kept.read_response("GET", timeout=30)
    assert r.status == 200 and r.header("connection") is None, r

    results: dict[str, object] = {}

    def slow(token: str):
        try:
            results[token] = oxhttp.get(
                srv.port, "/slow/", headers=[("X-Sleep", str(SLOW)), ("X-Token", token)], timeout=90
            )
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            results[token] = e

    first = threading.Thread(target=slow, args=("inflight",))
    first.start()
    srv.wait_stderr("token=inflight", 0, timeout=30)  # inside the app, holding the thread
    second = threading.Thread(target=slow, args=("queued",))
    second.start()
    assert wait_for(lambda: queued(admin_port, "slow") == 1, timeout=30), "the second request never queued"

    srv.signal(signal.SIGTERM)
    signalled = time.monotonic()

    # /healthz turns 503 at once (the first answer after the signal is
    # processed; bounded generously for a loaded machine).
    r = wait_for(lambda: (lambda r: r if r.status == 503 else None)(healthz(admin_port)), timeout=5, every=0.02)
    assert r and r.status == 503, f"/healthz did not turn 503: {r!r}"
    assert r.body == b"stopping\n"
    assert time.monotonic() - signalled < 5

    # During the grace: fresh connections are accepted and served, and the
    # keep-alive connection still serves its next request.
    served_during_grace = 0
    for i in range(3):
        r = oxhttp.get(srv.port, f"/fast/new-{i}", timeout=30)
        assert r.status == 200, r
        served_during_grace += 1
    # ... and says `Connection: close`, so the client's next request opens
    # a new connection (which the load balancer sends elsewhere once it
    # has caught up), then the server closes it.
    kept.send(oxhttp.build_request("GET", "/fast/kept"))
    r = kept.read_response("GET", timeout=30)
    assert r.status == 200 and r.header("connection") == "close", r
    assert kept.sock.recv(1) == b"", "the kept-alive connection stayed open after Connection: close"
    in_grace = time.monotonic() - signalled
    assert in_grace < GRACE, (
        f"the requests meant for the grace took {in_grace:.1f}s: the test did not run within the grace"
    )
    assert srv.proc.poll() is None, "the server exited during the grace"
    kept.close()

    # Both slow requests finish with 200, then the server exits 0.
    first.join(90)
    second.join(90)
    for token in ("inflight", "queued"):
        r = results.get(token)
        assert isinstance(r, oxhttp.Response) and r.status == 200, f"{token} request: {r!r}"
        assert r.json()["environ"]["HTTP_X_TOKEN"] == token
    assert srv.wait(60) == 0
    assert time.monotonic() - signalled >= GRACE, "the server exited before the drain grace was over"
    err = srv.stderr_text()
    assert "drain-grace: /healthz answers 503" in err, err
    assert "drain-grace over: closing the listeners" in err, err
    assert "starting a replacement" not in err
    assert not proc_exists(srv.pid)
    assert wait_for(lambda: not any(proc_exists(p) for p in daemons), timeout=20), "daemons outlived the front"
    assert refused(srv.port) and refused(admin_port)


def test_a_second_sigterm_ends_the_grace_and_run_flag_sets_it(server):
    """`run --drain-grace` sets the grace (the way for an Apache site file
    too); a second SIGTERM during it stops at once."""
    admin_port = free_port()
    srv = server("drain-flag")
    srv.port = free_port()
    path = srv.write_config({"listen": [f"127.0.0.1:{srv.port}"], **drain_site(admin_port)})
    srv.start([binary(), "run", str(path), "--drain-grace", "300"], ready=("/fast/",))
    assert wait_for(lambda: healthz(admin_port).status == 200, timeout=30)
    srv.signal(signal.SIGTERM)
    assert wait_for(lambda: healthz(admin_port).status == 503, timeout=5, every=0.02)
    assert oxhttp.get(srv.port, "/fast/", timeout=30).status == 200  # still serving
    mark = srv.stderr_mark()
    srv.signal(signal.SIGTERM)
    srv.wait_stderr("received during the drain grace: closing the listeners now", mark, timeout=20)
    assert srv.wait(60) == 0
    assert "new connections are still served for 300s" in srv.stderr_text()


def test_without_drain_grace_the_stop_closes_the_listeners_at_once(server):
    """The default (0) keeps the old behaviour: no grace is logged and the
    server is gone well within what a grace would have held it."""
    admin_port = free_port()
    srv = server("no-drain").start_run(drain_site(admin_port), ready=("/fast/",))
    srv.signal(signal.SIGTERM)
    assert srv.wait(60) == 0
    assert "drain-grace" not in srv.stderr_text()
    assert refused(srv.port)
