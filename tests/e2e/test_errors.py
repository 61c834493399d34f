"""Error behaviour (DESIGN §7): exceptions before and after the response
head, invalid status/headers, application import failure."""

from __future__ import annotations

import re

import pytest

import oxhttp
from oxserver import APPS

BROKEN_MODULE_ERR = "ModuleNotFoundError: No module named 'e2e_module_that_does_not_exist'"


@pytest.fixture(scope="module")
def errsrv(servers):
    cfg = {
        "groups": {
            "err": {"processes": 1, "threads": 4},
            "broken": {"processes": 2, "threads": 2},
        },
        "mount": [
            {"path": "/err", "script": str(APPS / "errors_app.py"), "group": "err"},
            {"path": "/broken", "script": str(APPS / "broken_import.py"), "group": "broken"},
            # Same group (same processes) as the broken app: must still work.
            {"path": "/sibling", "script": str(APPS / "info.py"), "group": "broken"},
        ],
    }
    return servers("errors").start_run(cfg, ready=["/err/ok", "/sibling", "/broken"])


def ok_pid(srv) -> int:
    r = oxhttp.get(srv.port, "/err/ok")
    assert r.status == 200, r
    return int(r.body.split()[1])


def test_raise_before_start_response_is_500_and_process_keeps_serving(errsrv):
    pid = ok_pid(errsrv)
    mark = errsrv.stderr_mark()
    r = oxhttp.get(errsrv.port, "/err/raise?t1")
    assert r.status == 500, r
    log = errsrv.wait_stderr("e2e-marker /raise t1", mark)
    assert "Traceback (most recent call last)" in log
    assert "ValueError: e2e-marker /raise t1" in log
    assert ok_pid(errsrv) == pid, "the process must keep serving (not be restarted)"


def test_raise_in_iterable_before_first_item_is_500(errsrv):
    mark = errsrv.stderr_mark()
    r = oxhttp.get(errsrv.port, "/err/raise-in-first?t2")
    assert r.status == 500, r
    errsrv.wait_stderr("RuntimeError: e2e-marker /raise-in-first t2", mark)
    ok_pid(errsrv)


@pytest.mark.parametrize("path", ["/err/raise-after", "/err/raise-after-cl"])
def test_raise_after_head_sent_closes_connection(errsrv, path):
    mark = errsrv.stderr_mark()
    with oxhttp.Conn(errsrv.port) as c:
        c.send(oxhttp.build_request("GET", path + "?t3"))  # keep-alive request
        r = c.read_response(timeout=30)
        assert r.status == 200, r
        assert r.body == b"partial", r
        assert not r.complete, f"the response must not look complete: {r!r}"
        assert c.eof or c.wait_closed(10), "the connection must be closed"
    errsrv.wait_stderr(f"RuntimeError: e2e-marker {path[4:]} t3", mark)
    ok_pid(errsrv)


@pytest.mark.parametrize(
    "path",
    ["/bad-status-crlf", "/bad-status-type", "/bad-header-crlf", "/bad-header-name", "/bad-header-type",
     "/no-start-response", "/str-body"],
)
def test_invalid_response_is_500(errsrv, path):
    pid = ok_pid(errsrv)
    mark = errsrv.stderr_mark()
    r = oxhttp.get(errsrv.port, "/err" + path)
    assert r.status == 500, r
    names = {k.lower() for k, _ in r.headers}
    assert "x-injected" not in names and "x-evil" not in names and "x-test" not in names, r
    # Something about it is in the error log, and the process is still there.
    assert ok_pid(errsrv) == pid
    assert errsrv.stderr_since(mark).strip(), f"nothing logged for {path}"


def test_import_failure_500_on_that_mount_only(errsrv):
    for _ in range(10):
        r = oxhttp.get(errsrv.port, "/broken/x")
        assert r.status == 500, r
        assert oxhttp.get(errsrv.port, "/sibling/y").status == 200
        assert oxhttp.get(errsrv.port, "/err/ok").status == 200
    log = errsrv.stderr_text()
    assert "Traceback (most recent call last)" in log
    # Logged once per daemon process of the group (2), not once per request.
    n = sum(1 for line in log.splitlines() if line.strip().startswith(BROKEN_MODULE_ERR))
    assert n == 2, f"expected the import traceback once per process (2), found {n}:\n{log[-4000:]}"


def test_import_failure_names_the_script(errsrv):
    log = errsrv.stderr_text()
    assert re.search(r"broken_import\.py", log), "the error log should say which script failed to import"
