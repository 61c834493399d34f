"""Bodies and framing: big uploads (Content-Length and chunked), big
downloads (generator and wsgi.file_wrapper), Expect: 100-continue,
wsgi.input operations, HEAD, Content-Length vs chunked vs close-delimited
responses, keep-alive, pipelining, limit-request-body."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import time
from urllib.parse import quote

import pytest
import requests

import oxhttp
from oxserver import APPS

MiB = 1 << 20
CHUNK = 65536
PATTERN = bytes(range(256)) * (CHUNK // 256)


def stream_sha256(total: int) -> str:
    """sha256 of what io_app.stream(total) yields (same definition)."""
    h = hashlib.sha256()
    i = sent = 0
    while sent < total:
        n = min(CHUNK, total - sent)
        h.update((struct.pack(">Q", i) + PATTERN[8:])[:n])
        sent += n
        i += 1
    return h.hexdigest()


def upload_data(size: int) -> bytes:
    # Pseudo-random but reproducible, not compressible, cheap to make.
    seed = hashlib.sha256(b"oxwsgi-upload").digest()
    block = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(4096))  # 128 KiB
    reps = size // len(block) + 1
    return (block * reps)[:size]


@pytest.fixture(scope="module")
def iosrv(servers):
    cfg = {
        "groups": {"io": {"processes": 1, "threads": 4}},
        "mount": [
            {"path": "/io", "script": str(APPS / "io_app.py"), "group": "io"},
            {"path": "/small", "script": str(APPS / "io_app.py"), "group": "io", "limit-request-body": 1000},
        ],
    }
    return servers("io").start_run(cfg, ready=["/io/frame/list1", "/small/frame/list1"])


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("files") / "fifty.bin"
    with open(p, "wb") as f:
        for i in range(50):
            f.write(upload_data(MiB) if i == 0 else hashlib.sha256(bytes([i])).digest() * (MiB // 32))
    return p


# ---------------------------------------------------------------- uploads
def test_upload_20mib_content_length(iosrv):
    data = upload_data(20 * MiB)
    r = requests.post(iosrv.url("/io/upload"), data=data, timeout=120)
    assert r.status_code == 200, r.text
    j = r.json()
    assert (j["len"], j["sha256"], j["content_length"]) == (len(data), hashlib.sha256(data).hexdigest(), str(len(data)))


def test_upload_20mib_chunked(iosrv):
    data = upload_data(20 * MiB)

    def gen():
        for i in range(0, len(data), 100_000):  # uneven chunk sizes on the wire
            yield data[i : i + 100_000]

    r = requests.post(iosrv.url("/io/upload"), data=gen(), timeout=120)
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code == 200, r.text
    j = r.json()
    assert (j["len"], j["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())


def test_expect_100_continue(iosrv):
    data = upload_data(1 * MiB)
    with oxhttp.Conn(iosrv.port) as c:
        c.send(oxhttp.build_request("POST", "/io/upload", [("Content-Length", str(len(data))),
                                                           ("Expect", "100-continue")]))
        version, status, reason, headers = c.read_head(deadline=None)
        assert status == 100, f"expected 100 Continue before the body is sent, got {status} {reason}"
        c.send(data)
        r = c.read_response("POST", timeout=60)
    assert r.status == 200, r
    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()


def test_expect_100_continue_on_unmatched_path(iosrv):
    with oxhttp.Conn(iosrv.port) as c:
        c.send(oxhttp.build_request("POST", "/nowhere", [("Content-Length", "10"), ("Expect", "100-continue"),
                                                         ("Connection", "close")]))
        r = c.read_response("POST", timeout=30)
    assert r.status == 404, r


def test_limit_request_body_413(iosrv):
    r = oxhttp.request(iosrv.port, "POST", "/small/upload", body=b"x" * 2000)
    assert r.status == 413, r
    r = oxhttp.request(iosrv.port, "POST", "/small/upload", body=b"x" * 999)
    assert r.status == 200 and r.json()["len"] == 999, r
    # A chunked body over the limit, sent slowly (the front finds out while
    # reading it): 413, and the connection closed.
    with oxhttp.Conn(iosrv.port) as c:
        c.send(oxhttp.build_request("POST", "/small/upload", [("Transfer-Encoding", "chunked")]))
        body = oxhttp.chunked(b"y" * 3000, 500)
        for i in range(0, len(body), 300):
            try:
                c.send(body[i : i + 300])
            except OSError:
                break  # the front stopped reading: fine
            time.sleep(0.05)
        r = c.read_response("POST")
    assert r.status == 413, r


def test_limit_request_body_413_chunked_sent_at_once(iosrv):
    """The same body in one write: the 413 must still reach the client (the
    front must not reset the connection with unread request bytes pending;
    Apache's lingering close)."""
    r = oxhttp.request(iosrv.port, "POST", "/small/upload", body=oxhttp.chunked(b"y" * 3000, 500),
                       headers=[("Transfer-Encoding", "chunked")])
    assert r.status == 413, r


# ---------------------------------------------------------------- downloads
@pytest.mark.parametrize("route", ["gen", "gen-cl"])
def test_download_50mib_generator(iosrv, route):
    size = 50 * MiB
    h = hashlib.sha256()
    n = 0
    with requests.get(iosrv.url(f"/io/download/{route}?size={size}"), stream=True, timeout=120) as r:
        assert r.status_code == 200
        if route == "gen":
            assert r.headers.get("Transfer-Encoding") == "chunked"
        else:
            assert r.headers.get("Content-Length") == str(size)
        for piece in r.raw.stream(1 << 20, decode_content=False):
            h.update(piece)
            n += len(piece)
    assert n == size
    assert h.hexdigest() == stream_sha256(size)


def test_download_50mib_file_wrapper(iosrv, big_file):
    want = hashlib.sha256(big_file.read_bytes()).hexdigest()
    h = hashlib.sha256()
    n = 0
    with requests.get(iosrv.url(f"/io/download/file?path={quote(str(big_file))}"), stream=True, timeout=120) as r:
        assert r.status_code == 200
        assert r.headers.get("Content-Length") == str(big_file.stat().st_size)
        for piece in r.raw.stream(1 << 20, decode_content=False):
            h.update(piece)
            n += len(piece)
    assert n == big_file.stat().st_size
    assert h.hexdigest() == want


def test_file_wrapper_then_keepalive(iosrv):
    """After a file_wrapper response (possibly sent with sendfile) the same
    connection serves the next request correctly."""
    want = (APPS / "data" / "file_wrapper.txt").read_bytes()
    with oxhttp.Conn(iosrv.port) as c:
        for _ in range(3):
            c.send(oxhttp.build_request("GET", "/io/download/file?path=" + quote(str(APPS / "data" / "file_wrapper.txt"))))
            r = c.read_response()
            assert r.status == 200 and r.body == want
            c.send(oxhttp.build_request("GET", "/io/frame/list1"))
            assert c.read_response().body == b"hello"


# ---------------------------------------------------------------- wsgi.input
def expected_ops(body: bytes, ops):
    bio = io.BytesIO(body)

    def d(b):
        return {"len": len(b), "sha256": hashlib.sha256(b).hexdigest(), "head": b[:40].decode("latin-1")}

    out = []
    for op in ops:
        name, args = op[0], op[1:]
        if name == "iter":
            out.append([d(x) for x in bio])
        elif name == "readlines":
            out.append([d(x) for x in bio.readlines(*args)])
        else:
            out.append(d(getattr(bio, name)(*args)))
    return out


SMALL = b"alpha\nbeta\n\ngamma delta epsilon\nzeta" + b"\n"
LARGE = b"".join(b"%07d " % i + b"x" * (i % 97) + b"\n" for i in range(60000))  # ~3.3 MiB, many lines

OPS = {
    "read-n": [["read", 3], ["read", 4], ["read", 0], ["read", 100], ["read", 5]],
    "read-all": [["read", 2], ["read"]],
    "read-minus-one": [["read", -1], ["read", 10]],
    "readline": [["readline"], ["readline"], ["readline"], ["readline"], ["readline"], ["readline"], ["readline"]],
    "readline-n": [["readline", 3], ["readline", 3], ["readline", 100], ["readline", 1], ["readline"]],
    "readlines": [["readline", 2], ["readlines"]],
    "iter": [["read", 1], ["iter"]],
    "mixed-large": [["read", 10], ["readline"], ["readline", 5], ["read", 100000], ["readline"], ["readlines"],
                    ["read", 10]],
    "iter-large": [["iter"]],
}


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("name", list(OPS))
def test_wsgi_input_operations(iosrv, name, framing):
    body = LARGE if name.endswith("large") else SMALL
    ops = OPS[name]
    target = "/io/input?" + quote(json.dumps(ops))
    if framing == "chunked":
        r = oxhttp.request(iosrv.port, "POST", target, body=oxhttp.chunked(body, 7777),
                           headers=[("Transfer-Encoding", "chunked")], timeout=60)
    else:
        r = oxhttp.request(iosrv.port, "POST", target, body=body, timeout=60)
    assert r.status == 200, r
    assert r.json() == expected_ops(body, ops)


# ---------------------------------------------------------------- framing
def test_head_has_no_body(iosrv):
    with oxhttp.Conn(iosrv.port) as c:
        # HEAD, then a GET pipelined behind it: any body bytes sent for the
        # HEAD would corrupt the second response.
        c.send(oxhttp.build_request("HEAD", "/io/frame/gen") + oxhttp.build_request("HEAD", "/io/frame/list1")
               + oxhttp.build_request("GET", "/io/echo/after-head"))
        r1 = c.read_response("HEAD")
        r2 = c.read_response("HEAD")
        r3 = c.read_response("GET")
    assert r1.status == 200 and r2.status == 200
    assert r3.status == 200 and r3.body.startswith(b"/echo/after-head "), r3


@pytest.mark.parametrize("route, body", [("/io/frame/list1", b"hello"), ("/io/frame/list2", b"hello")])
def test_list_response_gets_content_length(iosrv, route, body):
    with oxhttp.Conn(iosrv.port) as c:
        c.send(oxhttp.build_request("GET", route))
        r = c.read_response()
    assert r.status == 200 and r.body == body
    assert r.framing == "length", r
    assert r.header("content-length") == str(len(body))
    assert r.header("transfer-encoding") is None


def test_streamed_generator_is_chunked_on_http11(iosrv):
    with oxhttp.Conn(iosrv.port) as c:
        c.send(oxhttp.build_request("GET", "/io/frame/slow-gen"))
        r = c.read_response()
        assert r.framing == "chunked" and r.body == b"one,two,three", r
        assert r.header("content-length") is None


@pytest.mark.parametrize("route, body", [("/io/frame/gen", b"one,two,three"), ("/io/frame/empty-gen", b"")])
def test_finished_generator_is_framed(iosrv, route, body):
    """A generator that is already exhausted when the head goes out may get
    a Content-Length (as Apache's content-length filter does) or be chunked;
    never both, never close-delimited on a keep-alive connection."""
    with oxhttp.Conn(iosrv.port) as c:
        for _ in range(2):
            c.send(oxhttp.build_request("GET", route))
            r = c.read_response()
            assert (r.status, r.body) == (200, body), r
            assert r.framing in ("chunked", "length"), r
            assert not (r.header("content-length") and r.header("transfer-encoding")), r


def test_streamed_generator_is_close_delimited_on_http10(iosrv):
    with oxhttp.Conn(iosrv.port) as c:
        c.send(oxhttp.build_request("GET", "/io/frame/slow-gen", version="HTTP/1.0", host=None))
        r = c.read_response()
        assert r.version == "HTTP/1.1" or r.version == "HTTP/1.0"
        assert r.framing == "close", r
        assert r.header("transfer-encoding") is None
        assert r.body == b"one,two,three" and r.complete
        assert c.eof, "HTTP/1.0 close-delimited response: the server must close"


def test_http10_list_response_closes(iosrv):
    with oxhttp.Conn(iosrv.port) as c:
        c.send(oxhttp.build_request("GET", "/io/frame/list1", version="HTTP/1.0", host=None))
        r = c.read_response()
        assert (r.status, r.body) == (200, b"hello")
        assert c.wait_closed(10), "HTTP/1.0 without keep-alive: connection must be closed"


def test_keepalive_many_requests_one_connection(iosrv):
    with oxhttp.Conn(iosrv.port) as c:
        port = c.local_port
        for i in range(20):
            c.send(oxhttp.build_request("GET", f"/io/echo/{i}"))
            r = c.read_response()
            assert r.status == 200
            assert r.body.decode().split(" ")[:2] == [f"/echo/{i}", str(port)]


def test_pipelined_requests_answered_in_order(iosrv):
    reqs = [
        oxhttp.build_request("GET", "/io/echo/1"),
        oxhttp.build_request("POST", "/io/echo/2", body=b"body-two"),
        oxhttp.build_request("GET", "/io/frame/gen"),
        oxhttp.build_request("POST", "/io/echo/4", body=oxhttp.chunked(b"chunked-four", 5),
                             headers=[("Transfer-Encoding", "chunked")]),
        oxhttp.build_request("GET", "/io/frame/list2"),
        oxhttp.build_request("GET", "/io/echo/6", headers=[("Connection", "close")]),
    ]
    with oxhttp.Conn(iosrv.port) as c:
        c.send(b"".join(reqs))
        rs = [c.read_response() for _ in reqs]
        assert c.wait_closed(10)
    assert [r.status for r in rs] == [200] * 6
    assert rs[0].body.startswith(b"/echo/1 ")
    assert rs[1].body.startswith(b"/echo/2 ") and rs[1].body.endswith(b"b'body-two'")
    assert rs[2].body == b"one,two,three"
    assert rs[3].body.startswith(b"/echo/4 ") and rs[3].body.endswith(b"b'chunked-four'")
    assert rs[4].body == b"hello"
    assert rs[5].body.startswith(b"/echo/6 ")


def test_server_still_fine(iosrv):
    assert os.path.exists(f"/proc/{iosrv.pid}")
    assert oxhttp.get(iosrv.port, "/io/frame/list1").body == b"hello"
