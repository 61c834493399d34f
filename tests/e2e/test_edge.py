"""The front as an edge (issue 6): TLS (rustls) with HTTP/2 by ALPN and
HTTP/1.1, certificate reload on SIGHUP, h2c with prior knowledge, static
aliases (ranges, conditional requests, traversal), trusted proxy headers,
the access-log format and its reopening on SIGUSR1, and slowloris
resistance (idle connections do not delay a normal request; idle
keep-alive connections are closed)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time

import httpx
import pytest
import trustme

import oxhttp
from oxserver import APPS, free_port

INFO = str(APPS / "info.py")


def environ(response):
    return response.json()["environ"]


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def edge(servers, ca, tmp_path_factory):
    d = tmp_path_factory.mktemp("edge-files")
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(d / "chain.pem"))
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    # The certificate file: the chain only (leaf first).
    chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    (d / "cert.pem").write_bytes(chain)
    ca_file = d / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    static = d / "static"
    (static / "sub").mkdir(parents=True)
    (static / "hello.txt").write_bytes(b"0123456789" * 10)
    (static / "style.css").write_text("body { color: red }\n")
    (static / "sub" / "page.html").write_text("<p>hi</p>\n")
    (d / "secret.txt").write_text("top secret\n")
    os.symlink(d / "secret.txt", static / "escape.txt")
    os.symlink(static / "hello.txt", static / "inside.txt")

    plain, tls, h2c = free_port(), free_port(), free_port()
    log = d / "access.log"
    cfg = f"""
access-log = "{log}"
access-log-format = "%a %m %U%q %>s %b %{{group}}x %{{pid}}x %D"
trusted-proxies = ["10.9.9.9/32", "127.0.0.2"]
keep-alive-timeout = 2
header-timeout = 3

[[listen]]
addr = "127.0.0.1:{plain}"

[[listen]]
addr = "127.0.0.1:{tls}"
tls-cert = "{d / 'cert.pem'}"
tls-key = "{d / 'key.pem'}"

[[listen]]
addr = "127.0.0.1:{h2c}"
h2c = true

[[mount]]
path = "/"
script = "{INFO}"

[[static]]
path = "/static"
dir = "{static}"
"""
    srv = servers("edge")
    srv.port = plain
    srv.start_run(srv.write_config(cfg), ready=["/"])
    srv.tls_port, srv.h2c_port = tls, h2c
    srv.ca_file, srv.files, srv.log = str(ca_file), d, log
    srv.ca = ca
    return srv


def tls_client(edge, http2=True):
    ctx = ssl.create_default_context(cafile=edge.ca_file)
    return httpx.Client(verify=ctx, http2=http2, timeout=10)


# ------------------------------------------------------------------ TLS / h2
def test_https_http2_by_alpn(edge):
    with tls_client(edge) as client:
        r = client.get(f"https://localhost:{edge.tls_port}/a/b?x=1", headers={"X-Test": "v"})
    assert r.status_code == 200
    assert r.http_version == "HTTP/2"
    env = environ(r)
    assert env["SERVER_PROTOCOL"] == "HTTP/2"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTPS"] == "on"
    assert env["HTTP_HOST"] == f"localhost:{edge.tls_port}"
    assert env["PATH_INFO"] == "/a/b"
    assert env["QUERY_STRING"] == "x=1"
    assert env["REQUEST_URI"] == "/a/b?x=1"
    assert env["HTTP_X_TEST"] == "v"


def test_https_http11(edge):
    with tls_client(edge, http2=False) as client:
        r = client.post(f"https://localhost:{edge.tls_port}/p", content=b"x" * 100_000)
    assert r.status_code == 200
    assert r.http_version == "HTTP/1.1"
    env = environ(r)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["wsgi.url_scheme"] == "https"


def test_http2_many_streams_and_a_large_body(edge):
    with tls_client(edge) as client:
        rs = [client.post(f"https://localhost:{edge.tls_port}/s{i}", content=os.urandom(300_000)) for i in range(5)]
    assert [r.status_code for r in rs] == [200] * 5
    assert all(r.http_version == "HTTP/2" for r in rs)


def test_curl_speaks_tls_1_2_and_1_3(edge):
    for version in ("--tlsv1.2 --tls-max 1.2", "--tlsv1.3"):
        out = subprocess.run(
            ["curl", "-sS", "--http1.1", "--cacert", edge.ca_file, *version.split(),
             "-o", "/dev/null", "-w", "%{http_code} %{ssl_verify_result}",
             f"https://localhost:{edge.tls_port}/"],
            capture_output=True, text=True, timeout=20,
        )
        assert out.stdout == "200 0", (version, out.stdout, out.stderr)


def test_plain_http_on_the_tls_port_is_refused(edge):
    with oxhttp.Conn(edge.tls_port, timeout=5) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = c.read_until_close(deadline=time.monotonic() + 5)
    assert not data.startswith(b"HTTP/1.1 200")


def test_h2c_prior_knowledge(edge):
    out = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "-w", "\n%{http_version}", f"http://127.0.0.1:{edge.h2c_port}/h"],
        capture_output=True, text=True, timeout=20,
    )
    body, _, version = out.stdout.rpartition("\n")
    assert version == "2", out
    assert '"SERVER_PROTOCOL": "HTTP/2"' in body
    # The same listener still speaks HTTP/1.1.
    r = httpx.get(f"http://127.0.0.1:{edge.h2c_port}/h1", timeout=10)
    assert r.status_code == 200 and environ(r)["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_certificate_reload_on_sighup(edge):
    def served_serial():
        ctx = ssl.create_default_context(cafile=edge.ca_file)
        with socket.create_connection(("127.0.0.1", edge.tls_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.getpeercert()["serialNumber"]

    before = served_serial()
    new = edge.ca.issue_cert("localhost", "127.0.0.1")
    (edge.files / "cert.pem").write_bytes(b"".join(b.bytes() for b in new.cert_chain_pems))
    new.private_key_pem.write_to_path(str(edge.files / "key.pem"))
    mark = edge.stderr_mark()
    edge.signal(signal.SIGHUP)
    edge.wait_stderr("TLS certificate reloaded", mark=mark, timeout=15)
    edge.wait_stderr("reload complete", mark=mark, timeout=60)
    assert served_serial() != before
    # A broken pair keeps the current certificate.
    (edge.files / "key.pem").write_text("garbage\n")
    mark = edge.stderr_mark()
    edge.signal(signal.SIGHUP)
    edge.wait_stderr("keeping the current certificate", mark=mark, timeout=15)
    edge.wait_stderr("reload complete", mark=mark, timeout=60)
    with tls_client(edge) as client:
        assert client.get(f"https://localhost:{edge.tls_port}/").status_code == 200


# -------------------------------------------------------------------- static
def get(edge, path, headers=None, method="GET"):
    return httpx.request(method, f"http://127.0.0.1:{edge.port}{path}", headers=headers or {}, timeout=10)


def test_static_file(edge):
    r = get(edge, "/static/hello.txt")
    assert r.status_code == 200
    assert r.content == b"0123456789" * 10
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["etag"] and r.headers["last-modified"]
    assert get(edge, "/static/style.css").headers["content-type"].startswith("text/css")
    assert get(edge, "/static/sub/page.html").headers["content-type"].startswith("text/html")
    head = get(edge, "/static/hello.txt", method="HEAD")
    assert head.status_code == 200 and head.headers["content-length"] == "100" and head.content == b""


def test_static_ranges(edge):
    r = get(edge, "/static/hello.txt", {"Range": "bytes=10-14"})
    assert r.status_code == 206 and r.content == b"01234"
    assert r.headers["content-range"] == "bytes 10-14/100"
    assert get(edge, "/static/hello.txt", {"Range": "bytes=-3"}).content == b"789"
    assert get(edge, "/static/hello.txt", {"Range": "bytes=95-"}).content == b"56789"
    r = get(edge, "/static/hello.txt", {"Range": "bytes=100-"})
    assert r.status_code == 416 and r.headers["content-range"] == "bytes */100"
    etag = get(edge, "/static/hello.txt").headers["etag"]
    assert get(edge, "/static/hello.txt", {"Range": "bytes=0-0", "If-Range": etag}).status_code == 206
    assert get(edge, "/static/hello.txt", {"Range": "bytes=0-0", "If-Range": '"other"'}).status_code == 200


def test_static_conditional_requests(edge):
    first = get(edge, "/static/hello.txt")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    r = get(edge, "/static/hello.txt", {"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    assert get(edge, "/static/hello.txt", {"If-Modified-Since": modified}).status_code == 304
    assert get(edge, "/static/hello.txt", {"If-None-Match": '"nope"'}).status_code == 200
    assert get(edge, "/static/hello.txt", {"If-Match": '"nope"'}).status_code == 412
    assert get(edge, "/static/hello.txt", {"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}).status_code == 200


@pytest.mark.parametrize("path", [
    "/static/../secret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2E/secret.txt",
    "/static/sub/..%2f..%2fsecret.txt",
    "/static/sub/%2e%2e/%2e%2e/secret.txt",
    "/static/escape.txt",
])
def test_static_traversal_is_refused(edge, path):
    with oxhttp.Conn(edge.port) as c:
        c.send(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = c.read_until_close(deadline=time.monotonic() + 10)
    status = int(data.split(b" ", 2)[1])
    assert status in (400, 403, 404), data[:200]
    assert b"top secret" not in data


def test_static_symlink_inside_and_no_listing(edge):
    assert get(edge, "/static/inside.txt").content == b"0123456789" * 10
    assert get(edge, "/static/sub/").status_code == 403
    assert get(edge, "/static").status_code == 403
    assert get(edge, "/static/missing.txt").status_code == 404
    r = get(edge, "/static/hello.txt", method="POST")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"


def test_static_over_http2(edge):
    with tls_client(edge) as client:
        r = client.get(f"https://localhost:{edge.tls_port}/static/hello.txt", headers={"Range": "bytes=0-1"})
    assert r.http_version == "HTTP/2" and r.status_code == 206 and r.content == b"01"


# -------------------------------------------------------------- proxy headers
FORWARDED = {"X-Forwarded-For": "203.0.113.7, 10.9.9.9", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "www.example.org"}


def bound_client(source):
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=10)


def test_proxy_headers_from_a_trusted_proxy(edge):
    with bound_client("127.0.0.2") as client:
        env = environ(client.get(f"http://127.0.0.1:{edge.port}/p", headers=FORWARDED))
    assert env["REMOTE_ADDR"] == "203.0.113.7"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTPS"] == "on"
    assert env["HTTP_HOST"] == "www.example.org"
    assert env["SERVER_NAME"] == "www.example.org"
    assert env["SERVER_PORT"] == "443"


def test_proxy_headers_from_an_untrusted_peer_are_ignored(edge):
    with bound_client("127.0.0.1") as client:
        env = environ(client.get(f"http://127.0.0.1:{edge.port}/p", headers=FORWARDED))
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert "HTTPS" not in env
    assert env["HTTP_HOST"] == f"127.0.0.1:{edge.port}"
    assert "HTTP_X_FORWARDED_FOR" not in env and "HTTP_X_FORWARDED_PROTO" not in env


# ---------------------------------------------------------------- access log
def test_access_log_format_and_reopen(edge):
    get(edge, "/logged?q=1")
    deadline = time.monotonic() + 10
    while b"/logged?q=1" not in edge.log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = [ln for ln in edge.log.read_text().splitlines() if "/logged?q=1" in ln][-1]
    addr, method, target, status, size, group, pid, micros = line.split(" ")
    assert (addr, method, target, status) == ("127.0.0.1", "GET", "/logged?q=1", "200")
    assert int(size) > 0 and int(micros) > 0
    assert group == "root" or group  # the implicit group's name
    assert int(pid) in edge.daemon_pids()
    rotated = edge.log.with_suffix(".1")
    os.rename(edge.log, rotated)
    mark = edge.stderr_mark()
    edge.signal(signal.SIGUSR1)
    edge.wait_stderr("access log reopened", mark=mark, timeout=10)
    get(edge, "/after-rotate")
    deadline = time.monotonic() + 10
    while not (edge.log.exists() and b"/after-rotate" in edge.log.read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"/after-rotate" in edge.log.read_bytes()
    assert b"/after-rotate" not in rotated.read_bytes()


# ------------------------------------------------------------------ slowloris
def test_idle_connections_do_not_delay_a_request(edge):
    idle = []
    try:
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", edge.port), timeout=5)
            if i % 2:
                s.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\nX-Partial: ")  # a head never finished
            idle.append(s)
        started = time.monotonic()
        r = get(edge, "/normal")
        assert r.status_code == 200
        assert time.monotonic() - started < 2.0
    finally:
        for s in idle:
            s.close()


def test_idle_keep_alive_connection_is_closed(edge):
    # keep-alive-timeout = 2 in this site.
    with oxhttp.Conn(edge.port, timeout=10) as c:
        c.send(b"GET /ka HTTP/1.1\r\nHost: t\r\n\r\n")
        started = time.monotonic()
        data = c.read_until_close(deadline=started + 8)
        assert data.startswith(b"HTTP/1.1 200")
        assert 1.5 < time.monotonic() - started < 6


def test_a_head_not_finished_within_header_timeout_is_closed(edge):
    # header-timeout = 3 in this site.
    with oxhttp.Conn(edge.port, timeout=15) as c:
        c.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n")
        started = time.monotonic()
        for _ in range(10):  # keep trickling: activity does not extend it
            time.sleep(0.3)
            try:
                c.send(b"X")
            except OSError:
                break
        try:
            c.read_until_close(deadline=started + 10)
        except oxhttp.ConnectionClosed:
            pass
        assert time.monotonic() - started < 8


def test_max_connections_queues_the_rest(server):
    srv = server("maxconn").start_run(
        {"max-connections": 2, "mount": [{"path": "/", "script": INFO}]}, ready=["/"])
    held = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(2)]
    try:
        time.sleep(0.3)
        with oxhttp.Conn(srv.port, timeout=5) as c:
            c.send(b"GET /third HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            with pytest.raises(oxhttp.Timeout):
                c.read_line(deadline=time.monotonic() + 1.0)
            held.pop().close()  # a slot frees up: the third is served
            assert c.read_line(deadline=time.monotonic() + 10).startswith(b"HTTP/1.1 200")
    finally:
        for s in held:
            s.close()


@pytest.mark.parametrize("body", [
    b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0 \r\n\r\n",
], ids=["cl-and-te", "chunk-size-trailing-space"])
def test_smuggling_checks_hold_inside_tls(edge, body):
    ctx = ssl.create_default_context(cafile=edge.ca_file)
    ctx.set_alpn_protocols(["http/1.1"])
    with socket.create_connection(("127.0.0.1", edge.tls_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(body)
            data = b""
            while b"\r\n" not in data:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
    assert data.startswith(b"HTTP/1.1 400"), data[:100]


def test_static_get_with_a_body_is_served(edge):
    r = httpx.request("GET", f"http://127.0.0.1:{edge.port}/static/hello.txt", content=b"hello", timeout=10)
    assert r.status_code == 200 and r.content == b"0123456789" * 10


@pytest.mark.parametrize("length", [9000, 500_000, 1 << 20])
def test_an_overlong_request_line_is_414_inside_tls(edge, length):
    """Issue 15 (item 3): 414 whatever the line's length, on TLS too."""
    ctx = ssl.create_default_context(cafile=edge.ca_file)
    ctx.set_alpn_protocols(["http/1.1"])
    with socket.create_connection(("127.0.0.1", edge.tls_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET /" + b"a" * length + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                try:
                    chunk = tls.recv(65536)
                except (ssl.SSLError, OSError):
                    break
                if not chunk:
                    break
                data += chunk
    assert data.startswith(b"HTTP/1.1 414"), data[:100]
