"""Elastic daemon groups (issue 18, part 1): a group with `min-processes` /
`max-processes` grows while requests wait and shrinks back when idle.

* a burst of slow requests grows a 1..4 group to 4; every request is
  answered 200, also the ones sent while it shrinks back to 1, and the one
  running on a process that is retired while busy;
  the bounds are never crossed (/status sampled all along); a retired
  daemon exits (its memory is returned) and is not counted as a restart;
  /status, `oxwsgi status` and /metrics show the target and the events;
* config errors name file, line and key; an Apache file's elastic option is
  reported by `check` as TOML-only.

Timing is never asserted: the test config uses short delays and every wait
is a generous poll.
"""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

import oxhttp
from oxserver import binary, free_port, proc_exists, wait_for
from test_admin import Admin, metric

APP = '''
import os, time

def application(environ, start_response):
    if environ.get("PATH_INFO") == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or 1))
    body = ("%d" % os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

MIN, MAX = 1, 4


def elastic_site(app_file, admin_port):
    return {
        "access-log": False,
        "admin": f"127.0.0.1:{admin_port}",
        "groups": {
            "g": {
                "threads": 1,
                "min-processes": MIN,
                "max-processes": MAX,
                "scale-up-delay": 0.2,
                "scale-down-delay": 1,
                "scale-cooldown": 0.5,
            }
        },
        "mount": [{"path": "/", "script": str(app_file), "group": "g"}],
    }


class Sampler(threading.Thread):
    """Reads /status every 0.1 s while the test runs."""

    def __init__(self, admin: Admin):
        super().__init__(daemon=True)
        self.admin = admin
        self.samples: list[dict] = []
        self.errors: list[str] = []
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                group = self.admin.status()["groups"][0]
                self.samples.append(group)
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(e))
            time.sleep(0.1)

    def stop(self):
        self.done.set()
        self.join(timeout=15)


def group_of(admin: Admin) -> dict:
    return admin.status()["groups"][0]


@pytest.mark.timeout(300)
def test_a_burst_grows_the_group_to_max_and_idleness_shrinks_it_back(server, tmp_path):
    app_file = tmp_path / "elastic_app.py"
    app_file.write_text(APP)
    admin_port = free_port()
    srv = server().start_run(elastic_site(app_file, admin_port), ready=("/",))
    admin = Admin(admin_port)
    assert wait_for(lambda: admin.get("/healthz").status == 200, timeout=30)
    first = group_of(admin)
    assert first["scaling"]["min_processes"] == MIN and first["scaling"]["max_processes"] == MAX
    assert first["scaling"]["current"] == 1 and first["target_processes"] == 1, first

    sampler = Sampler(admin)
    sampler.start()
    statuses: list = []
    lock = threading.Lock()
    load_on = threading.Event()
    load_on.set()

    def client(path: str, pause: float):
        while load_on.is_set():
            try:
                r = oxhttp.get(srv.port, path, timeout=60)
                result = r.status
            except Exception as e:  # noqa: BLE001 - a failed request is a finding
                result = repr(e)
            with lock:
                statuses.append(result)
            time.sleep(pause)

    # Eight clients of slow requests on 1-thread processes: requests wait
    # until the group has grown to its maximum.
    burst = [threading.Thread(target=client, args=("/sleep?0.5", 0), daemon=True) for _ in range(8)]
    for t in burst:
        t.start()
    try:
        grown = wait_for(
            lambda: (g := group_of(admin))["scaling"]["current"] == MAX and g,
            timeout=90,
            every=0.2,
        )
        assert grown, group_of(admin)
        grown_pids = {p["pid"] for p in grown["processes"]}
        assert len(grown_pids) == MAX
    finally:
        load_on.clear()
        for t in burst:
            t.join(timeout=90)

    # A trickle of quick requests while it shrinks: none may fail.
    load_on.set()
    trickle = threading.Thread(target=client, args=("/", 0.1), daemon=True)
    trickle.start()
    try:
        shrunk = wait_for(
            lambda: (g := group_of(admin))["scaling"]["current"] == MIN
            and len(g["processes"]) == MIN
            and g,
            timeout=90,
            every=0.2,
        )
        assert shrunk, group_of(admin)
    finally:
        load_on.clear()
        trickle.join(timeout=60)
        sampler.stop()

    assert statuses and all(s == 200 for s in statuses), [s for s in statuses if s != 200][:10]
    assert not sampler.errors, sampler.errors[:5]
    assert sampler.samples
    for sample in sampler.samples:
        live = len(sample["processes"])
        accepting = sum(1 for p in sample["processes"] if p["accepting"])
        assert live <= MAX, sample
        assert accepting >= MIN, sample
        assert MIN <= sample["scaling"]["target"] <= MAX, sample

    # The retired daemons exited: their memory is back.
    kept = {p["pid"] for p in shrunk["processes"]}
    gone = grown_pids - kept
    assert len(gone) >= MAX - MIN
    assert wait_for(lambda: not any(proc_exists(pid) for pid in gone), timeout=30), gone

    # Each event with its reason; a scale-down is not a restart.
    events = shrunk["scaling"]["events"]
    ups = [e for e in events if e["direction"] == "up"]
    downs = [e for e in events if e["direction"] == "down"]
    assert ups and all(e["reason"] in ("queue", "spare-threads") and e["to"] > e["from"] for e in ups), events
    assert len(downs) >= MAX - MIN and all(e["reason"] == "surplus" for e in downs), events
    assert all(e["to"] == e["from"] - 1 for e in downs), events
    assert all(e["detail"] for e in events), events
    assert shrunk["restarts"] == 0 and shrunk["restarts_by_reason"] == {}, shrunk
    assert shrunk["target_processes"] == MIN

    text = admin.metrics()
    assert metric(text, "oxwsgi_scale_events_total", group="g", direction="up") == len(ups), text
    assert metric(text, "oxwsgi_scale_events_total", group="g", direction="down") == len(downs), text
    assert metric(text, "oxwsgi_target_processes", group="g") == MIN
    assert metric(text, "oxwsgi_ready_processes", group="g") == MIN
    assert not [line for line in text.splitlines() if line.startswith("oxwsgi_process_restarts_total")], text

    table = subprocess.run(
        [binary(), "status", "--admin", f"127.0.0.1:{admin_port}"],
        capture_output=True, text=True, timeout=30,
    )
    assert table.returncode == 0, table.stderr
    assert f"(elastic {MIN}..{MAX})" in table.stdout and "scaled down" in table.stdout, table.stdout


def run_check(path):
    return subprocess.run([binary(), "check", str(path)], capture_output=True, text=True, timeout=60)


def test_check_shows_an_elastic_group_and_refuses_bad_bounds(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(
        '[groups.g]\nthreads = 2\nmin-processes = 2\nmax-processes = 6\n'
        '[[mount]]\npath = "/"\nmodule = "m:app"\ngroup = "g"\n'
    )
    r = run_check(good)
    assert r.returncode == 0, r.stderr
    assert "2..6 × 2" in r.stdout, r.stdout

    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[groups.g]\nthreads = 2\nmax-processes = 2\nmin-processes = 3\n'
        '[[mount]]\npath = "/"\nmodule = "m:app"\ngroup = "g"\n'
    )
    r = run_check(bad)
    assert r.returncode == 1, r.stdout
    assert "bad.toml:4" in r.stderr and "min-processes" in r.stderr and "max-processes" in r.stderr, r.stderr

    orphan = tmp_path / "orphan.toml"
    orphan.write_text(
        '[groups.g]\nprocesses = 2\nscale-down-delay = 5\n'
        '[[mount]]\npath = "/"\nmodule = "m:app"\ngroup = "g"\n'
    )
    r = run_check(orphan)
    assert r.returncode == 1, r.stdout
    assert "orphan.toml:3" in r.stderr and "scale-down-delay" in r.stderr and "elastic" in r.stderr, r.stderr


def test_check_says_elastic_groups_are_toml_only_for_an_apache_file(tmp_path):
    conf = tmp_path / "site.conf"
    conf.write_text(
        "WSGIDaemonProcess g processes=2 max-processes=4\n"
        "WSGIScriptAlias / /srv/app.wsgi process-group=g application-group=%{GLOBAL}\n"
    )
    r = run_check(conf)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "site.conf:1" in out and "max-processes" in out and "TOML" in out, out


def test_serve_takes_the_elastic_flags(server, tmp_path):
    app_file = tmp_path / "elastic_app.py"
    app_file.write_text(APP)
    admin_port = free_port()
    srv = server().start_serve(
        app_file, "--admin", f"127.0.0.1:{admin_port}", "--threads", "2",
        "--min-processes", "2", "--max-processes", "3", ready=("/",),
    )
    admin = Admin(admin_port)
    group = wait_for(lambda: (g := group_of(admin))["scaling"]["current"] == 2 and g, timeout=60)
    assert group, group_of(admin)
    assert group["scaling"]["min_processes"] == 2 and group["scaling"]["max_processes"] == 3
    assert len(group["processes"]) == 2 and group["target_processes"] == 2
    assert oxhttp.get(srv.port, "/").status == 200


@pytest.mark.timeout(300)
def test_a_busy_process_retired_by_a_scale_down_finishes_its_request(server, tmp_path):
    """Both processes of a 1..2 group start with a long request each; once
    a process is surplus one of them is retired while its request runs:
    that request still answers 200, then the process exits."""
    app_file = tmp_path / "elastic_app.py"
    app_file.write_text(APP)
    admin_port = free_port()
    cfg = elastic_site(app_file, admin_port)
    cfg["groups"]["g"].update({
        "threads": 2, "processes": 2, "min-processes": 1, "max-processes": 2,
        "scale-down-delay": 5, "scale-cooldown": 0.5, "graceful-timeout": 120,
    })
    srv = server().start_run(cfg, ready=("/",))
    admin = Admin(admin_port)
    assert wait_for(lambda: group_of(admin)["scaling"]["current"] == 2, timeout=60), group_of(admin)

    results: dict = {}
    keepers_on = threading.Event()
    keepers_on.set()
    keeper_statuses: list = []

    def long_request(name):
        try:
            r = oxhttp.get(srv.port, "/sleep?15", timeout=120)
            results[name] = (r.status, r.body.decode())
        except Exception as e:  # noqa: BLE001 - a failed request is a finding
            results[name] = (repr(e), "")

    def keeper():
        # Short requests beside the long ones keep two processes needed.
        while keepers_on.is_set():
            try:
                keeper_statuses.append(oxhttp.get(srv.port, "/sleep?0.3", timeout=60).status)
            except Exception as e:  # noqa: BLE001
                keeper_statuses.append(repr(e))

    keepers = [threading.Thread(target=keeper, daemon=True) for _ in range(2)]
    for t in keepers:
        t.start()
    longs = [threading.Thread(target=long_request, args=(n,), daemon=True) for n in ("a", "b")]
    for t in longs:
        t.start()
    try:
        # The two long requests are one on each process (least-loaded first).
        spread = wait_for(
            lambda: all(
                any(c["path"] == "/sleep" and c["age"] > 0.5 for c in p["current"])
                for p in group_of(admin)["processes"]
            ),
            timeout=30,
        )
        assert spread, group_of(admin)
    finally:
        keepers_on.clear()
        for t in keepers:
            t.join(timeout=60)
    # Now only the long requests run: one process is surplus and is retired
    # while busy.
    down = wait_for(
        lambda: [e for e in group_of(admin)["scaling"]["events"] if e["direction"] == "down"],
        timeout=60,
    )
    assert down, group_of(admin)
    during = group_of(admin)
    draining = [p for p in during["processes"] if not p["accepting"]]
    assert draining and draining[0]["current"], during  # retired with its request in flight
    for t in longs:
        t.join(timeout=120)
    assert results.get("a", ("?",))[0] == 200 and results.get("b", ("?",))[0] == 200, results
    assert keeper_statuses and all(s == 200 for s in keeper_statuses), keeper_statuses
    pids = {int(results["a"][1]), int(results["b"][1])}
    assert len(pids) == 2, results
    kept = wait_for(lambda: {p["pid"] for p in group_of(admin)["processes"]} if len(group_of(admin)["processes"]) == 1 else None, timeout=60)
    assert kept, group_of(admin)
    retired = pids - kept
    assert len(retired) == 1, (pids, kept, during)
    assert wait_for(lambda: not any(proc_exists(pid) for pid in retired), timeout=30), retired
    assert group_of(admin)["restarts"] == 0


def test_a_reload_restarts_an_elastic_group_at_its_start_count(server, tmp_path):
    """SIGHUP: the new group starts with `processes` (here 2 of 1..3), the
    scale counters survive, the reload counts the processes it replaced."""
    import signal

    app_file = tmp_path / "elastic_app.py"
    app_file.write_text(APP)
    admin_port = free_port()
    cfg = elastic_site(app_file, admin_port)
    cfg["groups"]["g"].update({"processes": 2, "max-processes": 3, "scale-down-delay": 0.5, "scale-cooldown": 0.2})
    srv = server().start_run(cfg, ready=("/",))
    admin = Admin(admin_port)
    # Idle: it shrinks from 2 to 1 by itself.
    shrunk = wait_for(lambda: (g := group_of(admin))["scaling"]["current"] == 1 and len(g["processes"]) == 1 and g, timeout=60)
    assert shrunk, group_of(admin)
    assert metric(admin.metrics(), "oxwsgi_scale_events_total", group="g", direction="down") == 1
    old = {p["pid"] for p in shrunk["processes"]}

    srv.signal(signal.SIGHUP)
    assert wait_for(
        lambda: not old & {p["pid"] for p in group_of(admin)["processes"]}
        and group_of(admin)["scaling"]["current"] >= 1,
        timeout=60,
    ), group_of(admin)
    # The new group started with 2: idle, it shrinks from 2 to 1 again.
    again = wait_for(
        lambda: [e for e in group_of(admin)["scaling"]["events"] if e["direction"] == "down"],
        timeout=60,
    )
    assert again and (again[0]["from"], again[0]["to"]) == (2, 1), group_of(admin)
    text = admin.metrics()
    assert metric(text, "oxwsgi_process_restarts_total", group="g", reason="reload") == 1, text
    assert metric(text, "oxwsgi_scale_events_total", group="g", direction="down") == 2, text
    assert oxhttp.get(srv.port, "/").status == 200
