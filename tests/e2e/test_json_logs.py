"""Structured logs (issue 17, item 5): `access-log-format = "json"` and
`log-format = "json"` write one JSON object a line; a client's quotes,
backslashes, tabs, non-UTF-8 bytes and fake fields in headers, and an
application's multi-line `wsgi.errors` output, never break a line or
forge a field. Every line of both logs is parsed."""

from __future__ import annotations

import json
import socket

import oxhttp
from oxserver import wait_for

APP = r'''
def application(environ, start_response):
    if environ["PATH_INFO"] == "/complain":
        environ["wsgi.errors"].write('first "line"\nsecond \\ line\t{"level": "forged"}\n')
        environ["wsgi.errors"].flush()
    if environ["PATH_INFO"] == "/fail":
        raise RuntimeError('boom "quoted"\nwith a second line')
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
'''

HOSTILE = [
    b'User-Agent: evil", "status": 200, "forged": "yes\r\n',
    b"Referer: back\\slash\ttab \xff\xfe not utf-8\r\n",
    b'Authorization: Basic ' + __import__("base64").b64encode(b'us"er\n:pw') + b"\r\n",
]


def raw_request(port, path, extra=b""):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: example.test\r\n" + extra + b"Connection: close\r\n\r\n")
        data = b""
        while True:
            piece = s.recv(65536)
            if not piece:
                return data
            data += piece


def lines_of(path):
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_line_of_both_logs_is_one_json_object(server, tmp_path):
    app = tmp_path / "log_app.py"
    app.write_text(APP)
    access, errors = tmp_path / "access.log", tmp_path / "error.log"
    cfg = {
        "access-log": str(access),
        "access-log-format": "json",
        "error-log": str(errors),
        "log-format": "json",
        "groups": {"g": {"processes": 1, "threads": 2}},
        "mount": [{"path": "/", "script": str(app), "group": "g"}],
    }
    srv = server().start_run(cfg, ready=("/",))
    for header in HOSTILE:
        assert raw_request(srv.port, b"/a%22b?q=%0A%22x", header).startswith(b"HTTP/1.1 200")
    assert raw_request(srv.port, b"/complain").startswith(b"HTTP/1.1 200")
    assert raw_request(srv.port, b"/fail").startswith(b"HTTP/1.1 500")
    n_requests = len(HOSTILE) + 2

    def complete():
        return len(lines_of(access)) >= n_requests + 1 and "boom" in errors.read_text()

    assert wait_for(complete, timeout=20), (access.read_text(), errors.read_text())
    records = [json.loads(line) for line in lines_of(access)]
    hostile = [r for r in records if r["path"] == "/a%22b"]
    assert len(hostile) == len(HOSTILE), records
    for r in records:
        assert set(r) >= {"time", "remote", "method", "path", "status", "bytes", "duration_us", "group"}
        assert "forged" not in r
    agents = [r["user_agent"] for r in hostile]
    assert 'evil", "status": 200, "forged": "yes' in agents
    assert any(r["referer"] and "back\\slash\ttab" in r["referer"] for r in hostile)
    assert any(r["user"] == 'us"er\n' for r in hostile)
    assert all(r["status"] == 200 for r in hostile)
    assert {r["status"] for r in records} >= {200, 500}

    entries = [json.loads(line) for line in lines_of(errors)]
    for e in entries:
        assert set(e) >= {"time", "level", "pid", "group", "message"}
        assert e["level"] in ("debug", "info", "warning", "warn", "error")
    complaint = [e for e in entries if 'first "line"' in e["message"]]
    assert complaint and complaint[0]["group"] == "g", entries
    assert "forged" not in {e["level"] for e in entries}
    assert any("boom" in e["message"] and "RuntimeError" in e["message"] for e in entries)
    # The front's own lines are there too (a daemon started).
    assert any(e["pid"] == srv.pid for e in entries), entries
