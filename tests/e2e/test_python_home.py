"""python / python-home (DESIGN §1, §3): a group's daemons run that
interpreter, so a virtualenv is just "its python". Two venvs made here from
the base interpreter: one plain (no Flask), one with Flask installed. The
same Flask app works under python-home = <venv with Flask> and fails to
import (500 on that mount only, traceback logged) under the plain venv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import oxhttp
from oxserver import APPS


def _base_python() -> str:
    return getattr(sys, "_base_executable", None) or sys.executable


@pytest.fixture(scope="session")
def venvs(tmp_path_factory):
    root = tmp_path_factory.mktemp("venvs")
    plain, withflask = root / "plain", root / "withflask"
    base = _base_python()
    for v in (plain, withflask):
        subprocess.run([base, "-m", "venv", "--without-pip", str(v)], check=True, timeout=120)
    # Install Flask into the second venv with this (test) environment's pip.
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(withflask / "bin" / "python"), "install",
         "--quiet", "--disable-pip-version-check", "flask"],
        check=True, timeout=300,
    )
    # Preconditions: the plain venv really has no Flask, the other one has.
    p = subprocess.run([str(plain / "bin" / "python"), "-c", "import flask"], capture_output=True, timeout=60)
    assert p.returncode != 0, "the plain venv can import flask: the test would prove nothing"
    subprocess.run([str(withflask / "bin" / "python"), "-c", "import flask"], check=True, timeout=60)
    return plain, withflask


@pytest.fixture(scope="module")
def homesrv(servers, venvs):
    plain, withflask = venvs
    cfg = {
        "groups": {
            "plain": {"processes": 1, "threads": 8, "python": str(plain / "bin" / "python")},
            "home": {"processes": 1, "threads": 2, "python-home": str(withflask)},
        },
        "mount": [
            {"path": "/plain/flask", "script": str(APPS / "needs_flask.py"), "group": "plain"},
            {"path": "/plain/info", "script": str(APPS / "info.py"), "group": "plain"},
            {"path": "/home/flask", "script": str(APPS / "needs_flask.py"), "group": "home"},
            {"path": "/home/info", "script": str(APPS / "info.py"), "group": "home"},
        ],
    }
    return servers("python-home").start_run(cfg, ready=["/plain/info", "/home/info", "/home/flask", "/plain/flask"])


def _same(a: str, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(str(b))


def test_flask_app_works_under_python_home(homesrv, venvs):
    _, withflask = venvs
    r = oxhttp.get(homesrv.port, "/home/flask")
    assert r.status == 200, r
    j = r.json()
    assert _same(j["sys_prefix"], withflask), j
    assert os.path.realpath(j["flask_file"]).startswith(os.path.realpath(withflask) + os.sep), j


def test_python_home_group_info(homesrv, venvs):
    _, withflask = venvs
    r = oxhttp.get(homesrv.port, "/home/info")
    assert r.status == 200
    assert _same(r.json()["sys_prefix"], withflask)


def test_plain_venv_group_runs_its_python(homesrv, venvs):
    plain, _ = venvs
    r = oxhttp.get(homesrv.port, "/plain/info")
    assert r.status == 200, r
    assert _same(r.json()["sys_prefix"], plain)


def test_flask_app_fails_to_import_under_plain_venv(homesrv):
    r = oxhttp.get(homesrv.port, "/plain/flask")
    assert r.status == 500, r
    log = homesrv.wait_stderr("No module named 'flask'")
    assert "Traceback" in log
    # The other mounts, including the one in the same process, are fine.
    for path in ("/plain/info", "/home/flask", "/home/info"):
        assert oxhttp.get(homesrv.port, path).status == 200, path
    assert oxhttp.get(homesrv.port, "/plain/flask").status == 500
