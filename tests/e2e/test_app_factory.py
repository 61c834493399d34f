"""Application factories (issue 17, item 7): `module = "pkg.app:create_app()"`
and `serve pkg.app:create_app()` call the factory once per interpreter, as
gunicorn does, and serve what it returns; a factory that returns something
that is not callable fails that mount's requests with the reason logged."""

from __future__ import annotations

import subprocess

import oxhttp
from oxserver import binary

FACTORY = '''
import os

CALLS = 0

def create_app():
    global CALLS
    CALLS += 1
    calls = CALLS

    def application(environ, start_response):
        body = ("%d %d" % (os.getpid(), calls)).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    return application

def broken():
    return 42
'''


def write_factory(tmp_path):
    (tmp_path / "factory_app.py").write_text(FACTORY)


def answers(port, path, n=8):
    got = set()
    for _ in range(n):
        r = oxhttp.get(port, path)
        assert r.status == 200, r
        got.add(r.body.decode())
    return got


def test_module_factory_is_called_once_per_process(server, tmp_path):
    write_factory(tmp_path)
    cfg = {
        "access-log": False,
        "groups": {"g": {"processes": 2, "threads": 3, "python-path": [str(tmp_path)]}},
        "mount": [
            {"path": "/app", "module": "factory_app:create_app()", "group": "g"},
            {"path": "/broken", "module": "factory_app", "callable": "broken()", "group": "g"},
        ],
    }
    srv = server().start_run(cfg, ready=("/app",))
    seen = answers(srv.port, "/app", 20)
    # Every process called the factory exactly once.
    assert {line.split()[1] for line in seen} == {"1"}, seen
    r = oxhttp.get(srv.port, "/broken")
    assert r.status == 500
    assert "factory broken() returned int, which is not a WSGI callable" in srv.stderr_text()


def test_serve_takes_a_factory(server, tmp_path):
    write_factory(tmp_path)
    srv = server().start_serve("factory_app:create_app()", "--python-path", tmp_path, "--threads", "2")
    assert {line.split()[1] for line in answers(srv.port, "/")} == {"1"}


def test_factory_with_arguments_is_a_config_error(tmp_path):
    conf = tmp_path / "site.toml"
    conf.write_text('[[mount]]\npath = "/"\nmodule = "factory_app:create_app(\'prod\')"\n')
    r = subprocess.run([binary(), "check", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "site.toml:3" in r.stderr and "without arguments" in r.stderr, r.stderr
