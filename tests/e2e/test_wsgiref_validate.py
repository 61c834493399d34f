"""Apps wrapped in wsgiref.validate.validator (tests/e2e/apps/validated.py):
PEP 3333 conformance of the server side, checked by the stdlib's own
validator. Any AssertionError or WSGIWarning ends up in the server's error
log; the last test makes sure there is none."""

from __future__ import annotations

import hashlib
import time

import pytest

import oxhttp
from oxserver import APPS

BODY = b"first line\nabcdefgh\n" + b"".join(b"line %05d of the rest\n" % i for i in range(3000))


@pytest.fixture(scope="module")
def vsrv(servers):
    cfg = {
        "groups": {"validated": {"processes": 1, "threads": 4}},
        "mount": [{"path": "/v", "script": str(APPS / "validated.py"), "group": "validated"}],
    }
    return servers("validated").start_run(cfg, ready=["/v/list"])


@pytest.fixture(scope="module")
def start_mark(vsrv):
    # Everything logged from here on comes from the requests below.
    return vsrv.stderr_mark()


def call(srv, method, path, body=b"", headers=None, version="HTTP/1.1"):
    return oxhttp.request(srv.port, method, "/v" + path, headers=headers, body=body, version=version)


def test_list_response(vsrv, start_mark):
    r = call(vsrv, "GET", "/list")
    assert (r.status, r.body, r.complete) == (200, b"list-response", True), r


def test_generator_response(vsrv, start_mark):
    r = call(vsrv, "GET", "/gen")
    assert (r.status, r.body, r.complete) == (200, b"chunk0;chunk1;chunk2;chunk3;chunk4;", True), r


def test_write_callable(vsrv, start_mark):
    r = call(vsrv, "GET", "/write")
    assert (r.status, r.body, r.complete) == (200, b"written-then-returned", True), r


def test_file_wrapper(vsrv, start_mark):
    want = (APPS / "data" / "file_wrapper.txt").read_bytes()
    r = call(vsrv, "GET", "/file")
    assert r.status == 200 and r.complete, r
    assert r.header("content-length") == str(len(want))
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(want).hexdigest()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_input_reading(vsrv, start_mark, framing):
    if framing == "chunked":
        r = call(vsrv, "POST", "/input", body=oxhttp.chunked(BODY, 1000), headers=[("Transfer-Encoding", "chunked")])
    else:
        r = call(vsrv, "POST", "/input", body=BODY)
    assert r.status == 200, r
    rest = BODY[len(b"first line\nabcdefg"):]
    assert r.json() == {
        "first_line": "first line\n",
        "limited": "abcd",
        "part": "efg",
        "rest_sha256": hashlib.sha256(rest).hexdigest(),
        "rest_len": len(rest),
    }


@pytest.mark.parametrize("how", ["readlines", "iter"])
def test_input_lines(vsrv, start_mark, how):
    r = call(vsrv, "POST", "/lines" + ("?iter" if how == "iter" else ""), body=b"a\nbb\n\nccc")
    assert r.status == 200, r
    assert r.json() == ["a\n", "bb\n", "\n", "ccc"]


def test_wsgi_errors_goes_to_error_log(vsrv, start_mark):
    r = call(vsrv, "GET", "/errors")
    assert (r.status, r.body) == (200, b"logged")
    text = vsrv.wait_stderr("validated: writelines 2", start_mark)
    assert "validated: a line for wsgi.errors" in text
    assert "validated: writelines 1" in text


def test_other_status_and_headers(vsrv, start_mark):
    r = call(vsrv, "GET", "/status")
    assert (r.status, r.body, r.header("x-extra")) == (201, b"created", "yes"), r
    r = call(vsrv, "GET", "/empty")
    assert (r.status, r.body) == (204, b""), r


def test_head_and_http10(vsrv, start_mark):
    r = call(vsrv, "HEAD", "/gen")
    assert (r.status, r.body) == (200, b"")
    r = call(vsrv, "GET", "/gen", version="HTTP/1.0")
    assert (r.status, r.body) == (200, b"chunk0;chunk1;chunk2;chunk3;chunk4;")


def test_keepalive_sequence_through_validator(vsrv, start_mark):
    with oxhttp.Conn(vsrv.port) as c:
        for path, want in [("/list", b"list-response"), ("/gen", b"chunk0;chunk1;chunk2;chunk3;chunk4;"),
                           ("/write", b"written-then-returned"), ("/list", b"list-response")]:
            c.send(oxhttp.build_request("GET", "/v" + path))
            r = c.read_response()
            assert (r.status, r.body) == (200, want), r


def test_no_validator_complaints_in_error_log(vsrv, start_mark):
    """Runs last in this module: no AssertionError (from the validator's
    checks or an unclosed iterable's __del__), no WSGIWarning, no
    traceback."""
    # One more request on every thread so that a response object the server
    # still held is released (and its __del__ would have complained).
    for _ in range(8):
        assert call(vsrv, "GET", "/list").status == 200
    time.sleep(0.5)  # grace for log lines of already-finished requests, not a readiness wait
    log = vsrv.stderr_since(start_mark)
    for bad in ("AssertionError", "WSGIWarning", "Traceback", "garbage collected", "Exception ignored"):
        assert bad not in log, f"{bad!r} in the error log:\n{log[-5000:]}"
