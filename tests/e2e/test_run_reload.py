"""Code reloading for `run` (issue 17, item 6): `run --reload` (and
`reload = true`) restarts a group when any Python file of its application
changes, as `serve --reload` does; `WSGIScriptReloading Off` (TOML
`script-reloading = false`) stops a touched script from restarting it."""

from __future__ import annotations

import os
import time

import oxhttp
from oxserver import binary, free_port, wait_for

APP = '''
import os
import helper

def application(environ, start_response):
    body = ("%d %s" % (os.getpid(), helper.VERSION)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def write_app(tmp_path, version):
    (tmp_path / "helper.py").write_text(f"VERSION = {version!r}\n")
    app = tmp_path / "reload_app.py"
    if not app.exists():
        app.write_text(APP)
    return app


def answer(srv):
    r = oxhttp.get(srv.port, "/", timeout=10)
    assert r.status == 200, r
    pid, version = r.body.decode().split()
    return int(pid), version


def bump_mtime(path):
    later = time.time() + 5
    os.utime(path, (later, later))


def site(app, **top):
    return {"access-log": False, **top,
            "groups": {"g": {"processes": 1, "threads": 1, "python-path": [str(app.parent)]}},
            "mount": [{"path": "/", "script": str(app), "group": "g"}]}


def test_run_reload_follows_every_python_file(server, tmp_path):
    app = write_app(tmp_path, "one")
    port = free_port()
    srv = server()
    srv.write_config(site(app, listen=[f"127.0.0.1:{port}"]))
    srv.port = port
    srv.start([binary(), "run", str(srv.config_path), "--reload"], ready=("/",))
    assert answer(srv)[1] == "one"
    write_app(tmp_path, "two")
    bump_mtime(tmp_path / "helper.py")
    assert wait_for(lambda: answer(srv)[1] == "two", timeout=30)


def test_script_reloading_off_ignores_a_touched_script(server, tmp_path):
    app = write_app(tmp_path, "one")
    srv = server().start_run(site(app, **{"script-reloading": False}), ready=("/",))
    pid, _ = answer(srv)
    bump_mtime(app)
    # The watcher polls once a second: three polls, and still the same process.
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        assert answer(srv)[0] == pid
        time.sleep(0.25)


def status_and_body(srv):
    try:
        r = oxhttp.get(srv.port, "/", timeout=10)
    except (OSError, oxhttp.ConnectionClosed, oxhttp.Timeout):
        return None, b""
    return r.status, r.body


def test_reload_globs_count_templates_and_leave_out_excluded_files(server, tmp_path):
    app = write_app(tmp_path, "one")
    (tmp_path / "templates").mkdir()
    (tmp_path / "scratch").mkdir()
    srv = server().start_run(
        site(app, reload=True, **{"reload-include": ["templates/*.html"], "reload-exclude": ["scratch/**"]}),
        ready=("/",),
    )
    pid, _ = answer(srv)
    # Not code: an excluded Python file, a file no pattern includes.
    (tmp_path / "scratch" / "notes.py").write_text("x = 1\n")
    (tmp_path / "style.css").write_text("p {}\n")
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert answer(srv)[0] == pid
        time.sleep(0.25)
    # A template in a folder made after start counts.
    (tmp_path / "templates" / "sub").mkdir()
    (tmp_path / "templates" / "sub" / "page.html").write_text("<p>hi</p>\n")
    assert wait_for(lambda: answer(srv)[0] != pid, timeout=30)


def test_reload_keeps_watching_after_an_import_failure(server, tmp_path):
    app = write_app(tmp_path, "one")
    srv = server().start_run(site(app, reload=True), ready=("/",))
    assert answer(srv)[1] == "one"
    (tmp_path / "helper.py").write_text("VERSION = (\n")  # a syntax error
    assert wait_for(lambda: status_and_body(srv)[0] == 500, timeout=30)
    write_app(tmp_path, "fixed")
    assert wait_for(lambda: status_and_body(srv)[0] == 200 and answer(srv)[1] == "fixed", timeout=30)
