"""Unix-domain socket listeners (issue 17, item 2), the "nginx in front"
setup: `listen = ["unix:/path"]` and `serve --listen unix:PATH` serve HTTP
on a socket file with `socket-mode`; the environ is sensible
(`REMOTE_ADDR` 127.0.0.1, `SERVER_NAME` from `Host`); trusted proxy headers
work when 127.0.0.1 is trusted; a stale socket file from a crashed run is
replaced, a live one and a non-socket file are errors; the file is removed
on a clean stop."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import time

from oxserver import binary, wait_for

APP = '''
import json

def application(environ, start_response):
    keys = ("REMOTE_ADDR", "REMOTE_PORT", "SERVER_NAME", "SERVER_PORT", "wsgi.url_scheme", "PATH_INFO")
    body = json.dumps({k: environ.get(k) for k in keys}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
'''


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def get(path, target, headers=None):
    conn = UnixHTTPConnection(str(path))
    try:
        conn.request("GET", target, headers=headers or {"Host": "example.test"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def wait_socket(path, proc, timeout=30):
    def up():
        assert proc.poll() is None, "the server exited"
        if not os.path.exists(path):
            return False
        try:
            return get(path, "/")[0] == 200
        except OSError:
            return False
    assert wait_for(up, timeout=timeout)


def start(args, tmp_path):
    err = open(tmp_path / "stderr.log", "wb")
    return subprocess.Popen([binary(), *map(str, args)], stdout=subprocess.DEVNULL, stderr=err,
                            start_new_session=True)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def site(tmp_path, sock, **top):
    app = tmp_path / "unix_app.py"
    app.write_text(APP)
    conf = tmp_path / "site.toml"
    lines = [f'listen = ["unix:{sock}"]', "access-log = false"]
    lines += [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {json.dumps(v)}" for k, v in top.items()]
    lines += ['[groups.g]', 'processes = 1', 'threads = 2',
              '[[mount]]', 'path = "/"', f'script = "{app}"', 'group = "g"']
    conf.write_text("\n".join(lines) + "\n")
    return conf


def test_serves_http_on_a_unix_socket(tmp_path):
    sock = tmp_path / "site.sock"
    conf = site(tmp_path, sock, **{"socket-mode": "0600", "trusted-proxies": ["127.0.0.1"]})
    proc = start(["run", conf], tmp_path)
    try:
        wait_socket(sock, proc)
        assert stat.S_ISSOCK(os.stat(sock).st_mode)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        status, body = get(sock, "/x")
        env = json.loads(body)
        assert status == 200
        assert env["REMOTE_ADDR"] == "127.0.0.1" and env["SERVER_NAME"] == "example.test"
        assert env["PATH_INFO"] == "/x" and env["wsgi.url_scheme"] == "http"
        # nginx's headers are believed from the (trusted) socket peer.
        _, body = get(sock, "/", {"Host": "example.test", "X-Forwarded-For": "203.0.113.7",
                                  "X-Forwarded-Proto": "https"})
        env = json.loads(body)
        assert env["REMOTE_ADDR"] == "203.0.113.7" and env["wsgi.url_scheme"] == "https"
        # A second server on the same live socket refuses to start.
        second = subprocess.run([binary(), "run", str(conf)], capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and "another server is accepting" in second.stderr, second.stderr
    finally:
        stop(proc)
    assert proc.returncode == 0
    assert not sock.exists(), "a clean stop removes the socket file"


def test_a_stale_socket_is_replaced_and_a_file_is_not(tmp_path):
    sock = tmp_path / "stale.sock"
    # What a crashed run leaves: a socket file nobody accepts on.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock))
    dead.close()
    conf = site(tmp_path, sock)
    proc = start(["run", conf], tmp_path)
    try:
        wait_socket(sock, proc)
    finally:
        stop(proc)
    sock.write_text("not a socket")
    r = subprocess.run([binary(), "run", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "is not a socket" in r.stderr, r.stderr
    assert sock.read_text() == "not a socket"


def test_serve_listen_unix(tmp_path):
    app = tmp_path / "unix_app.py"
    app.write_text(APP)
    sock = tmp_path / "serve.sock"
    proc = start(["serve", app, "--listen", f"unix:{sock}", "--threads", "2"], tmp_path)
    try:
        wait_socket(sock, proc)
        assert json.loads(get(sock, "/")[1])["REMOTE_ADDR"] == "127.0.0.1"
    finally:
        stop(proc)


def test_socket_activation_of_a_unix_socket(tmp_path):
    """LISTEN_FDS with a Unix socket on descriptor 3 (what a systemd .socket
    unit with ListenStream=/path passes): served without binding, and its
    file is left to systemd on stop."""
    sock = tmp_path / "activated.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock))
    listener.listen(16)
    conf = site(tmp_path, sock)
    fd = listener.fileno()
    script = 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" run "$1"'
    err = open(tmp_path / "activation.stderr.log", "wb")
    proc = subprocess.Popen(["/bin/sh", "-c", script, binary(), str(conf)], stdout=subprocess.DEVNULL,
                            stderr=err, pass_fds=(3,), preexec_fn=lambda: os.dup2(fd, 3),
                            start_new_session=True)
    try:
        wait_socket(sock, proc)
        assert json.loads(get(sock, "/")[1])["REMOTE_ADDR"] == "127.0.0.1"
    finally:
        stop(proc)
        listener.close()
    log = (tmp_path / "activation.stderr.log").read_text()
    assert "using the socket passed by systemd for unix:" in log, log
    assert sock.exists(), "systemd's socket file is not removed"
