"""Group sizes and the open-files limit (issue 15, item 6): `processes` and
`threads` are bounded (1000 each, docs/design.md); at start-up the front
raises its soft RLIMIT_NOFILE to the hard limit, and a site whose daemons
cannot fit in it fails at once with exit 2 and a message that says so,
instead of retrying "Too many open files" for ever."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

import oxhttp
from oxserver import APPS, binary, free_port


def write_site(tmp_path: Path, port: int, processes: int, threads: int) -> Path:
    conf = tmp_path / "site.toml"
    conf.write_text(
        f'listen = ["127.0.0.1:{port}"]\n'
        f"[groups.big]\nprocesses = {processes}\nthreads = {threads}\n"
        f'[[mount]]\npath = "/"\nscript = "{APPS / "recorder.py"}"\ngroup = "big"\n'
    )
    return conf


def under_ulimit(limit: str, *args) -> subprocess.Popen:
    """`oxwsgi ARGS` started by a shell that ran `ulimit LIMIT` first."""
    return subprocess.Popen(
        ["bash", "-c", f'ulimit {limit} && exec "$@"', "bash", binary(), *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


@pytest.mark.parametrize("key", ["processes", "threads"])
def test_check_refuses_a_group_over_the_bound(tmp_path, key):
    conf = tmp_path / "site.toml"
    conf.write_text(f'[groups.g]\n{key} = 100000\n[[mount]]\npath = "/"\nmodule = "m:app"\ngroup = "g"\n')
    r = subprocess.run([binary(), "check", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout
    assert f"site.toml:2" in r.stderr and "over oxwsgi's limit of 1000" in r.stderr, r.stderr


def test_check_refuses_an_apache_group_over_the_bound(tmp_path):
    conf = tmp_path / "site.conf"
    conf.write_text("WSGIDaemonProcess g threads=100000\nWSGIScriptAlias / /srv/app.wsgi process-group=g\n")
    r = subprocess.run([binary(), "check", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout
    assert "site.conf:1" in r.stderr and "over oxwsgi's limit of 1000 threads" in r.stderr, r.stderr


def test_a_site_over_the_open_files_limit_fails_at_start_up(tmp_path):
    # 60 processes need about 340 descriptors (4 each, plus listeners and
    # margins); threads cost none since the channel transport.
    conf = write_site(tmp_path, free_port(), 60, 1)
    p = under_ulimit("-n 256", "run", conf)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail("the front kept running with a site that cannot fit in 256 descriptors:\n" + err[-3000:])
    assert p.returncode == 2, err
    assert "file descriptors" in err and "open-files limit is 256" in err, err


def test_the_soft_limit_is_raised_to_the_hard_one(tmp_path):
    hard = int(subprocess.run(["bash", "-c", "ulimit -Hn"], capture_output=True, text=True).stdout.strip() or 0)
    if hard < 1024:
        pytest.skip(f"hard open-files limit {hard} too low for this test")
    port = free_port()
    # 10 processes need more than 100 descriptors: this only starts if the
    # front raises its soft limit.
    conf = write_site(tmp_path, port, 10, 1)
    p = under_ulimit("-S -n 100", "run", conf)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert p.poll() is None, p.communicate()[1][-3000:]
            try:
                if oxhttp.get(port, "/__health__", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "not ready in 60 s"
            time.sleep(0.2)
        limits = Path(f"/proc/{p.pid}/limits").read_text()
        line = next(l for l in limits.splitlines() if l.startswith("Max open files"))
        soft, hard_now = line.split()[3:5]
        assert soft == hard_now, line
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
