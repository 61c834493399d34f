"""Application groups (issue 5, DESIGN §1/§5): each named application group
is a sub-interpreter of its own in every daemon process of the group, with
its own sys.modules, sys.path additions and os.environ; %{GLOBAL} is the
main interpreter.

* two minimal Django projects whose wsgi.py each call
  os.environ.setdefault("DJANGO_SETTINGS_MODULE", ...) run in ONE process
  group with different application groups, and each sees its own settings
  over many interleaved concurrent requests; the same two under %{GLOBAL}
  in separate groups;
* a module-level counter is separate per application group and shared
  within one; %{SERVER} / %{RESOURCE} / %{ENV:...} expand as in mod_wsgi;
* numpy in %{GLOBAL} prints no warning, even next to sub-interpreters in
  the same process;
* a crash or a request-timeout inside a sub-interpreter: 502 / 504 and the
  process is replaced, as in the main interpreter;
* memory: 10 000 requests spread over sub-interpreters do not make the
  daemon's resident size grow without bound.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import oxhttp
from oxserver import APPS, proc_exists, wait_for

# ------------------------------------------------------------------ apps
DJANGO_WSGI = '''
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{package}.settings")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
'''

DJANGO_SETTINGS = '''
SECRET_KEY = "app-groups-e2e-{package}"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "{package}.urls"
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {{}}
USE_TZ = True
SITE_LABEL = "{label}"
'''

DJANGO_URLS = '''
import os
import sys
import threading

from django.conf import settings
from django.http import JsonResponse
from django.urls import re_path

_lock = threading.Lock()
_served = 0


def view(request):
    global _served
    with _lock:
        _served += 1
        served = _served
    return JsonResponse({{
        "label": settings.SITE_LABEL,
        "settings_module": os.environ.get("DJANGO_SETTINGS_MODULE"),
        "app_group": request.META.get("mod_wsgi.application_group"),
        "packages": sorted(m for m in sys.modules if m in ("site_one", "site_two")),
        "pid": os.getpid(),
        "served": served,
    }})


urlpatterns = [re_path(r"^.*$", view)]
'''

COUNTER_LIB = '''
import threading

_lock = threading.Lock()
count = 0


def bump():
    global count
    with _lock:
        count += 1
        return count
'''

COUNTER_APP = '''
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import counter_lib

hits = 0


def application(environ, start_response):
    global hits
    hits += 1
    body = json.dumps({
        "shared": counter_lib.bump(),
        "script_hits": hits,
        "app_group": environ["mod_wsgi.application_group"],
        "pid": os.getpid(),
        "input": environ["wsgi.input"].read().decode(),
        "input_type": type(environ["wsgi.input"]).__name__,
    }).encode()
    if environ.get("HTTP_X_FILE"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](open(__file__, "rb"))
    if environ.get("HTTP_X_FAIL"):
        raise RuntimeError("failing on purpose in %r" % environ["mod_wsgi.application_group"])
    if environ.get("HTTP_X_EXIT"):
        os._exit(3)
    if environ.get("HTTP_X_SPIN"):
        import time
        end = time.time() + float(environ["HTTP_X_SPIN"])
        while time.time() < end:
            pass
    print("counter app in %r" % environ["mod_wsgi.application_group"], file=environ["wsgi.errors"])
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
'''


def make_django(root: Path, package: str, label: str) -> Path:
    project = root / package
    (project / package).mkdir(parents=True)
    (project / package / "__init__.py").write_text("")
    (project / package / "settings.py").write_text(DJANGO_SETTINGS.format(package=package, label=label))
    (project / package / "urls.py").write_text(DJANGO_URLS.format())
    wsgi = project / "wsgi.py"
    wsgi.write_text(DJANGO_WSGI.format(package=package))
    return wsgi


def make_counter(root: Path) -> tuple[Path, Path]:
    (root / "counter_lib.py").write_text(COUNTER_LIB)
    one = root / "counter_one.py"
    two = root / "counter_two.py"
    one.write_text(COUNTER_APP)
    two.write_text(COUNTER_APP)
    return one, two


def get_json(port, path, headers=(), body=b"", method="GET"):
    r = oxhttp.request(port, method, path, headers=list(headers), body=body, timeout=60)
    assert r.status == 200, (path, r.status, r.body[:500])
    return r.json()


def hammer(port, paths, n, concurrency=12):
    """n requests spread round-robin over `paths` from `concurrency` client
    threads (each request on its own connection); returns (path, json)."""
    out = []
    lock = threading.Lock()

    def one(i):
        path = paths[i % len(paths)]
        data = get_json(port, path)
        with lock:
            out.append((path, data))

    with ThreadPoolExecutor(concurrency) as ex:
        for f in [ex.submit(one, i) for i in range(n)]:
            f.result()
    return out


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ------------------------------------------------------------------ Django
@pytest.fixture(scope="module")
def djangos(tmp_path_factory):
    root = tmp_path_factory.mktemp("djangos")
    return make_django(root, "site_one", "one"), make_django(root, "site_two", "two")


def check_django_results(results, expect):
    seen = {path: 0 for path in expect}
    for path, data in results:
        label, group = expect[path]
        assert data["label"] == label, (path, data)
        assert data["settings_module"] == f"site_{label}.settings", (path, data)
        assert data["app_group"] == group, (path, data)
        seen[path] += 1
    assert all(seen.values()), seen


def test_two_djangos_in_one_process_group_with_two_application_groups(server, djangos):
    one, two = djangos
    srv = server().start_run(
        {
            "access-log": False,
            "groups": {"both": {"processes": 2, "threads": 6}},
            "mount": [
                {"path": "/one", "script": str(one), "group": "both", "application-group": "one"},
                {"path": "/two", "script": str(two), "group": "both", "application-group": "two"},
            ],
        },
        ready=["/one/", "/two/"],
    )
    results = hammer(srv.port, ["/one/x", "/two/y"], 600, concurrency=16)
    check_django_results(results, {"/one/x": ("one", "one"), "/two/y": ("two", "two")})
    # Each interpreter imported only its own project.
    for path, data in results:
        assert data["packages"] == (["site_one"] if path == "/one/x" else ["site_two"]), data
    # Both interpreters live in the same processes.
    pids_one = {d["pid"] for p, d in results if p == "/one/x"}
    pids_two = {d["pid"] for p, d in results if p == "/two/y"}
    assert pids_one & pids_two, (pids_one, pids_two)
    log = srv.stderr_text()
    assert "created sub-interpreter for application group 'one'" in log
    assert "Traceback" not in log


def test_two_djangos_under_global_in_separate_groups(server, djangos):
    one, two = djangos
    srv = server().start_run(
        {
            "access-log": False,
            "groups": {"one": {"processes": 1, "threads": 4}, "two": {"processes": 1, "threads": 4}},
            "mount": [
                {"path": "/one", "script": str(one), "group": "one"},
                {"path": "/two", "script": str(two), "group": "two"},
            ],
        },
        ready=["/one/", "/two/"],
    )
    results = hammer(srv.port, ["/one/x", "/two/y"], 200)
    check_django_results(results, {"/one/x": ("one", ""), "/two/y": ("two", "")})
    assert "sub-interpreter" not in srv.stderr_text()


# ------------------------------------------------------------------ counters
@pytest.fixture(scope="module")
def counters(servers, tmp_path_factory):
    one, two = make_counter(tmp_path_factory.mktemp("counters"))
    cfg = {
        "access-log": False,
        "groups": {"g": {"processes": 1, "threads": 4, "request-timeout": 3, "interrupt-timeout": 5}},
        "mount": [
            {"path": "/x1", "script": str(one), "group": "g", "application-group": "x"},
            {"path": "/x2", "script": str(two), "group": "g", "application-group": "x"},
            {"path": "/x3", "script": str(one), "group": "g", "application-group": "x"},
            {"path": "/y1", "script": str(one), "group": "g", "application-group": "y", "preload": True},
            {"path": "/g1", "script": str(one), "group": "g"},
            {"path": "/g2", "script": str(two), "group": "g", "application-group": "%{GLOBAL}"},
            {"path": "/srv", "script": str(one), "group": "g", "application-group": "%{SERVER}"},
            {"path": "/res", "script": str(one), "group": "g", "application-group": "%{RESOURCE}"},
            {"path": "/env", "script": str(one), "group": "g", "application-group": "%{ENV:OXWSGI_E2E_APPGROUP}"},
            {"path": "/noenv", "script": str(one), "group": "g", "application-group": "%{ENV:OXWSGI_E2E_UNSET}"},
        ],
    }
    return servers("counters").start_run(cfg, ready=["/g1"], env={"OXWSGI_E2E_APPGROUP": "from-env"})


def test_counter_separate_per_application_group_shared_within_one(counters):
    port = counters.port
    assert "created sub-interpreter for application group 'y'" in counters.stderr_text(), "preload"
    x = [get_json(port, p) for p in ("/x1", "/x2", "/x1", "/x3")]
    assert [d["shared"] for d in x] == [1, 2, 3, 4], x
    assert all(d["app_group"] == "x" for d in x)
    # counter_one.py mounted twice in "x" is one module; counter_two.py another.
    assert [d["script_hits"] for d in x] == [1, 1, 2, 3], x
    y = [get_json(port, "/y1") for _ in range(2)]
    assert [d["shared"] for d in y] == [1, 2] and y[0]["app_group"] == "y", y
    # The readiness probe already made one request to /g1.
    g = [get_json(port, p) for p in ("/g1", "/g2", "/g1")]
    assert [d["shared"] for d in g] == [2, 3, 4] and g[0]["app_group"] == "", g
    assert get_json(port, "/x2")["shared"] == 5
    assert len({d["pid"] for d in x + y + g}) == 1


def test_concurrent_requests_keep_counts_apart(counters):
    port = counters.port
    before = {p: get_json(port, p)["shared"] for p in ("/x1", "/y1", "/g1")}
    results = hammer(port, ["/x1", "/y1", "/g1"], 300)
    after = {p: get_json(port, p)["shared"] for p in ("/x1", "/y1", "/g1")}
    for p in before:
        assert after[p] - before[p] == 101, (p, before, after)
    for p, d in results:
        assert d["app_group"] == {"/x1": "x", "/y1": "y", "/g1": ""}[p]


def test_request_objects_in_a_sub_interpreter(counters):
    port = counters.port
    d = get_json(port, "/x1", body=b"hello body", method="POST")
    assert d["input"] == "hello body" and d["input_type"] == "Input"
    r = oxhttp.get(port, "/x1", headers=[("X-File", "1")], timeout=30)
    assert r.status == 200 and b"counter_lib" in r.body
    mark = counters.stderr_mark()
    r = oxhttp.get(port, "/x1", headers=[("X-Fail", "1")], timeout=30)
    assert r.status == 500
    log = counters.wait_stderr("failing on purpose", mark=mark, timeout=10)
    assert "RuntimeError" in log
    assert get_json(port, "/x1")["app_group"] == "x"


def test_server_resource_and_env_expand_as_mod_wsgi(counters):
    port = counters.port
    d = get_json(port, "/srv", headers=[("Host", "Example.ORG")])
    assert d["app_group"] == f"example.org:{port}"
    d = get_json(port, "/res", headers=[("Host", "example.org")])
    assert d["app_group"] == f"example.org:{port}|/res"
    assert get_json(port, "/env")["app_group"] == "from-env"
    assert get_json(port, "/noenv")["app_group"] == ""


def test_crash_in_a_sub_interpreter_502_then_recovery(counters):
    port = counters.port
    old = get_json(port, "/x1")["pid"]
    r = oxhttp.get(port, "/x1", headers=[("X-Exit", "1")], timeout=60)
    assert r.status == 502, r
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = oxhttp.get(port, "/x1", timeout=60)
        if r.status == 200:
            break
        time.sleep(0.2)
    assert r.status == 200, r
    d = r.json()
    assert d["pid"] != old and d["app_group"] == "x" and d["shared"] == 1
    assert not proc_exists(old)


def test_request_timeout_in_a_sub_interpreter_504_interrupt_and_recycle(counters):
    port = counters.port
    before = get_json(port, "/y1")["pid"]
    mark = counters.stderr_mark()
    t0 = time.monotonic()
    r = oxhttp.get(port, "/y1", headers=[("X-Spin", "30")], timeout=60)
    assert r.status == 504, r
    assert time.monotonic() - t0 < 15
    # The interrupt and the stack dump are separate messages from separate
    # threads of the daemon: wait for each, in whatever order they come.
    counters.wait_stderr("RequestTimeout", mark=mark, timeout=15)
    counters.wait_stderr("interrupted oxwsgi-thread", mark=mark, timeout=15)
    header = "Python stacks in application group 'y'"
    wait_for(lambda: "in application" in counters.stderr_since(mark).partition(header)[2], timeout=15)
    log = counters.stderr_since(mark)
    assert "interrupted oxwsgi-thread" in log
    # The stack dump reaches into the sub-interpreter.
    assert header in log
    assert "in application" in log.split(header)[1]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc_exists(before):
        time.sleep(0.1)
    assert not proc_exists(before)
    assert get_json(port, "/y1")["pid"] != before


# ------------------------------------------------------------------ numpy
def test_numpy_in_global_prints_no_warning_next_to_sub_interpreters(server, tmp_path):
    one, _ = make_counter(tmp_path)
    srv = server().start_run(
        {
            "access-log": False,
            "groups": {"g": {"processes": 1, "threads": 4}},
            "mount": [
                {"path": "/numpy", "script": str(APPS / "numpy_app.py"), "group": "g"},
                {"path": "/sub", "script": str(one), "group": "g", "application-group": "sub"},
            ],
        },
        ready=["/numpy"],
    )
    for _ in range(5):
        assert get_json(srv.port, "/sub")["app_group"] == "sub"
        d = get_json(srv.port, "/numpy")
        assert d["sum"] == 66 and d["application_group"] == ""
    log = srv.stderr_text()
    assert "Interpreter change detected" not in log
    assert "sub-interpreter" not in log.replace("created sub-interpreter for application group 'sub'", "")
    assert "Warning" not in log and "Traceback" not in log, log


# ------------------------------------------------------------------ memory
@pytest.mark.timeout(600)
def test_memory_does_not_grow_over_10000_requests_across_sub_interpreters(server, tmp_path):
    one, two = make_counter(tmp_path)
    srv = server().start_run(
        {
            "access-log": False,
            "groups": {"g": {"processes": 1, "threads": 4}},
            "mount": [
                {"path": "/a", "script": str(one), "group": "g", "application-group": "a"},
                {"path": "/b", "script": str(two), "group": "g", "application-group": "b"},
                {"path": "/m", "script": str(one), "group": "g"},
            ],
        },
        ready=["/m", "/a", "/b"],
    )
    pid = get_json(srv.port, "/a")["pid"]
    paths = ["/a", "/b", "/a", "/m"]
    lock = threading.Lock()
    done = [0]

    def client(k, n):
        with oxhttp.Conn(srv.port, timeout=60) as conn:
            for i in range(n):
                path = paths[(k + i) % len(paths)]
                conn.send(oxhttp.build_request("POST", path, body=b"x" * 100))
                r = conn.read_response("POST", timeout=60)
                assert r.status == 200, r
        with lock:
            done[0] += n

    def run(total):
        with ThreadPoolExecutor(4) as ex:
            for f in [ex.submit(client, k, total // 4) for k in range(4)]:
                f.result()

    run(2000)
    rss_2k = rss_kib(pid)
    run(8000)
    rss_10k = rss_kib(pid)
    print(f"daemon RSS: {rss_2k} KiB after 2 000 requests, {rss_10k} KiB after 10 000")
    assert done[0] == 10000
    assert get_json(srv.port, "/a")["pid"] == pid, "the daemon was replaced"
    # Generous: allocator noise, not a leak of objects per request.
    assert rss_10k <= rss_2k * 1.25 + 8 * 1024, (rss_2k, rss_10k)


# ------------------------------------------------------------------ interpreter-gil
def test_interpreter_gil_own_needs_python_3_12(server, tmp_path):
    import subprocess
    import sys

    from oxserver import binary, toml_dumps

    one, _ = make_counter(tmp_path)
    cfg = tmp_path / "own.toml"
    cfg.write_text(toml_dumps({
        "listen": ["127.0.0.1:1"],
        "groups": {"g": {"interpreter-gil": "own"}},
        "mount": [{"path": "/", "script": str(one), "group": "g", "application-group": "x"}],
    }))
    srv = server()
    if sys.version_info >= (3, 12):
        pytest.skip("this python has PEP 684: interpreter-gil = 'own' is allowed")
    r = subprocess.run([binary(), "run", str(cfg)], env=srv.env(), capture_output=True, timeout=60)
    assert r.returncode == 2, r
    assert b'interpreter-gil = "own" needs Python 3.12 or later' in r.stderr, r.stderr


CPU_APP = '''
import time


def application(environ, start_response):
    n = int(environ.get("HTTP_X_WORK", "0"))
    t0 = time.perf_counter()
    total = 0
    for i in range(n):
        total += i * i
    body = ("%s %.3f" % (environ["mod_wsgi.application_group"], time.perf_counter() - t0)).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
'''


@pytest.mark.skipif(
    __import__("sys").version_info < (3, 13),
    reason="interpreter-gil = 'own' needs Python 3.12 (PEP 684), and CPython 3.12.1 itself aborts "
    "importing Django in two isolated interpreters at once (reproduced without oxwsgi)",
)
def test_interpreter_gil_own_runs_application_groups_in_parallel(server, tmp_path, djangos):
    app = tmp_path / "cpu.py"
    app.write_text(CPU_APP)
    one, two = djangos
    srv = server().start_run(
        {
            "access-log": False,
            "groups": {"g": {"processes": 1, "threads": 4, "interpreter-gil": "own"}},
            "mount": [
                {"path": "/p", "script": str(app), "group": "g", "application-group": "p"},
                {"path": "/q", "script": str(app), "group": "g", "application-group": "q"},
                {"path": "/one", "script": str(one), "group": "g", "application-group": "one"},
                {"path": "/two", "script": str(two), "group": "g", "application-group": "two"},
            ],
        },
        ready=["/p", "/q"],
    )
    # Django runs in own-GIL sub-interpreters too.
    results = hammer(srv.port, ["/one/x", "/two/y"], 100)
    check_django_results(results, {"/one/x": ("one", "one"), "/two/y": ("two", "two")})
    work = [("X-Work", "3000000")]

    def timed(path):
        t0 = time.monotonic()
        r = oxhttp.get(srv.port, path, headers=work, timeout=120)
        assert r.status == 200, r
        return time.monotonic() - t0

    alone = min(timed("/p") for _ in range(2))
    with ThreadPoolExecutor(2) as ex:
        t0 = time.monotonic()
        list(ex.map(timed, ["/p", "/q"]))
        together = time.monotonic() - t0
    print(f"one CPU-bound request alone: {alone:.2f} s; two in two own-GIL groups at once: {together:.2f} s")
    # Serialised by one GIL they would take ~2x; allow for a busy machine.
    assert together < alone * 1.7, (alone, together)
    assert "Traceback" not in srv.stderr_text()
