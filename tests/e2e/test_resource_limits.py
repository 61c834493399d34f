"""mod_wsgi's resource limits (issue 17, item 4): `cpu-time-limit` ends a
daemon that used that much CPU (SIGXCPU) and a new one takes its place,
counted under the reason `cpu-time-limit` in /status and the restarts
metric; `virtual-memory-limit` makes a large allocation fail with
MemoryError inside the app; `stack-size` is the request threads' stack
size. The same options are read from `WSGIDaemonProcess`."""

from __future__ import annotations

import subprocess

import oxhttp
from oxserver import binary, free_port, wait_for
from test_admin import Admin, metric

APP = '''
import os, threading

def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/spin":
        x = 0
        while True:
            x += 1
    if path == "/allocate":
        try:
            block = bytearray(1 << 30)
            body = b"allocated"
        except MemoryError:
            body = b"MemoryError"
    elif path == "/stack":
        body = str(threading.stack_size()).encode()
    else:
        body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def test_limits(server, tmp_path):
    app = tmp_path / "limits_app.py"
    app.write_text(APP)
    admin_port = free_port()
    cfg = {
        "access-log": False,
        "admin": f"127.0.0.1:{admin_port}",
        "groups": {"g": {"processes": 1, "threads": 2, "cpu-time-limit": 2,
                         "virtual-memory-limit": "512M", "stack-size": "1M"}},
        "mount": [{"path": "/", "script": str(app), "group": "g"}],
    }
    srv = server().start_run(cfg, ready=("/",))
    admin = Admin(admin_port)
    first = int(oxhttp.get(srv.port, "/").body)
    assert oxhttp.get(srv.port, "/stack").body == str(1 << 20).encode()
    assert oxhttp.get(srv.port, "/allocate").body == b"MemoryError"
    # The spinner's process is ended by its CPU limit: 502 for it, a new
    # process for the next request.
    r = oxhttp.get(srv.port, "/spin", timeout=60)
    assert r.status == 502, r

    def replaced():
        r = oxhttp.get(srv.port, "/", timeout=10)
        return r.status == 200 and int(r.body) != first

    assert wait_for(replaced, timeout=30)
    group = admin.status()["groups"][0]
    assert group["restarts_by_reason"].get("cpu-time-limit") == 1, group
    assert metric(admin.metrics(), "oxwsgi_process_restarts_total", group="g", reason="cpu-time-limit") == 1


def test_apache_options_are_read(tmp_path):
    conf = tmp_path / "site.conf"
    conf.write_text(
        "WSGIDaemonProcess g cpu-time-limit=30 virtual-memory-limit=1073741824 stack-size=524288\n"
        "WSGIScriptAlias / /srv/app.wsgi process-group=g\n"
    )
    r = subprocess.run([binary(), "convert", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for line in ("cpu-time-limit = 30", "virtual-memory-limit = 1073741824", "stack-size = 524288"):
        assert line in r.stdout, r.stdout
    assert "not implemented" not in r.stderr
