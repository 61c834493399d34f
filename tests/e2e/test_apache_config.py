"""Apache site files (DESIGN §4): the mission's file run by `oxwsgi run`
behaves like its TOML twin; `oxwsgi check` prints the layout and exits 0/1;
`oxwsgi convert` gives TOML that runs the same site.

The two-apps example is copied to a private folder and its Apache file
adjusted only as its own comment says (the /var/www/mysite paths) plus the
port, as the bench does; everything binds 127.0.0.1.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

import oxhttp
from oxserver import REPO, binary, cmdline, free_port

EXAMPLE = REPO / "examples" / "two-apps"
FIXTURES = REPO / "crates" / "oxwsgi" / "tests" / "fixtures" / "apache"
MOUNTS = {"app_one": "/api/wsgi/one", "app_two": "/api/wsgi/two"}
N_REQUESTS = 120  # per mount and server


def oxwsgi(*args, cwd=None) -> subprocess.CompletedProcess:
    """Runs the binary (check / convert) and returns its result."""
    return subprocess.run(
        [binary(), *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def layout(report: str) -> str:
    """The tables of a `check` report: what follows the header lines (file,
    listen) up to the warnings or the final "ok"."""
    body = report.split("\n\n", 1)[1]
    out = []
    for line in body.splitlines():
        if line == "ok: no warnings" or re.fullmatch(r"\d+ warnings?:", line):
            break
        out.append(line)
    return "\n".join(out).strip()


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("apache-two-apps") / "site"
    shutil.copytree(EXAMPLE, d)
    return d


@pytest.fixture(scope="module")
def apache_conf(site_dir) -> tuple[Path, int]:
    """The mission's Apache file with its paths and port adjusted."""
    text = (site_dir / "apache-site.conf").read_text()
    assert text.count("127.0.0.1:8000") == 2, "Listen and <VirtualHost> on 127.0.0.1:8000"
    port = free_port()
    text = text.replace("/var/www/mysite", str(site_dir)).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    path = site_dir / "apache-site.conf"
    path.write_text(text)
    return path, port


@pytest.fixture(scope="module")
def toml_conf(site_dir) -> tuple[Path, int]:
    text = (site_dir / "oxwsgi.toml").read_text()
    port = free_port()
    text = text.replace('"127.0.0.1:8000"', f'"127.0.0.1:{port}"')
    path = site_dir / "oxwsgi.toml"
    path.write_text(text)
    return path, port


def _start(servers, name, conf_and_port):
    path, port = conf_and_port
    srv = servers(name)
    srv.port = port
    srv.start_run(path, ready=[p + "/" for p in MOUNTS.values()])
    return srv


@pytest.fixture(scope="module")
def apache_site(servers, apache_conf):
    return _start(servers, "apache", apache_conf)


@pytest.fixture(scope="module")
def toml_site(servers, toml_conf):
    return _start(servers, "toml", toml_conf)


def _hammer(port: int, path: str, n: int) -> list[dict]:
    """n GETs from 12 threads, each with its own keep-alive session."""
    out, lock, local = [], threading.Lock(), threading.local()

    def one(i):
        s = getattr(local, "s", None) or requests.Session()
        local.s = s
        r = s.get(f"http://127.0.0.1:{port}{path}/c/{i}", timeout=30)
        assert r.status_code == 200, r.text
        with lock:
            out.append(r.json())

    with ThreadPoolExecutor(12) as ex:
        for f in [ex.submit(one, i) for i in range(n)]:
            f.result()
    return out


def _pids_per_group(srv) -> dict[str, set[int]]:
    return {g: {a["pid"] for a in _hammer(srv.port, p, N_REQUESTS)} for g, p in MOUNTS.items()}


def test_same_layout_as_the_toml_twin(apache_site, toml_site):
    for srv in (apache_site, toml_site):
        pids = _pids_per_group(srv)
        for g, ps in pids.items():
            assert len(ps) == 2, f"{srv.name}: group {g} answered from {sorted(ps)}, expected 2 processes"
        assert not (pids["app_one"] & pids["app_two"]), pids
        daemons = set(srv.daemon_pids())
        for g, ps in pids.items():
            assert ps <= daemons, f"{srv.name}: {g} pids {ps} are not the front's daemons {daemons}"
            for pid in ps:
                title = cmdline(pid).rstrip(b"\0").rstrip(b" ")
                assert title == f"(wsgi:{g})".encode(), f"{srv.name}: /proc/{pid}/cmdline = {title!r}"


@pytest.mark.parametrize(
    "target",
    ["/api/wsgi/one", "/api/wsgi/one/", "/api/wsgi/one/a/b?x=1", "/api/wsgi/two/hello", "/api/wsgi/onex", "/", "/api"],
)
def test_same_answers_as_the_toml_twin(apache_site, toml_site, target):
    a = oxhttp.get(apache_site.port, target)
    t = oxhttp.get(toml_site.port, target)
    assert a.status == t.status, (a, t)
    if a.status == 200:
        ja, jt = a.json(), t.json()
        ja.pop("pid"), jt.pop("pid")
        assert ja == jt
        assert ja["application_group"] == ""  # %{GLOBAL}


def test_run_prints_the_warnings_at_start_up(apache_site, apache_conf):
    err = apache_site.stderr_text()
    path, _ = apache_conf
    assert f"oxwsgi: warning: {path}:15: mount /api/wsgi/one: no WSGIPassAuthorization" in err, err[-3000:]
    assert f"oxwsgi: warning: {path}:29: `Require` ignored" in err


def test_check_prints_the_layout_and_the_warnings(apache_conf, toml_conf):
    path, port = apache_conf
    r = oxwsgi("check", path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith(f"{path} (Apache site file)\nlisten: 127.0.0.1:{port}\n"), out
    lines = out.splitlines()
    assert any(
        line.split() == ["/api/wsgi/one", str(path.parent / "api/one/wsgi.py"), "app_one", "(2", "×", "15)", "%{GLOBAL}"]
        for line in lines
    ), out
    assert "mod_wsgi's defaults differ:" in out
    assert "no WSGIPassAuthorization; mod_wsgi would hide the Authorization header" in out
    assert out.rstrip().endswith("ok (with warnings)")
    # The TOML twin has the same layout, and nothing to warn about.
    t = oxwsgi("check", toml_conf[0])
    assert t.returncode == 0, t.stderr
    assert t.stdout.startswith(f"{toml_conf[0]} (native TOML)\n")
    assert t.stdout.rstrip().endswith("ok: no warnings"), t.stdout
    assert layout(t.stdout) == layout(out)


def test_check_reports_mod_wsgi_defaults_per_mount(tmp_path):
    conf = tmp_path / "site.conf"
    conf.write_text("WSGIScriptAlias /app /srv/app.wsgi\nWSGIApplicationGroup django_a\n")
    r = oxwsgi("check", conf)
    assert r.returncode == 0, r.stderr
    assert f"{conf}:1: mount /app: no WSGIProcessGroup; mod_wsgi would run it embedded in Apache's own processes, oxwsgi runs it in a daemon group of its own, `app` (1 process × 15 threads)" in r.stdout
    assert "mount /app runs in application group `django_a`, a sub-interpreter: numpy and other C extensions may misbehave" in r.stdout
    assert "mount /app: the script /srv/app.wsgi does not exist" in r.stdout


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "WSGIDaemonProcess app_one\nWSGIScriptAlias / /srv/x.wsgi\nWSGIProcessGroup app_on\n",
            "site.conf:3: mount / runs in process group `app_on`, which no WSGIDaemonProcess defines (defined: app_one); did you mean `app_one`?",
        ),
        ("<VirtualHost *:80>\n  <Location />\n</VirtualHost>\n", "site.conf:3: </VirtualHost> closes <Location>, opened at line 2"),
        ("Include conf.d/*.conf\n", "site.conf:1: Include conf.d/*.conf: no file matches"),
        ("WSGIScriptAliasMatch ^/([^/]+) /srv/$1.wsgi\n", "site.conf:1: WSGIScriptAliasMatch ^/([^/]+) /srv/$1.wsgi: the script file depends on the URL"),
    ],
)
def test_check_exits_1_with_file_and_line(tmp_path, text, message):
    conf = tmp_path / "site.conf"
    conf.write_text(text)
    r = oxwsgi("check", "site.conf", cwd=tmp_path)
    assert r.returncode == 1, r.stdout
    assert r.stdout == ""
    assert r.stderr.startswith(f"oxwsgi: {message}"), r.stderr


def test_run_refuses_a_bad_apache_file(server, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("WSGIScriptAlias / /srv/x.wsgi\nWSGIProcessGroup nowhere\n")
    r = subprocess.run([binary(), "run", str(conf)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert f"{conf}:2: mount / runs in process group `nowhere`" in r.stderr


def test_convert_round_trip_runs_the_same_site(servers, apache_conf, apache_site, tmp_path_factory):
    path, _ = apache_conf
    r = oxwsgi("convert", path)
    assert r.returncode == 0, r.stderr
    assert "no WSGIPassAuthorization" in r.stderr  # warnings go to stderr
    text = r.stdout
    assert text.startswith("# oxwsgi native config, converted from")
    # Run from another folder: every path in it is absolute.
    elsewhere = tmp_path_factory.mktemp("converted")
    port = free_port()
    converted = elsewhere / "converted.toml"
    converted.write_text(text.replace(f'"127.0.0.1:{apache_site.port}"', f'"127.0.0.1:{port}"'))
    assert layout(oxwsgi("check", converted).stdout) == layout(oxwsgi("check", path).stdout)
    srv = _start(servers, "converted", (converted, port))
    for target in ["/api/wsgi/one/x", "/api/wsgi/two/", "/api/wsgi/onex"]:
        a, c = oxhttp.get(apache_site.port, target), oxhttp.get(srv.port, target)
        assert a.status == c.status
        if a.status == 200:
            ja, jc = a.json(), c.json()
            ja.pop("pid"), jc.pop("pid")
            assert ja == jc


FIXTURE_FILES = sorted(
    str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.conf") if p.parent.name != "conf.d"
)


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_check_and_convert_every_fixture(tmp_path, name):
    r = oxwsgi("check", FIXTURES / name)
    assert r.returncode == 0, r.stderr
    assert "MOUNT" in r.stdout
    c = oxwsgi("convert", FIXTURES / name)
    assert c.returncode == 0, c.stderr
    converted = tmp_path / "converted.toml"
    converted.write_text(c.stdout)
    back = oxwsgi("check", converted, cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert layout(back.stdout) == layout(r.stdout)


APACHE_MODULES = Path("/usr/lib/apache2/modules")


@pytest.mark.skipif(
    not shutil.which("apache2") or not (APACHE_MODULES / "mod_wsgi.so").exists(),
    reason="apache2 with mod_wsgi is not installed",
)
@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_every_fixture_is_a_file_apache_accepts(tmp_path, name):
    """The fixtures are real Apache configs: `apache2 -t` accepts each one
    (with the modules a Debian server would have loaded)."""
    fixture = FIXTURES / name
    modules = [
        "mpm_event", "authz_core", "authn_core", "authn_file", "auth_basic", "authz_user",
        "alias", "env", "rewrite", "headers", "expires", "wsgi",
    ]
    missing = [m for m in modules if not (APACHE_MODULES / f"mod_{m}.so").exists()]
    if missing:
        pytest.skip(f"Apache modules not installed: {', '.join(missing)}")
    loads = "\n".join(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so" for m in modules)
    listen = "" if "\nListen " in "\n" + fixture.read_text() else "Listen 127.0.0.1:9\n"
    main = tmp_path / "apache2.conf"
    main.write_text(
        f'ServerRoot "{fixture.parent}"\nPidFile {tmp_path}/pid\nDefaultRuntimeDir {tmp_path}\n'
        f"ErrorLog {tmp_path}/error.log\nServerName localhost\nDefine APACHE_LOG_DIR {tmp_path}\n"
        f"{loads}\nWSGISocketPrefix {tmp_path}/wsgi\n{listen}Include {fixture}\n"
    )
    r = subprocess.run(["apache2", "-t", "-f", str(main)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "Syntax OK" in r.stderr
