"""Environment per group and per mount (issue 17, item 1):

* `env` / `env-file` of a group reach its daemons' `os.environ`, and only
  theirs (two groups, two values); `serve --env` / `--env-file` likewise;
* Apache's `SetEnv` / `PassEnv` reach each request's WSGI environ, as
  mod_wsgi passes them, and not `os.environ`; the TOML twin is a mount's
  `set-env`;
* a bad name is a config error naming file and line.
"""

from __future__ import annotations

import json
import subprocess

import oxhttp
from oxserver import binary, free_port

APP = '''
import json, os

KEYS = ("MODE", "SECRET", "DJANGO_SETTINGS_MODULE", "TENANT", "FROM_FRONT")

def application(environ, start_response):
    body = json.dumps({
        "os": {k: os.environ.get(k) for k in KEYS},
        "environ": {k: environ.get(k) for k in KEYS},
        "method": environ["REQUEST_METHOD"],
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def app_file(tmp_path):
    path = tmp_path / "env_app.py"
    path.write_text(APP)
    return path


def seen(port, path):
    r = oxhttp.get(port, path)
    assert r.status == 200, r
    return json.loads(r.body)


def test_each_group_gets_its_own_environment(server, tmp_path):
    app = app_file(tmp_path)
    (tmp_path / "one.env").write_text("# group one\nSECRET='one$secret'\nMODE=file\n")
    cfg = {
        "access-log": False,
        "groups": {
            "one": {"processes": 1, "threads": 2, "env-file": str(tmp_path / "one.env"),
                    "env": {"MODE": "table", "DJANGO_SETTINGS_MODULE": "one.settings"}},
            "two": {"processes": 1, "threads": 2, "env": {"MODE": "two"}},
        },
        "mount": [
            {"path": "/one", "script": str(app), "group": "one", "set-env": {"TENANT": "t1"}},
            {"path": "/two", "script": str(app), "group": "two"},
        ],
    }
    srv = server().start_run(cfg, ready=("/one", "/two"))
    one, two = seen(srv.port, "/one"), seen(srv.port, "/two")
    assert one["os"] == {"MODE": "table", "SECRET": "one$secret",
                         "DJANGO_SETTINGS_MODULE": "one.settings", "TENANT": None, "FROM_FRONT": None}
    assert two["os"]["MODE"] == "two" and two["os"]["SECRET"] is None
    # set-env is per request, in the environ only.
    assert one["environ"]["TENANT"] == "t1" and one["os"]["TENANT"] is None
    assert two["environ"]["TENANT"] is None


def test_serve_env_flags(server, tmp_path):
    app = app_file(tmp_path)
    (tmp_path / "serve.env").write_text('MODE="from file"\nSECRET=s\n')
    srv = server().start_serve(app, "--env-file", tmp_path / "serve.env", "--env", "MODE=flag",
                               "--threads", "2", "--access-log", "-")
    got = seen(srv.port, "/")["os"]
    assert got["MODE"] == "flag" and got["SECRET"] == "s"


def test_apache_set_env_and_pass_env_reach_the_request_environ(server, tmp_path):
    app = app_file(tmp_path)
    port = free_port()
    conf = tmp_path / "site.conf"
    conf.write_text(
        f"Listen 127.0.0.1:{port}\n"
        "WSGIDaemonProcess web processes=1 threads=2\n"
        f"WSGIScriptAlias /app {app} process-group=web application-group=%{{GLOBAL}}\n"
        "PassEnv FROM_FRONT\n"
        "<Location /app>\n  SetEnv DJANGO_SETTINGS_MODULE site.settings\n  SetEnv REQUEST_METHOD forged\n</Location>\n"
    )
    srv = server()
    srv.port = port
    srv.start_run(conf, ready=("/app",), env={"FROM_FRONT": "passed"})
    got = seen(port, "/app")
    assert got["environ"]["DJANGO_SETTINGS_MODULE"] == "site.settings"
    assert got["environ"]["FROM_FRONT"] == "passed"
    # Not os.environ (mod_wsgi does not put them there either) ...
    assert got["os"]["DJANGO_SETTINGS_MODULE"] is None
    # ... and never over the request's own keys.
    assert got["method"] == "GET"
    # `convert` writes the TOML twin, which `check` accepts.
    converted = subprocess.run([binary(), "convert", str(conf)], capture_output=True, text=True, timeout=60)
    assert converted.returncode == 0, converted.stderr
    assert 'set-env = { DJANGO_SETTINGS_MODULE = "site.settings", REQUEST_METHOD = "forged" }' in converted.stdout
    twin = tmp_path / "twin.toml"
    twin.write_text(converted.stdout)
    check = subprocess.run([binary(), "check", str(twin)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_a_bad_variable_name_is_a_config_error(tmp_path):
    conf = tmp_path / "site.toml"
    conf.write_text('[groups.g]\nenv = { "BAD-NAME" = "x" }\n[[mount]]\npath = "/"\nmodule = "m:app"\ngroup = "g"\n')
    r = subprocess.run([binary(), "check", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "site.toml:2" in r.stderr and "not a variable name" in r.stderr, r.stderr
    bad_file = tmp_path / "bad.env"
    bad_file.write_text("OK=1\nnot a line\n")
    conf.write_text(f'[groups.g]\nenv-file = "{bad_file}"\n[[mount]]\npath = "/"\nmodule = "m:app"\ngroup = "g"\n')
    r = subprocess.run([binary(), "check", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "bad.env:2" in r.stderr and "expected NAME=VALUE" in r.stderr, r.stderr
