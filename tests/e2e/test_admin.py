"""Operability (issue 7, DESIGN §6): the admin listener's /healthz, /status
and /metrics, `oxwsgi status` (table and --json), systemd readiness over a
fake NOTIFY_SOCKET, and socket activation (LISTEN_FDS).

Every metric is checked to move when it should: a request increments the
request counter, a kill -9 increments restarts{reason="crash"}, a SIGHUP
keeps the counters and adds restarts{reason="reload"}."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import oxhttp
from oxserver import binary, free_port, proc_exists, wait_for

APP = '''
import os, time

def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or 2))
    body = ("%d" % os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

SLOW_IMPORT = '''
import os, time
time.sleep(float(os.environ.get("SLOW_IMPORT_SECONDS", "3")))

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"awake"]
'''


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample in a Prometheus text exposition (0 if absent)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return 0.0


class Admin:
    def __init__(self, port: int):
        self.port = port

    def get(self, path: str) -> oxhttp.Response:
        return oxhttp.get(self.port, path, timeout=10)

    def metrics(self) -> str:
        r = self.get("/metrics")
        assert r.status == 200, r
        return r.body.decode()

    def status(self) -> dict:
        r = self.get("/status")
        assert r.status == 200, r
        return r.json()


def site(app_file, admin_port, mount="/app", **group):
    return {
        "access-log": False,
        "admin": f"127.0.0.1:{admin_port}",
        "groups": {"g": {"processes": 1, "threads": 2, **group}},
        "mount": [{"path": mount, "script": str(app_file), "group": "g"}],
    }


@pytest.fixture
def app_file(tmp_path):
    path = tmp_path / "ops_app.py"
    path.write_text(APP)
    return path


@pytest.fixture
def running(server, app_file):
    admin_port = free_port()
    srv = server().start_run(site(app_file, admin_port), ready=("/app",))
    return srv, Admin(admin_port)


def test_a_request_increments_the_counters(running):
    srv, admin = running
    before = admin.metrics()
    for _ in range(3):
        assert oxhttp.get(srv.port, "/app/x").status == 200
    assert oxhttp.get(srv.port, "/nothing-here").status == 404
    body_in = dict(name="oxwsgi_request_body_bytes_total", group="g")
    assert oxhttp.request(srv.port, "POST", "/app/x", body=b"x" * 1000).status == 200
    assert oxhttp.request(srv.port, "POST", "/app/x", body=b"y" * 200_000).status == 200
    after = admin.metrics()
    assert metric(after, **body_in) - metric(before, **body_in) == 201_000, after
    two = dict(name="oxwsgi_requests_total", group="g", status="2xx")
    assert metric(after, **two) - metric(before, **two) == 5, after
    assert metric(after, "oxwsgi_requests_total", group="-", status="4xx") >= 1
    dur = dict(name="oxwsgi_request_duration_seconds_count", group="g")
    assert metric(after, **dur) - metric(before, **dur) == 5
    assert metric(after, "oxwsgi_queue_wait_seconds_count", group="g") >= 5
    assert metric(after, "oxwsgi_response_body_bytes_total", group="g") > 0
    assert metric(after, "oxwsgi_busy_threads", group="g") == 0
    assert metric(after, "oxwsgi_idle_threads", group="g") == 2
    assert metric(after, "oxwsgi_queue_depth", group="g") == 0
    assert metric(after, "oxwsgi_ready_processes", group="g") == 1
    assert "# TYPE oxwsgi_request_duration_seconds histogram" in after


def test_busy_threads_queue_and_requests_in_flight(server, app_file):
    # No read-ahead: a request beyond the threads waits in the front's queue.
    admin_port = free_port()
    srv = server().start_run(site(app_file, admin_port, **{"read-ahead": 0}), ready=("/app",))
    admin = Admin(admin_port)
    # Two threads: two sleepers hold them, a third request queues.
    threads = [
        threading.Thread(target=oxhttp.get, args=(srv.port, "/app/sleep?2"), kwargs={"timeout": 30})
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    try:
        text = wait_for(
            lambda: (m := admin.metrics())
            and metric(m, "oxwsgi_busy_threads", group="g") == 2
            and metric(m, "oxwsgi_queue_depth", group="g") == 1
            and m,
            timeout=10,
        )
        assert text, admin.metrics()
        status = admin.status()
        group = status["groups"][0]
        assert group["queued"] == 1 and group["busy"] == 2
        assert 0 < group["oldest_wait"] < 10
        current = group["processes"][0]["current"]
        assert [c["path"] for c in current] == ["/app/sleep", "/app/sleep"], current
        assert all(0 <= c["age"] < 10 for c in current)
    finally:
        for t in threads:
            t.join(30)
    # The queued request waited about as long as a sleeper ran.
    group = admin.status()["groups"][0]
    assert group["oldest_wait"] == 0 and group["mean_wait"] > 0.1, group
    text = admin.metrics()
    assert metric(text, "oxwsgi_queue_wait_seconds_bucket", group="g", le="0.5") < metric(
        text, "oxwsgi_queue_wait_seconds_count", group="g"
    )


def test_read_ahead_waits_in_the_process_and_counts_as_queued(running):
    srv, admin = running
    # Two threads and (by default) one request of read-ahead: two sleepers
    # hold the threads, the third waits in the daemon, the fourth here.
    statuses = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(oxhttp.get(srv.port, "/app/sleep?1", timeout=30).status)
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    try:
        text = wait_for(
            lambda: (m := admin.metrics())
            and metric(m, "oxwsgi_busy_threads", group="g") == 2
            and metric(m, "oxwsgi_queue_depth", group="g") == 2
            and m,
            timeout=10,
        )
        assert text, admin.metrics()
        group = admin.status()["groups"][0]
        assert group["busy"] == 2 and group["queued"] == 2, group
        assert len(group["processes"][0]["current"]) == 3, group
    finally:
        for t in threads:
            t.join(30)
    assert statuses == [200] * 4
    group = admin.status()["groups"][0]
    assert group["busy"] == 0 and group["queued"] == 0, group


def test_kill_9_counts_a_crash_restart(running):
    srv, admin = running
    pid = admin.status()["groups"][0]["processes"][0]["pid"]
    assert metric(admin.metrics(), "oxwsgi_process_restarts_total", group="g", reason="crash") == 0
    os.kill(pid, signal.SIGKILL)
    assert wait_for(
        lambda: metric(admin.metrics(), "oxwsgi_process_restarts_total", group="g", reason="crash") == 1
    ), admin.metrics()
    new = wait_for(
        lambda: [p["pid"] for p in admin.status()["groups"][0]["processes"] if p["pid"] != pid]
    )
    assert new, admin.status()
    group = admin.status()["groups"][0]
    assert group["restarts"] == 1 and group["restarts_by_reason"] == {"crash": 1}


def test_kill_9_under_load_is_one_crash_and_fails_only_its_requests(running):
    """A daemon killed while it serves requests: exactly those answer 502,
    the restart is counted once, as a crash (it was also counted as a
    broken slot before the channel transport)."""
    srv, admin = running
    pid = admin.status()["groups"][0]["processes"][0]["pid"]
    statuses = []
    sleepers = [
        threading.Thread(
            target=lambda: statuses.append(oxhttp.get(srv.port, "/app/sleep?5", timeout=30).status)
        )
        for _ in range(2)
    ]
    for t in sleepers:
        t.start()
    assert wait_for(lambda: admin.status()["groups"][0]["busy"] == 2, timeout=10), admin.status()
    os.kill(pid, signal.SIGKILL)
    for t in sleepers:
        t.join(30)
    assert statuses == [502, 502], statuses
    assert wait_for(
        lambda: [p for p in admin.status()["groups"][0]["processes"] if p["pid"] != pid], timeout=15
    ), admin.status()
    assert oxhttp.get(srv.port, "/app/x", timeout=15).status == 200
    group = admin.status()["groups"][0]
    assert group["restarts_by_reason"] == {"crash": 1}, group
    text = admin.metrics()
    assert metric(text, "oxwsgi_process_restarts_total", group="g", reason="crash") == 1


def test_admin_is_not_on_the_public_listener(running):
    srv, admin = running
    for path in ("/healthz", "/status", "/metrics"):
        assert oxhttp.get(srv.port, path).status == 404
        assert admin.get(path).status == 200
    assert admin.get("/app").status == 404
    assert oxhttp.request(admin.port, "POST", "/healthz").status == 405


def test_healthz_flips_from_503_to_200(server, tmp_path):
    app = tmp_path / "slow_import.py"
    app.write_text(SLOW_IMPORT)
    admin = Admin(free_port())
    srv = server().start_run(site(app, admin.port, mount="/"), ready=(), env={"SLOW_IMPORT_SECONDS": "3"})

    def answer():
        try:
            r = admin.get("/healthz")
            return r.status, r.body.decode()
        except (OSError, oxhttp.ConnectionClosed, oxhttp.Timeout):
            return None

    first = wait_for(answer, timeout=10, every=0.05)
    assert first is not None, srv.logs_tail()
    assert first[0] == 503 and "starting" in first[1] and "0/1" in first[1], first
    assert admin.status()["server"]["ready"] is False
    ok = wait_for(lambda: (a := answer()) and a[0] == 200 and a, timeout=30)
    assert ok == (200, "ok\n"), srv.logs_tail()
    assert admin.status()["server"]["ready"] is True
    assert oxhttp.get(srv.port, "/").body == b"awake"


def run_status(*args, timeout=20):
    return subprocess.run(
        [binary(), "status", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def test_status_command_json_and_table(running):
    srv, admin = running
    before = admin.status()["groups"][0]["processes"][0]
    pid, served = before["pid"], before["requests"] + 2
    for _ in range(2):
        assert oxhttp.get(srv.port, "/app/").status == 200

    done = run_status("--admin", f"127.0.0.1:{admin.port}", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    (group,) = doc["groups"]
    assert group["name"] == "g" and group["threads"] == 2
    (process,) = group["processes"]
    assert process["pid"] == pid and process["requests"] == served
    assert process["rss"] > 1 << 20
    assert doc["server"]["pid"] == srv.pid

    # The address read from the config file; a slow request in flight.
    slow = threading.Thread(target=oxhttp.get, args=(srv.port, "/app/sleep?3"), kwargs={"timeout": 30})
    slow.start()
    try:
        wait_for(lambda: admin.status()["groups"][0]["busy"] == 1, timeout=10)
        done = run_status(srv.config_path)
    finally:
        slow.join(30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.match(rf"oxwsgi at 127\.0\.0\.1:{admin.port}  pid {srv.pid}  ready  up \d+s", lines[0]), lines
    group_line = next(line for line in lines if line.startswith("GROUP "))
    assert re.match(r"GROUP g  processes 1/1  busy 1/2  queued 0  wait [\d.]+(µs|ms|s)  restarts 0$", group_line), group_line
    header = lines[lines.index(group_line) + 1].split()
    assert header == ["PID", "TITLE", "BUSY", "REQUESTS", "RSS", "AGE"]
    row = lines[lines.index(group_line) + 2].split()
    assert row[0] == str(pid) and row[-4] == "1/2" and row[-3] == str(served), row
    assert re.fullmatch(r"[\d.]+[KMG]", row[-2]) and re.fullmatch(r"\d+s|\d+m\d\ds", row[-1]), row
    in_flight = lines[lines.index(group_line) + 3].split()
    assert in_flight[1] == "/app/sleep" and re.fullmatch(r"\d+\.\ds", in_flight[0]), lines


def test_status_command_errors(tmp_path):
    done = run_status("--admin", f"127.0.0.1:{free_port()}")
    assert done.returncode == 2 and "cannot reach the admin endpoint" in done.stderr
    config = tmp_path / "no_admin.toml"
    config.write_text('[[mount]]\npath = "/"\nmodule = "x:app"\n')
    done = run_status(config)
    assert done.returncode == 1 and "sets no `admin` address" in done.stderr, done.stderr


def test_status_watch_redraws(running):
    srv, admin = running
    proc = subprocess.Popen(
        [binary(), "status", "--admin", f"127.0.0.1:{admin.port}", "--watch", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2.5)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode != 0 or out  # ended by Ctrl-C
    assert out.count("\x1b[H\x1b[2J") >= 3, out[:500]
    assert out.count("GROUP g") >= 3


class NotifySocket:
    """A fake systemd notify socket: a Unix datagram socket in tmp."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[str] = []

    def wait(self, needle: str, timeout=30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for m in self.messages:
                if needle in m.split("\n"):
                    self.messages.remove(m)
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {needle!r} on the notify socket; got {self.messages!r}")
            self.sock.settimeout(left)
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass

    def close(self):
        self.sock.close()


def test_sd_notify_ready_reloading_stopping(server, app_file, tmp_path):
    notify = NotifySocket(tmp_path / "notify.sock")
    admin = Admin(free_port())
    try:
        srv = server().start_run(
            site(app_file, admin.port), ready=(), env={"NOTIFY_SOCKET": notify.path}
        )
        ready = notify.wait("READY=1")
        assert "STATUS=1 groups ready" in ready.split("\n")
        # READY=1 means ready: the app answers and /healthz agrees.
        assert oxhttp.get(srv.port, "/app").status == 200
        assert admin.get("/healthz").status == 200
        assert oxhttp.get(srv.port, "/app").status == 200
        old_pid = admin.status()["groups"][0]["processes"][0]["pid"]

        srv.signal(signal.SIGHUP)
        reloading = notify.wait("RELOADING=1")
        assert re.search(r"^MONOTONIC_USEC=\d+$", reloading, re.M), reloading
        notify.wait("READY=1")
        # Counters survive the reload; the replaced process is counted.
        text = admin.metrics()
        assert metric(text, "oxwsgi_requests_total", group="g", status="2xx") == 2, text
        assert metric(text, "oxwsgi_process_restarts_total", group="g", reason="reload") == 1
        assert wait_for(
            lambda: old_pid not in [p["pid"] for p in admin.status()["groups"][0]["processes"]]
        )
        assert oxhttp.get(srv.port, "/app").status == 200
        assert metric(admin.metrics(), "oxwsgi_requests_total", group="g", status="2xx") == 3

        srv.signal(signal.SIGTERM)
        notify.wait("STOPPING=1")
        assert srv.wait(30) == 0
    finally:
        notify.close()


def test_socket_activation(server, app_file, tmp_path):
    """LISTEN_FDS/LISTEN_PID: the configured address is served on the socket
    passed as descriptor 3 (oxwsgi does not bind it: the test holds it, so a
    bind would fail), and the daemons do not inherit it."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    admin = Admin(free_port())
    srv = server()
    cfg = {"listen": [f"127.0.0.1:{port}"], **site(app_file, admin.port)}
    srv.write_config(cfg)
    srv.port = port
    # The socket goes on descriptor 3 in the child; the shell then execs
    # oxwsgi with its own pid as LISTEN_PID, as systemd does.
    sock_fd = listener.fileno()
    script = 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" run "$1"'
    srv.args = ["/bin/sh", "-c", script, binary(), str(srv.config_path)]
    srv._out = open(srv.stdout_path, "ab")
    srv._err = open(srv.stderr_path, "ab")
    srv.proc = subprocess.Popen(
        srv.args,
        cwd=srv.workdir,
        stdin=subprocess.DEVNULL,
        stdout=srv._out,
        stderr=srv._err,
        env=srv.env(),
        pass_fds=(3,),
        preexec_fn=lambda: os.dup2(sock_fd, 3),
        start_new_session=True,
    )
    assert wait_for(lambda: admin_ok(admin) or srv.proc.poll() is not None, timeout=30)
    assert srv.proc.poll() is None, srv.logs_tail()
    assert oxhttp.get(port, "/app").status == 200, srv.logs_tail()
    assert "using the socket passed by systemd" in srv.stderr_text()
    srv.remember_daemons()
    inode = os.fstat(listener.fileno()).st_ino
    listener.close()
    # The front still serves on its copy; no daemon holds the socket.
    assert oxhttp.get(port, "/app").status == 200
    for pid in srv.daemon_pids():
        links = []
        for entry in os.listdir(f"/proc/{pid}/fd"):
            try:
                links.append(os.readlink(f"/proc/{pid}/fd/{entry}"))
            except OSError:
                pass
        assert f"socket:[{inode}]" not in links, (pid, links)
    assert "LISTEN_FDS" not in open(f"/proc/{srv.daemon_pids()[0]}/environ", "rb").read().decode(
        "latin-1"
    )
    assert proc_exists(srv.pid)


def admin_ok(admin):
    try:
        return admin.get("/healthz").status == 200
    except (OSError, oxhttp.ConnectionClosed, oxhttp.Timeout):
        return False


def test_run_admin_option_for_an_apache_site_file(server, app_file):
    """`run site.conf --admin ADDR`: an Apache file has no admin setting."""
    srv = server()
    srv.port = free_port()
    conf = srv.workdir / "site.conf"
    conf.write_text(
        f"Listen 127.0.0.1:{srv.port}\n"
        "WSGIDaemonProcess g processes=1 threads=2\n"
        f"WSGIScriptAlias /app {app_file} process-group=g application-group=%{{GLOBAL}}\n"
    )
    admin = Admin(free_port())
    srv.start([binary(), "run", str(conf), "--admin", f"127.0.0.1:{admin.port}"], ready=("/app",))
    assert admin.get("/healthz").status == 200
    assert [g["name"] for g in admin.status()["groups"]] == ["g"]
    done = subprocess.run(
        [binary(), "run", str(conf), "--admin", f"127.0.0.1:{srv.port}"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 1 and "need an address of their own" in done.stderr, done.stderr


def test_socket_activation_refuses_a_datagram_socket(tmp_path, app_file):
    # TCP and Unix stream sockets are served (test_unix_socket.py); UDP is not.
    unix = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    unix.bind(("127.0.0.1", 0))
    config = tmp_path / "site.toml"
    config.write_text(
        f'listen = ["127.0.0.1:{free_port()}"]\n'
        f'[[mount]]\npath = "/"\nscript = "{app_file}"\n'
    )
    sock_fd = unix.fileno()
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" run "$1"', binary(), str(config)],
            capture_output=True,
            text=True,
            timeout=20,
            pass_fds=(3,),
            preexec_fn=lambda: os.dup2(sock_fd, 3),
        )
    finally:
        unix.close()
    assert done.returncode == 2, done
    assert "descriptor 3 is not a TCP or Unix stream socket" in done.stderr, done.stderr


def test_healthz_503_while_an_app_fails_to_import(server, app_file, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('no database')\n")
    admin = Admin(free_port())
    cfg = {
        "access-log": False,
        "admin": f"127.0.0.1:{admin.port}",
        "groups": {"good": {"threads": 2}, "bad": {"threads": 2}},
        "mount": [
            {"path": "/app", "script": str(app_file), "group": "good"},
            {"path": "/broken", "script": str(broken), "group": "bad"},
        ],
    }
    srv = server().start_run(cfg, ready=("/app", "/broken"))
    assert oxhttp.get(srv.port, "/broken").status == 500
    r = admin.get("/healthz")
    assert r.status == 503, r
    assert r.body == b"an application failed to import in group bad (see the error log)\n"
    groups = {g["name"]: g for g in admin.status()["groups"]}
    assert groups["bad"]["import_failures"] == 1 and groups["good"]["import_failures"] == 0
    # Fixing the script replaces the process (code-changed): healthy again.
    broken.write_text(APP)
    assert wait_for(lambda: admin.get("/healthz").status == 200, timeout=30), admin.get("/healthz")
    assert oxhttp.get(srv.port, "/broken").status == 200
    assert admin.status()["groups"][1]["restarts_by_reason"] == {"code-changed": 1}
