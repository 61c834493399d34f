"""Apache site files: `WSGITrustedProxies` / `WSGITrustedProxyHeaders`
(issue 15, item 5) with mod_wsgi's meaning. From a trusted proxy the
trusted `X-Forwarded-For` sets REMOTE_ADDR; from any other peer it is
ignored and removed; `check` and `convert` show the setting."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import oxhttp
from oxserver import APPS, binary, free_port


def site_conf(tmp_path: Path, port: int, proxies: str) -> Path:
    conf = tmp_path / f"site-{port}.conf"
    conf.write_text(
        f"Listen 127.0.0.1:{port}\n"
        f"WSGIDaemonProcess web processes=1 threads=2\n"
        f"WSGIScriptAlias / {APPS / 'info.py'} process-group=web application-group=%{{GLOBAL}}\n"
        f"WSGITrustedProxies {proxies}\n"
        f"WSGITrustedProxyHeaders X-Forwarded-For\n"
    )
    return conf


def environ_of(port: int) -> dict:
    r = oxhttp.get(port, "/who", headers=[("X-Forwarded-For", "203.0.113.9")])
    assert r.status == 200, r
    return r.json()["environ"]


@pytest.mark.parametrize("proxies, trusted", [("127.0.0.1", True), ("10.9.9.9 192.0.2.0/24", False)])
def test_x_forwarded_for_from_a_trusted_proxy_only(server, tmp_path, proxies, trusted):
    port = free_port()
    conf = site_conf(tmp_path, port, proxies)
    srv = server("proxies").start_run(conf, ready=["/"], port=port)
    env = environ_of(srv.port)
    if trusted:
        assert env["REMOTE_ADDR"] == "203.0.113.9", env
        assert env.get("HTTP_X_FORWARDED_FOR") == "203.0.113.9", env
    else:
        assert env["REMOTE_ADDR"] == "127.0.0.1", env
        assert "HTTP_X_FORWARDED_FOR" not in env, "an untrusted peer's X-Forwarded-For must be removed"


def test_check_and_convert_show_the_trusted_proxies(tmp_path):
    conf = site_conf(tmp_path, 8080, "10.0.0.5 192.168.0.0/16")
    r = subprocess.run([binary(), "check", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "trusted proxies: 10.0.0.5, 192.168.0.0/16\n" in r.stdout, r.stdout
    assert "trusted proxy headers: X-Forwarded-For\n" in r.stdout, r.stdout
    assert "WSGITrustedProx" not in r.stdout, "must not be listed as ignored: " + r.stdout
    r = subprocess.run([binary(), "convert", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert 'trusted-proxies = ["10.0.0.5", "192.168.0.0/16"]\n' in r.stdout, r.stdout
    assert 'trusted-proxy-headers = ["X-Forwarded-For"]\n' in r.stdout, r.stdout
    toml = tmp_path / "converted.toml"
    toml.write_text(r.stdout)
    r2 = subprocess.run([binary(), "check", str(toml)], capture_output=True, text=True, timeout=60)
    assert r2.returncode == 0, r2.stderr
    assert "trusted proxies: 10.0.0.5, 192.168.0.0/16\n" in r2.stdout, r2.stdout
