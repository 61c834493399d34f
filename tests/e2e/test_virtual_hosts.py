"""Name-based virtual hosts (issue 16): several `<VirtualHost>`s on one
address, each name sent to its own daemon group, SNI picking each host's
certificate, and the TOML twin `oxwsgi convert` writes behaving the same.

The site: a main-server mount `/health` (every host inherits it), host
`a.example` (+ `www.a.example`, `*.a.test`) mounting `/app`, host
`b.example` mounting `/`, each on a plain and a TLS listener, the TLS twin
with a certificate of its own. Everything binds 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess

import pytest
import trustme

import oxhttp
from oxserver import APPS, binary, free_port

INFO = APPS / "info.py"


def oxwsgi(*args) -> subprocess.CompletedProcess:
    return subprocess.run([binary(), *map(str, args)], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("vhosts")
    for name in ("site_a", "site_b", "health"):
        shutil.copy(INFO, d / f"{name}.py")
    ca = trustme.CA()
    for name in ("a", "b"):
        cert = ca.issue_cert(f"{name}.example")
        cert.cert_chain_pems[0].write_to_path(str(d / f"{name}.pem"))
        cert.private_key_pem.write_to_path(str(d / f"{name}.key"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    plain, tls = free_port(), free_port()
    conf = d / "site.conf"
    conf.write_text(
        f"""
Listen 127.0.0.1:{plain}
Listen 127.0.0.1:{tls}
WSGIDaemonProcess shared processes=1 threads=2
WSGIScriptAlias /health {d}/health.py process-group=shared application-group=%{{GLOBAL}}

<VirtualHost 127.0.0.1:{plain}>
    ServerName a.example
    ServerAlias www.a.example *.a.test
    WSGIDaemonProcess site_a processes=1 threads=4
    WSGIProcessGroup site_a
    WSGIApplicationGroup %{{GLOBAL}}
    WSGIScriptAlias /app {d}/site_a.py
</VirtualHost>

<VirtualHost 127.0.0.1:{plain}>
    ServerName b.example
    WSGIDaemonProcess site_b processes=1 threads=4
    WSGIProcessGroup site_b
    WSGIApplicationGroup %{{GLOBAL}}
    WSGIScriptAlias / {d}/site_b.py
</VirtualHost>

<VirtualHost 127.0.0.1:{tls}>
    ServerName a.example
    WSGIProcessGroup site_a
    WSGIApplicationGroup %{{GLOBAL}}
    WSGIScriptAlias /app {d}/site_a.py
    SSLEngine on
    SSLCertificateFile {d}/a.pem
    SSLCertificateKeyFile {d}/a.key
</VirtualHost>

<VirtualHost 127.0.0.1:{tls}>
    ServerName b.example
    WSGIProcessGroup site_b
    WSGIApplicationGroup %{{GLOBAL}}
    WSGIScriptAlias / {d}/site_b.py
    SSLEngine on
    SSLCertificateFile {d}/b.pem
    SSLCertificateKeyFile {d}/b.key
</VirtualHost>
"""
    )
    return {"dir": d, "conf": conf, "plain": plain, "tls": tls, "ca": d / "ca.pem"}


def _start(servers, name, config, port):
    srv = servers(name)
    srv.port = port
    # Readiness: every group answers (the default host has /app, every
    # host inherits /health; b.example is checked by the tests).
    srv.start_run(config, ready=["/app/", "/health"])
    return srv


@pytest.fixture(scope="module")
def apache(servers, files):
    return _start(servers, "apache", files["conf"], files["plain"])


def ask(port, path, host=None, version="HTTP/1.1"):
    # host=None: no Host header at all.
    headers = [] if host is None else [("Host", host)]
    return oxhttp.request(port, "GET", path, headers=headers, version=version, timeout=30, host=None)


def answer(port, path, host=None, **kw):
    r = ask(port, path, host, **kw)
    assert r.status == 200, (path, host, r.status, r.body[:300])
    data = json.loads(r.body)
    env = data["environ"]
    return data["app"], env["mod_wsgi.process_group"], env["SCRIPT_NAME"], env["PATH_INFO"], data["pid"]


def check_routing(port):
    # Each name reaches its own group, path routing inside the host.
    assert answer(port, "/app/x?q=1", "a.example")[:4] == ("site_a", "site_a", "/app", "/x")
    assert answer(port, "/app", "A.Example:80")[:2] == ("site_a", "site_a")
    assert answer(port, "/app/", "www.a.example.")[:2] == ("site_a", "site_a")
    assert answer(port, "/app/", "deep.x.a.test")[:2] == ("site_a", "site_a")
    assert answer(port, "/anything/here", "b.example")[:4] == ("site_b", "site_b", "", "/anything/here")
    assert answer(port, "/app/x", "b.example")[:4] == ("site_b", "site_b", "", "/app/x")
    # The main server's mount is in every host that has nothing there.
    assert answer(port, "/health", "a.example")[:2] == ("health", "shared")
    # b mounts "/" itself, and /health is still the main server's there:
    # longest prefix within the host (Apache would answer it with b's "/",
    # which `check` warns about).
    assert answer(port, "/health", "b.example")[:2] == ("health", "shared")
    # An unknown name, or none (HTTP/1.0), gets the address's first host.
    assert answer(port, "/app/", "unknown.example")[:2] == ("site_a", "site_a")
    assert answer(port, "/app/", None, version="HTTP/1.0")[:2] == ("site_a", "site_a")
    assert ask(port, "/", "unknown.example").status == 404


def test_names_on_one_address_reach_their_own_groups(apache):
    check_routing(apache.port)
    pid_a = answer(apache.port, "/app/", "a.example")[4]
    pid_b = answer(apache.port, "/", "b.example")[4]
    assert pid_a != pid_b


def tls_get(port, ca, name, path="/"):
    """An HTTPS request naming `name` by SNI and Host: the certificate's
    names and the app's answer."""
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            names = [v for k, v in tls.getpeercert()["subjectAltName"] if k == "DNS"]
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return names, json.loads(body)


def test_sni_gives_each_host_its_certificate(apache, files):
    names, data = tls_get(files["tls"], files["ca"], "a.example", "/app/")
    assert names == ["a.example"]
    assert data["environ"]["mod_wsgi.process_group"] == "site_a"
    assert data["environ"]["wsgi.url_scheme"] == "https"
    names, data = tls_get(files["tls"], files["ca"], "b.example", "/x")
    assert names == ["b.example"]
    assert data["environ"]["mod_wsgi.process_group"] == "site_b"
    # The plain and TLS twins of a host share its daemons.
    assert data["pid"] == answer(apache.port, "/", "b.example")[4]
    # No SNI: the listener's first host's certificate.
    ctx = ssl.create_default_context(cafile=str(files["ca"]))
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", files["tls"]), timeout=30) as raw:
        with ctx.wrap_socket(raw) as tls:
            assert [v for k, v in tls.getpeercert()["subjectAltName"] if k == "DNS"] == ["a.example"]


def test_http2_over_tls_routes_by_authority(apache, files):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    port = files["tls"]
    out = subprocess.run(
        [
            "curl", "-sS", "--http2", "--max-time", "30",
            "--cacert", str(files["ca"]),
            "--resolve", f"b.example:{port}:127.0.0.1",
            "-w", "\n%{http_version}",
            f"https://b.example:{port}/h2/path",
        ],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    body, _, version = out.stdout.rpartition("\n")
    assert version == "2"
    env = json.loads(body)["environ"]
    assert (env["mod_wsgi.process_group"], env["PATH_INFO"], env["SERVER_PROTOCOL"]) == ("site_b", "/h2/path", "HTTP/2")


def test_check_shows_the_hosts(files):
    r = oxwsgi("check", files["conf"])
    assert r.returncode in (0, 1), r.stderr
    out = r.stdout
    assert "HOST" in out and "a.example www.a.example *.a.test" in out, out
    assert f"b.example/" in out and "a.example/app" in out and "*/health" in out, out
    assert "SNI" not in out and "virtual hosts: oxwsgi serves" not in out, out


def test_the_converted_toml_serves_the_same_site(servers, files, apache):
    r = oxwsgi("convert", files["conf"])
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert text.count("[[host]]") == 4 and "[[host.mount]]" in text, text
    # Other ports, an access log with the host (%v) and the server name (%V).
    plain, tls, admin = free_port(), free_port(), free_port()
    text = text.replace(str(files["plain"]), str(plain)).replace(str(files["tls"]), str(tls))
    log = files["dir"] / "access.log"
    text = f'access-log = "{log}"\naccess-log-format = "%v %V %U"\nadmin = "127.0.0.1:{admin}"\n' + text
    path = files["dir"] / "converted.toml"
    path.write_text(text)
    srv = _start(servers, "toml", path, plain)
    check_routing(plain)
    names, data = tls_get(tls, files["ca"], "b.example", "/y")
    assert names == ["b.example"] and data["environ"]["mod_wsgi.process_group"] == "site_b"
    answer(plain, "/logged", "b.example")
    lines = log.read_text().splitlines()
    assert "b.example b.example /logged" in lines, lines
    answer(plain, "/app/logged", "www.a.example")
    assert "a.example www.a.example /app/logged" in log.read_text().splitlines()
    # /status lists every mount with its host and group.
    routes = json.loads(oxhttp.get(admin, "/status").body)["routes"]
    assert {"path": "/health", "host": None, "group": "shared"} in routes, routes
    assert {"path": "/app", "host": "a.example", "group": "site_a"} in routes, routes
    assert {"path": "/", "host": "b.example", "group": "site_b"} in routes, routes
    srv.stop()


def test_toml_host_errors_name_file_and_line(tmp_path):
    app = tmp_path / "app.py"
    shutil.copy(INFO, app)
    conf = tmp_path / "hosts.toml"
    conf.write_text(
        f"""listen = ["127.0.0.1:{free_port()}"]

[[host]]
names = ["a.example"]
default = true

[[host.mount]]
path = "/"
script = "{app}"

[[host]]
names = ["b.example", "A.example"]
"""
    )
    r = oxwsgi("check", conf)
    assert r.returncode == 2 or r.returncode == 1, r
    assert f"{conf}:12" in r.stderr + r.stdout, r.stderr + r.stdout
    assert "also a name of the [[host]] at line" in r.stderr + r.stdout
