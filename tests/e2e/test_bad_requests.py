"""DESIGN §7 for requests the front must refuse itself: 400 (connection
closed) for malformed requests, 414 / 431 for the Apache limits. The app
must never be called. (The HTTP corpus accepts "closed without a response"
for bad input, as its README allows; this module holds the server to the
exact DESIGN answers.)"""

from __future__ import annotations

import pytest

import oxhttp
from oxserver import APPS


@pytest.fixture(scope="module")
def badsrv(servers):
    cfg = {
        "groups": {"rec": {"processes": 1, "threads": 2}},
        "mount": [{"path": "/", "script": str(APPS / "recorder.py"), "group": "rec"}],
    }
    return servers("bad-requests").start_run(cfg, ready=["/__health__"])


H = b"Host: t\r\n"
CASES = {
    "http11-without-host": (b"GET /x HTTP/1.1\r\n\r\n", 400),
    "two-host-fields": (b"GET /x HTTP/1.1\r\n" + H + b"Host: u\r\n\r\n", 400),
    "conflicting-content-length": (b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    "content-length-and-chunked": (b"POST /x HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "bad-version": (b"GET /x FTP/1.1\r\n" + H + b"\r\n", 400),
    "control-char-in-value": (b"GET /x HTTP/1.1\r\n" + H + b"X-V: a\x07b\r\n\r\n", 400),
    "bad-chunk-size": (b"POST /x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
    "obs-fold": (b"GET /x HTTP/1.1\r\n" + H + b"X-V: a\r\n b\r\n\r\n", 400),
    "chunk-size-trailing-space": (b"POST /x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0 \r\n\r\n", 400),
    "asterisk-form-get": (b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    "authority-form-get": (b"GET example.com:443 HTTP/1.1\r\n" + H + b"\r\n", 400),
    "space-before-colon": (b"GET /x HTTP/1.1\r\n" + H + b"X-V : 1\r\n\r\n", 400),
    "request-line-8191": (b"GET /" + b"a" * 8177 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    # Whatever its length (issue 15: hyper's ~400 KB buffer used to answer 431).
    "request-line-300k": (b"GET /" + b"a" * 300_000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    "request-line-500k": (b"GET /" + b"a" * 500_000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    "request-line-1m": (b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    "request-line-1m-unfinished": (b"GET /" + b"a" * (1 << 20), 414),
    "header-line-8191": (b"GET /x HTTP/1.1\r\n" + H + b"X-Long: " + b"b" * 8183 + b"\r\n\r\n", 431),
    "101-header-fields": (b"GET /x HTTP/1.1\r\n" + H + b"".join(b"X-H%d: v\r\n" % i for i in range(100)) + b"\r\n", 431),
}


def test_limits_at_the_edge_are_accepted(badsrv):
    """Exactly at Apache's limits: request line 8190 bytes, header line 8190
    bytes, 100 header fields."""
    line = b"GET /" + b"a" * 8176 + b" HTTP/1.1"
    assert len(line) == 8190
    hdr = b"X-Long: " + b"b" * 8182
    assert len(hdr) == 8190
    for req in (line + b"\r\n" + H + b"Connection: close\r\n\r\n",
                b"GET /x HTTP/1.1\r\n" + H + hdr + b"\r\nConnection: close\r\n\r\n",
                b"GET /x HTTP/1.1\r\n" + H + b"".join(b"X-H%d: v\r\n" % i for i in range(98))
                + b"Connection: close\r\n\r\n"):
        with oxhttp.Conn(badsrv.port) as c:
            c.send(req)
            r = c.read_response()
            assert r.status == 200, r


@pytest.mark.parametrize("name", list(CASES))
def test_refused_by_the_front(badsrv, name):
    data, status = CASES[name]
    before = oxhttp.get(badsrv.port, "/__calls__?since=999999999").json()["count"]
    with oxhttp.Conn(badsrv.port, timeout=10) as c:
        c.send(data)
        try:
            r = c.read_response(timeout=10)
        except oxhttp.ConnectionClosed:
            r = None
        closed = c.wait_closed(5)
    after = oxhttp.get(badsrv.port, "/__calls__?since=999999999").json()["count"]
    assert after == before, "the app must not be called"
    assert r is not None, f"no {status} response: the connection was closed without one"
    assert r.status == status, r
    assert closed, "the connection must be closed after the error"


def test_an_overlong_request_line_after_a_pipelined_request(badsrv):
    """The request before it is answered in full, then the 414."""
    first = b"GET /first HTTP/1.1\r\n" + H + b"\r\n"
    long_line = b"GET /" + b"a" * 500_000 + b" HTTP/1.1\r\n" + H + b"\r\n"
    with oxhttp.Conn(badsrv.port, timeout=10) as c:
        c.send(first + long_line)
        r1 = c.read_response(timeout=10)
        r2 = c.read_response(timeout=10)
        assert c.wait_closed(5)
    assert r1.status == 200, r1
    assert r2.status == 414, r2
