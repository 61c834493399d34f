"""The mission's site: examples/two-apps (two groups, 2 processes x 15
threads each, display-name %{GROUP}, %{GLOBAL}), run from a copy of the
example folder with only the port replaced, plus one extra mount running
numpy in the main interpreter."""

from __future__ import annotations

import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import oxhttp
from oxserver import APPS, REPO, cmdline, daemon_python, proc_exists

EXAMPLE = REPO / "examples" / "two-apps"
MOUNTS = {"app_one": "/api/wsgi/one", "app_two": "/api/wsgi/two"}
N_REQUESTS = 200  # per mount


@pytest.fixture(scope="module")
def site(servers):
    srv = servers("two-apps")
    site_dir = srv.workdir / "site"
    shutil.copytree(EXAMPLE, site_dir)
    shutil.copy(APPS / "numpy_app.py", site_dir / "numpy_app.py")
    toml = (site_dir / "oxwsgi.toml").read_text()
    assert toml.count('"127.0.0.1:8000"') == 1, "the example should listen on 127.0.0.1:8000"
    from oxserver import free_port

    port = free_port()
    toml = toml.replace('"127.0.0.1:8000"', f'"127.0.0.1:{port}"')
    # Extra: numpy in %{GLOBAL}, in a group of its own (relative script path).
    toml += f"""
[groups.numpy]
processes = 1
threads = 2
python = "{daemon_python()}"

[[mount]]
path = "/numpy"
script = "numpy_app.py"
group = "numpy"
"""
    cfg = site_dir / "oxwsgi.toml"
    cfg.write_text(toml)
    srv.port = port
    srv.start_run(cfg, ready=[MOUNTS["app_one"] + "/", MOUNTS["app_two"] + "/", "/numpy"])
    return srv


def _hammer(port: int, path: str, n: int, concurrency: int = 16) -> list[dict]:
    """n GET requests: the first 20 one by one, the rest from `concurrency`
    threads each with its own keep-alive session."""
    out = []
    for i in range(20):
        r = requests.get(f"http://127.0.0.1:{port}{path}/seq/{i}", timeout=30)
        assert r.status_code == 200, r.text
        out.append(r.json())
    lock = threading.Lock()
    local = threading.local()

    def one(i):
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
        r = s.get(f"http://127.0.0.1:{port}{path}/c/{i}", timeout=30)
        assert r.status_code == 200, r.text
        with lock:
            out.append(r.json())

    with ThreadPoolExecutor(concurrency) as ex:
        for f in [ex.submit(one, i) for i in range(n - 20)]:
            f.result()
    return out


@pytest.fixture(scope="module")
def answers(site):
    return {g: _hammer(site.port, p, N_REQUESTS) for g, p in MOUNTS.items()}


def test_two_distinct_pids_per_group_disjoint(site, answers):
    pids = {g: {a["pid"] for a in ans} for g, ans in answers.items()}
    for g, ans in answers.items():
        assert len(ans) == N_REQUESTS
        assert len(pids[g]) == 2, f"group {g}: expected exactly 2 daemon pids, saw {sorted(pids[g])}"
    assert not (pids["app_one"] & pids["app_two"]), pids
    daemons = set(site.daemon_pids())
    for g, ps in pids.items():
        assert ps <= daemons, f"{g} pids {ps} are not children of the front {site.pid} ({daemons})"
        assert site.pid not in ps


def test_environ_process_and_application_group(answers):
    for g, ans in answers.items():
        app = "one" if g == "app_one" else "two"
        for a in ans:
            assert a["app"] == app
            assert a["process_group"] == g
            assert a["application_group"] == ""  # %{GLOBAL}
            assert a["script_name"] == MOUNTS[g]
            assert a["path_info"].startswith(("/seq/", "/c/"))


def test_process_titles(answers):
    for g, ans in answers.items():
        for pid in {a["pid"] for a in ans}:
            assert proc_exists(pid)
            raw = cmdline(pid)
            title = raw.rstrip(b"\0").rstrip(b" ")
            assert title == f"(wsgi:{g})".encode(), f"/proc/{pid}/cmdline = {raw!r}"
            ps = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=True)
            assert ps.stdout.strip() == f"(wsgi:{g})", ps.stdout


def test_example_relative_paths_and_root_404(site):
    # Whole-segment routing on the example: /api/wsgi/onex is not app one.
    assert oxhttp.get(site.port, "/api/wsgi/onex").status == 404
    assert oxhttp.get(site.port, "/").status == 404
    r = oxhttp.get(site.port, "/api/wsgi/two")
    assert r.status == 200 and r.json()["path_info"] == ""


def test_numpy_in_global_interpreter(site):
    import numpy

    mark = 0  # the whole error log, start-up included
    r = oxhttp.get(site.port, "/numpy")
    assert r.status == 200, r
    j = r.json()
    assert j["numpy"] == numpy.__version__
    assert j["sum"] == 66
    assert j["matmul"] == [[14, 38, 62], [38, 126, 214], [62, 214, 366]]
    assert j["mean"] == 0.5
    assert j["process_group"] == "numpy"
    assert j["application_group"] == ""
    log = site.stderr_since(mark).lower()
    for bad in ("sub-interpreter", "subinterpreter", "userwarning"):
        assert bad not in log, f"{bad!r} in the error log:\n{site.stderr_text()[-3000:]}"
