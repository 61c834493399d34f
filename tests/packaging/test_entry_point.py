"""Fast checks of the pip entry point and the version metadata (no cargo).

The real wheel is built and exercised in test_pip_install.py; here the
package's Python files are copied next to a fake ``bin/oxwsgi`` (a shell
script that reports what it was given) and a fake worker extension file, so
the exec contract is checked in well under a second.
"""

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "python" / "oxwsgi"

FAKE_BINARY = """#!/bin/sh
echo "argv0=$0"
echo "args=$*"
echo "pid=$$"
echo "python=$OXWSGI_PYTHON"
echo "lib=$OXWSGI_WORKER_LIB"
exit 7
"""


def _toml_version(text, table):
    """The `version = "..."` line inside `[table]` (no tomllib on 3.9/3.10)."""
    m = re.search(
        r"^\[" + re.escape(table) + r"\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S
    )
    assert m, "no [%s] table" % table
    v = re.search(r'^version\s*=\s*"([^"]+)"', m.group(1), re.M)
    assert v, "no version in [%s]" % table
    return v.group(1)


def test_versions_agree():
    cargo = _toml_version((REPO / "Cargo.toml").read_text(), "workspace.package")
    pyproject = _toml_version((REPO / "pyproject.toml").read_text(), "project")
    init = re.search(
        r'^__version__\s*=\s*"([^"]+)"', (PACKAGE / "__init__.py").read_text(), re.M
    ).group(1)
    assert cargo == pyproject == init


@pytest.fixture
def fake_install(tmp_path):
    pkg = tmp_path / "site" / "oxwsgi"
    pkg.mkdir(parents=True)
    for name in ("__init__.py", "__main__.py", "_cli.py"):
        shutil.copy(PACKAGE / name, pkg / name)
    (pkg / "bin").mkdir()
    exe = pkg / "bin" / "oxwsgi"
    exe.write_text(FAKE_BINARY)
    exe.chmod(0o755)
    lib = pkg / "_oxwsgi_worker.abi3.so"
    lib.write_bytes(b"")  # found by the import system, never loaded here
    return tmp_path / "site"


def _run(site, args, extra_env=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXWSGI_")}
    env["PYTHONPATH"] = str(site)
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable] + args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        timeout=30,
    )


def _fields(stdout):
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


@pytest.mark.parametrize(
    "launcher", [["-c", "from oxwsgi._cli import main; main()"], ["-m", "oxwsgi"]]
)
def test_execs_binary_with_env(fake_install, launcher):
    p = _run(fake_install, launcher + ["serve", "app.py", "--listen", "127.0.0.1:1"])
    assert p.returncode == 7, p.stderr  # the binary's own exit status
    f = _fields(p.stdout)
    assert f["argv0"] == str(fake_install / "oxwsgi" / "bin" / "oxwsgi")
    assert f["args"] == "serve app.py --listen 127.0.0.1:1"
    assert f["python"] == sys.executable
    assert f["lib"] == str(fake_install / "oxwsgi" / "_oxwsgi_worker.abi3.so")


def test_keeps_explicit_python_but_not_foreign_lib(fake_install):
    p = _run(
        fake_install,
        ["-m", "oxwsgi"],
        {"OXWSGI_PYTHON": "/opt/py/bin/python", "OXWSGI_WORKER_LIB": "/elsewhere.so"},
    )
    f = _fields(p.stdout)
    assert f["python"] == "/opt/py/bin/python"
    assert f["lib"] == str(fake_install / "oxwsgi" / "_oxwsgi_worker.abi3.so")


def test_exec_replaces_python_process(fake_install):
    proc = subprocess.Popen(
        [sys.executable, "-m", "oxwsgi"],
        env=dict(os.environ, PYTHONPATH=str(fake_install)),
        stdout=subprocess.PIPE,
        universal_newlines=True,
    )
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 7
    assert _fields(out)["pid"] == str(proc.pid)


def test_restores_lost_executable_bit(fake_install):
    exe = fake_install / "oxwsgi" / "bin" / "oxwsgi"
    exe.chmod(0o644)
    p = _run(fake_install, ["-m", "oxwsgi"])
    assert p.returncode == 7, p.stderr
    assert exe.stat().st_mode & stat.S_IXUSR


def test_missing_binary_is_a_start_failure(fake_install):
    (fake_install / "oxwsgi" / "bin" / "oxwsgi").unlink()
    p = _run(fake_install, ["-m", "oxwsgi", "--version"])
    assert p.returncode == 2
    assert "binary is missing" in p.stderr
