"""wsgi.file_wrapper over a regular file: the daemon passes the descriptor
to the front (a ResponseFile frame with SCM_RIGHTS), the front reads the
file and the daemon thread is free at once (design §9)."""

from __future__ import annotations

import hashlib
import os
import time
from urllib.parse import quote

import pytest
import requests

import oxhttp
from oxserver import APPS, wait_for

MiB = 1 << 20


@pytest.fixture(scope="module")
def fwsrv(servers):
    # One daemon thread: a request that kept it busy would block the next.
    cfg = {
        "groups": {"fw": {"processes": 1, "threads": 1}},
        "mount": [
            {"path": "/fw", "script": str(APPS / "file_wrapper_app.py"), "group": "fw"},
            # The same app in a sub-interpreter (its own FileWrapper class).
            {"path": "/sub", "script": str(APPS / "file_wrapper_app.py"), "group": "fw", "application-group": "sub"},
        ],
    }
    return servers("fw").start_run(cfg, ready=["/fw/hello", "/sub/hello"])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return tmp_path_factory.mktemp("fw")


def data_file(path, size: int) -> bytes:
    seed = hashlib.sha256(b"file-wrapper").digest()
    block = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(2048))  # 64 KiB
    data = (block * (size // len(block) + 1))[:size]
    path.write_bytes(data)
    return data


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.parametrize("mount", ["/fw", "/sub"])
def test_daemon_thread_is_free_while_the_file_is_sent(fwsrv, files, mount):
    """A client that does not read a 64 MiB file_wrapper body does not hold
    the group's only daemon thread: the next request is served at once.
    (When the daemon sent the bytes itself, its thread stayed busy until the
    client had taken all but the socket buffers' worth.)"""
    big = files / "big.bin"
    if not big.exists():
        with open(big, "wb") as f:
            f.truncate(64 * MiB)  # sparse: cheap to make
    with oxhttp.Conn(fwsrv.port) as stalled:
        stalled.send(oxhttp.build_request("GET", mount + "/file?path=" + quote(str(big))))
        _, status, _, headers = stalled.read_head(deadline=time.monotonic() + 10)
        assert status == 200
        assert dict((k.lower(), v) for k, v in headers)["content-length"] == str(64 * MiB)
        for _ in range(3):
            started = time.monotonic()
            r = requests.get(fwsrv.url("/fw/hello"), timeout=10)
            assert (r.status_code, r.content) == (200, b"hello")
            assert time.monotonic() - started < 5
        # The stalled transfer still completes, byte for byte, once read.
        got = 0
        deadline = time.monotonic() + 60
        while got < 64 * MiB:
            if stalled.buf:
                got += len(stalled.buf)
                stalled.buf.clear()
            elif not stalled._fill(deadline):
                break
        assert got == 64 * MiB


@pytest.mark.parametrize("mount", ["/fw", "/sub"])
@pytest.mark.parametrize("how", ["read", "seek"])
@pytest.mark.parametrize("skip", [1, 100, 70000, 3 * MiB - 1, 3 * MiB])
def test_file_wrapper_from_a_position(fwsrv, files, how, skip, mount):
    """A file object the app read from (buffered: its descriptor is further
    on than tell()) or seeked sends from its Python-level position."""
    path = files / "three.bin"
    if not path.exists():
        data_file(path, 3 * MiB)
    data = path.read_bytes()
    r = requests.get(fwsrv.url(f"{mount}/file?path={quote(str(path))}&skip={skip}&how={how}"), timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(len(data) - skip)
    assert len(r.content) == len(data) - skip
    assert r.content == data[skip:]


def test_head_of_a_file_wrapper(fwsrv, files):
    path = files / "head.bin"
    data_file(path, MiB + 5)
    with oxhttp.Conn(fwsrv.port) as c:
        c.send(oxhttp.build_request("HEAD", "/fw/file?path=" + quote(str(path)) + "&skip=5"))
        r = c.read_response("HEAD", timeout=10)
        assert r.status == 200 and r.body == b""
        assert r.header("Content-Length") == str(MiB)
        c.send(oxhttp.build_request("GET", "/fw/hello"))
        assert c.read_response(timeout=10).body == b"hello"


def test_a_file_that_shrinks_ends_the_response_truncated(fwsrv, files):
    """The app's file shrinks once it is closed (right after the daemon
    passed it on): the client gets a short body and a closed connection,
    not a hang; the daemon thread serves the next request."""
    path = files / "shrinks.bin"
    data = data_file(path, 64 * MiB)
    with oxhttp.Conn(fwsrv.port) as c:
        c.send(oxhttp.build_request("GET", "/fw/shrink?path=" + quote(str(path))))
        _, status, _, headers = c.read_head(deadline=time.monotonic() + 10)
        assert status == 200
        assert dict((k.lower(), v) for k, v in headers)["content-length"] == str(len(data))
        body = c.read_until_close(deadline=time.monotonic() + 30)
    assert len(body) < len(data)
    assert body == data[: len(body)]
    r = requests.get(fwsrv.url("/fw/hello"), timeout=10)
    assert r.content == b"hello"


def test_close_failing_after_the_file_was_handed_over(fwsrv, files):
    """The result's close() raises once the daemon has passed the file on:
    the traceback is logged, the file still arrives whole (as when the
    daemon sent body frames before the failing close()), and the slot and
    the connection serve on."""
    path = files / "close-raises.bin"
    data = data_file(path, MiB + 17)
    mark = fwsrv.stderr_mark()
    with oxhttp.Conn(fwsrv.port) as c:
        for _ in range(2):
            c.send(oxhttp.build_request("GET", "/fw/close-raises?path=" + quote(str(path))))
            r = c.read_response(timeout=30)
            assert r.status == 200 and r.body == data
        c.send(oxhttp.build_request("GET", "/fw/hello"))
        assert c.read_response(timeout=10).body == b"hello"
    fwsrv.wait_stderr("close() failing on purpose", mark=mark)


def test_no_descriptor_leak(fwsrv, files):
    """Many file_wrapper responses, some abandoned by their client, leave
    the front's and the daemon's descriptor counts where they were."""
    path = files / "leak.bin"
    data = data_file(path, 600 * 1024)
    target = "/fw/file?path=" + quote(str(path))
    (daemon,) = fwsrv.daemon_pids()
    requests.get(fwsrv.url(target), timeout=10)  # warm up
    front_before, daemon_before = fd_count(fwsrv.pid), fd_count(daemon)
    with requests.Session() as s:
        for _ in range(150):
            r = s.get(fwsrv.url(target), timeout=10)
            assert r.content == data
    for _ in range(50):
        # The client reads the head and hangs up mid-body.
        with oxhttp.Conn(fwsrv.port) as c:
            c.send(oxhttp.build_request("GET", target))
            c.read_head(deadline=time.monotonic() + 10)
    for _ in range(20):
        # HEAD: the descriptor is never passed.
        r = oxhttp.request(fwsrv.port, "HEAD", target)
        assert r.status == 200
    assert requests.get(fwsrv.url("/fw/hello"), timeout=10).content == b"hello"
    assert wait_for(lambda: fd_count(fwsrv.pid) <= front_before, timeout=10), (
        f"front descriptors {front_before} -> {fd_count(fwsrv.pid)}: {sorted(os.listdir(f'/proc/{fwsrv.pid}/fd'))}"
    )
    assert wait_for(lambda: fd_count(daemon) <= daemon_before, timeout=10), (
        f"daemon descriptors {daemon_before} -> {fd_count(daemon)}"
    )


def test_file_wrapper_answering_a_streamed_request_body(fwsrv, files):
    """A request body over 64 KiB streams to the daemon (a body pump holds
    the slot's write half); the app reads it, then answers with a file.
    Every answer is whole and the group's only slot keeps serving."""
    path = files / "post.bin"
    data = data_file(path, 300 * 1024 + 3)
    target = "/fw/file?drain=1&path=" + quote(str(path))
    for _ in range(3):
        r = requests.post(fwsrv.url(target), data=b"u" * (3 * MiB), timeout=30)
        assert r.status_code == 200 and r.content == data
    assert requests.get(fwsrv.url("/fw/hello"), timeout=10).content == b"hello"
