"""Crash isolation (DESIGN §1, §7): a daemon killed with SIGKILL under load
costs at most the requests in flight on it (502), its group gets a new
process, and the other group never notices. A daemon that calls os._exit
mid-request: 502, then service resumes."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import oxhttp
from oxserver import APPS, proc_exists

THREADS = 4  # per victim process


@pytest.fixture(scope="module")
def crashsrv(servers):
    cfg = {
        "groups": {
            "victim": {"processes": 2, "threads": THREADS},
            "bystander": {"processes": 2, "threads": 4},
            "exiter": {"processes": 1, "threads": 2},
        },
        "mount": [
            {"path": "/victim", "script": str(APPS / "info.py"), "group": "victim"},
            {"path": "/bystander", "script": str(APPS / "info.py"), "group": "bystander"},
            {"path": "/exiter", "script": str(APPS / "info.py"), "group": "exiter"},
        ],
    }
    return servers("crash").start_run(cfg, ready=["/victim", "/bystander", "/exiter"])


class Load:
    """Client threads hitting one path in a loop until stopped."""

    def __init__(self, port, path, n, sleep="0.05"):
        self.port, self.path, self.sleep = port, path, sleep
        self.results = []  # (t_start, t_end, status | exception text, pid | None)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(n)]

    def run(self):
        deadline = time.monotonic() + 90  # hard bound
        while not self.stop.is_set() and time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                r = oxhttp.get(self.port, self.path, headers=[("X-Sleep", self.sleep)], timeout=30)
                res = (t0, time.monotonic(), r.status, r.json()["pid"] if r.status == 200 else None)
            except Exception as e:  # noqa: BLE001 - a failed request is data here
                res = (t0, time.monotonic(), f"{type(e).__name__}: {e}", None)
            with self.lock:
                self.results.append(res)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)
        return self.results

    def pids(self):
        with self.lock:
            return {r[3] for r in self.results if r[3] is not None}


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.mark.timeout(180)
def test_kill9_one_daemon_under_load(crashsrv):
    port = crashsrv.port
    victim_load = Load(port, "/victim", 2 * THREADS).start()
    bystander_load = Load(port, "/bystander", 4).start()
    try:
        wait_for(lambda: len(victim_load.pids()) >= 2, 30, "both victim processes to serve")
        before = victim_load.pids()
        assert len(before) == 2, before
        target = min(before)
        time.sleep(0.5)  # let the load run a moment with every slot busy
        t_kill = time.monotonic()
        os.kill(target, signal.SIGKILL)
        wait_for(lambda: victim_load.pids() - before, 60, "a new victim process to answer")
        t_new = time.monotonic()
        time.sleep(1.0)  # keep the load on after recovery
    finally:
        v = victim_load.finish()
        b = bystander_load.finish()

    failures = [r for r in v if r[2] != 200]
    assert len(failures) <= THREADS, f"{len(failures)} victim failures > {THREADS} in flight: {failures[:10]}"
    assert all(r[2] == 502 for r in failures), f"failures must be 502 responses: {failures}"
    # Only requests that were running when the kill happened may fail.
    assert all(r[0] <= t_kill + 0.05 for r in failures), (t_kill, failures)
    later = [r for r in v if r[0] >= t_new]
    assert later and all(r[2] == 200 for r in later), "requests after recovery must all succeed"
    assert all(r[2] == 200 for r in b), f"bystander group saw failures: {[r for r in b if r[2] != 200][:10]}"
    assert not proc_exists(target)
    assert target not in {r[3] for r in later}

    # Exactly two live victim processes again.
    pids = set()
    for _ in range(200):
        r = oxhttp.get(port, "/victim", headers=[("X-Sleep", "0.01")])
        assert r.status == 200
        pids.add(r.json()["pid"])
        if len(pids) == 2:
            break
    assert target not in pids and all(proc_exists(p) for p in pids)


def test_os_exit_mid_request_502_then_recovery(crashsrv):
    port = crashsrv.port
    r = oxhttp.get(port, "/exiter")
    assert r.status == 200
    old_pid = r.json()["pid"]
    mark = crashsrv.stderr_mark()
    r = oxhttp.get(port, "/exiter", headers=[("X-Exit", "1")], timeout=60)
    assert r.status == 502, r
    # The next request is served by a new process of the group.
    r = oxhttp.get(port, "/exiter", timeout=60)
    assert r.status == 200, r
    assert r.json()["pid"] != old_pid
    assert not proc_exists(old_pid)
    assert oxhttp.get(port, "/bystander").status == 200
    assert crashsrv.stderr_since(mark).strip(), "the daemon's death should be logged"
