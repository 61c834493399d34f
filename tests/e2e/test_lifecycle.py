"""Command line and process lifecycle (DESIGN §2, §3): `oxwsgi serve`,
graceful stop on SIGTERM / SIGINT, configuration errors (exit 1 with
file:line and key), start-up failures (exit 2)."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading

import pytest

import oxhttp
from oxserver import APPS, REPO, binary, proc_exists

HELLO = REPO / "examples" / "hello" / "wsgi.py"


def test_serve_hello_example(server):
    srv = server("hello").start_serve(HELLO)
    r = oxhttp.get(srv.port, "/")
    assert r.status == 200
    assert r.body == b"Hello, world!\n"
    assert r.header("content-length") == "14"
    r = oxhttp.get(srv.port, "/any/path")  # --mount defaults to "/"
    assert r.body == b"Hello, world!\n"
    assert srv.stop() == 0


def test_serve_options(server):
    srv = server("serve-opts").start_serve(APPS / "info.py", "--processes", "2", "--threads", "3",
                                           "--mount", "/app", ready=["/app"])
    e = oxhttp.get(srv.port, "/app/x").json()["environ"]
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("/app", "/x")
    assert e["wsgi.multiprocess"] is True and e["wsgi.multithread"] is True
    assert oxhttp.get(srv.port, "/other").status == 404
    assert srv.stop() == 0


def test_front_threads(server):
    srv = server("front-threads").start_serve(HELLO, "--front-threads", "3")
    assert oxhttp.get(srv.port, "/").status == 200
    assert "front: 3 runtime thread(s)" in srv.stderr_text()
    assert srv.stop() == 0
    srv = server("front-threads-default").start_serve(HELLO)
    assert oxhttp.get(srv.port, "/").status == 200
    default = max(1, (len(os.sched_getaffinity(0)) + 1) // 2)
    assert f"front: {default} runtime thread(s)" in srv.stderr_text()
    assert srv.stop() == 0


def test_cpu_policy_and_priority(server):
    """Daemon threads run SCHED_BATCH unless `cpu-policy = "normal"`;
    `cpu-priority` sets their nice value (mod_wsgi's option)."""
    cfg = {
        "groups": {"batch": {"threads": 2}, "normal": {"threads": 2, "cpu-policy": "normal", "cpu-priority": 19}},
        "mount": [
            {"path": "/batch", "script": str(APPS / "info.py"), "group": "batch"},
            {"path": "/normal", "script": str(APPS / "info.py"), "group": "normal"},
        ],
    }
    srv = server("cpu-policy").start_run(cfg, ready=["/batch/", "/normal/"])
    batch = oxhttp.get(srv.port, "/batch/").json()
    normal = oxhttp.get(srv.port, "/normal/").json()
    assert batch["sched_policy"] == os.SCHED_BATCH
    assert batch["nice"] == os.getpriority(os.PRIO_PROCESS, 0)
    assert normal["sched_policy"] == os.SCHED_OTHER
    assert normal["nice"] == 19
    # The front itself keeps the normal policy.
    assert os.sched_getscheduler(srv.pid) == os.SCHED_OTHER
    assert srv.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_stop_finishes_inflight_request(server, sig):
    cfg = {
        "groups": {"g": {"processes": 2, "threads": 2}},
        "mount": [{"path": "/", "script": str(APPS / "info.py"), "group": "g"}],
    }
    srv = server("graceful").start_run(cfg)
    daemons = srv.daemon_pids()
    assert len(daemons) >= 2, f"expected 2 daemon processes under the front, found {daemons}"
    result = {}

    def slow():
        try:
            result["r"] = oxhttp.get(srv.port, "/slow", headers=[("X-Sleep", "2"), ("X-Token", "graceful")], timeout=60)
        except Exception as e:  # noqa: BLE001
            result["r"] = e

    t = threading.Thread(target=slow)
    t.start()
    srv.wait_stderr("token=graceful", 0, timeout=30)  # the request is inside the app
    srv.signal(sig)
    t.join(60)
    r = result.get("r")
    assert isinstance(r, oxhttp.Response) and r.status == 200, f"in-flight request during stop: {r!r}"
    assert srv.wait(30) == 0
    # Daemons leaving because the front stops are not crashes to replace.
    assert "starting a replacement" not in srv.stderr_text()
    for p in daemons:
        assert not proc_exists(p), f"daemon {p} still alive after the front exited"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()


# ---------------------------------------------------------------- config errors
def run_expect_exit(server, text: str, name: str, timeout=30):
    srv = server(name)
    path = srv.write_config(text)
    srv.start([binary(), "run", str(path)], ready=None)
    code = srv.wait(timeout)
    return srv, path, code, srv.stderr_text()


def line_of(text: str, needle: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise ValueError(needle)


def assert_points_at(err: str, path, lines):
    m = re.findall(re.escape(str(path)) + r":(\d+)", err)
    assert m, f"the message must name the file as {path}:LINE:\n{err}"
    assert any(int(x) in lines for x in m), f"expected line {lines} in {m}:\n{err}"


CONFIG_OK_PART = """listen = ["127.0.0.1:1"]

[groups.g]
processes = 1
threads = 2
"""


def test_unknown_group_key_exit_1_with_suggestion(server):
    text = CONFIG_OK_PART + f"""proceses = 2

[[mount]]
path = "/"
script = "{APPS / 'info.py'}"
group = "g"
"""
    srv, path, code, err = run_expect_exit(server, text, "unknown-key")
    assert code == 1, err
    assert "proceses" in err and "processes" in err, err
    assert_points_at(err, path, {line_of(text, "proceses")})
    assert "Traceback" not in err and "panicked" not in err


def test_unknown_top_level_key_exit_1(server):
    text = 'listn = ["127.0.0.1:1"]\n' + CONFIG_OK_PART.split("\n", 1)[1] + f"""
[[mount]]
path = "/"
script = "{APPS / 'info.py'}"
group = "g"
"""
    srv, path, code, err = run_expect_exit(server, text, "unknown-top")
    assert code == 1, err
    assert "listn" in err and "listen" in err, err
    assert_points_at(err, path, {1})


def test_unknown_mount_key_exit_1(server):
    text = CONFIG_OK_PART + f"""
[[mount]]
path = "/"
scrpit = "{APPS / 'info.py'}"
group = "g"
"""
    srv, path, code, err = run_expect_exit(server, text, "unknown-mount-key")
    assert code == 1, err
    assert "scrpit" in err and "script" in err, err
    assert_points_at(err, path, {line_of(text, "scrpit")})


def test_undefined_group_exit_1(server):
    text = CONFIG_OK_PART + f"""
[[mount]]
path = "/"
script = "{APPS / 'info.py'}"
group = "nope"
"""
    srv, path, code, err = run_expect_exit(server, text, "undefined-group")
    assert code == 1, err
    assert "nope" in err, err
    assert_points_at(err, path, {line_of(text, 'group = "nope"'), line_of(text, "[[mount]]")})


def test_toml_syntax_error_exit_1(server):
    text = CONFIG_OK_PART + "[[mount]\npath = \n"
    srv, path, code, err = run_expect_exit(server, text, "syntax")
    assert code == 1, err
    assert str(path) in err, err


def test_missing_config_file_exit_1(server):
    srv = server("missing")
    srv.start([binary(), "run", str(srv.workdir / "does-not-exist.toml")], ready=None)
    assert srv.wait(30) == 1
    assert "does-not-exist.toml" in srv.stderr_text()


def test_port_in_use_exit_2(server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        text = f"""listen = ["127.0.0.1:{port}"]

[groups.g]
processes = 1
threads = 1

[[mount]]
path = "/"
script = "{APPS / 'info.py'}"
group = "g"
"""
        srv, path, code, err = run_expect_exit(server, text, "port-in-use", timeout=60)
    assert code == 2, err
    assert str(port) in err, err
    assert not srv.kill_leftovers(), "daemons left behind after a failed start"


def test_interpreter_not_found_exit_2(server, tmp_path):
    text = f"""listen = ["127.0.0.1:{_free()}"]

[groups.g]
processes = 1
threads = 1
python = "{tmp_path}/no/such/python"

[[mount]]
path = "/"
script = "{APPS / 'info.py'}"
group = "g"
"""
    srv, path, code, err = run_expect_exit(server, text, "no-python", timeout=60)
    assert code == 2, err
    assert "no/such/python" in err, err


def _free():
    from oxserver import free_port

    return free_port()


def test_version_and_help():
    import subprocess

    v = subprocess.run([binary(), "--version"], capture_output=True, text=True, timeout=30)
    assert v.returncode == 0 and re.search(r"\d+\.\d+\.\d+", v.stdout), v
    h = subprocess.run([binary(), "--help"], capture_output=True, text=True, timeout=30)
    assert h.returncode == 0
    for cmd in ("serve", "run", "check"):
        assert cmd in h.stdout, h.stdout
