"""`pip install` for real: build the wheel, install it into a fresh venv,
run the `oxwsgi` command and serve the hello example through it.

Costly: the wheel build is a cargo release build of the front and the worker
(a few minutes cold on 2 cores, well under a minute warm; see
docs/packaging.md). CARGO_TARGET_DIR defaults to the repository's target/
so the release cache is shared with `cargo build --release` and earlier runs.
Skipped when OXWSGI_SKIP_PACKAGING=1.
"""

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VERSION = "0.1.0"
BUILD_TIMEOUT = 40 * 60  # a cold release build on a slow 2-core machine
START_TIMEOUT = 60
STOP_TIMEOUT = 30

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.skipif(
        os.environ.get("OXWSGI_SKIP_PACKAGING") == "1",
        reason="OXWSGI_SKIP_PACKAGING=1",
    ),
]
if importlib.util.find_spec("pytest_timeout") is not None:
    # Room for a cold build in the first test's setup, whatever default
    # timeout the suite sets; every step below has its own bound too.
    pytestmark.append(pytest.mark.timeout(BUILD_TIMEOUT + 10 * 60))


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXWSGI_")}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    env.update(extra)
    return env


def _run(cmd, timeout, **kw):
    return subprocess.run(
        [str(c) for c in cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
        timeout=timeout,
        **kw
    )


def _tail(text, n=60):
    return "\n".join(text.splitlines()[-n:])


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("pkg")
    env_dir = root / "venv"
    p = _run([sys.executable, "-m", "venv", env_dir], timeout=120)
    assert p.returncode == 0, p.stdout
    return env_dir


@pytest.fixture(scope="module")
def wheel(venv, tmp_path_factory, pytestconfig):
    out = tmp_path_factory.mktemp("wheels")
    env = _clean_env(
        CARGO_TARGET_DIR=os.environ.get("CARGO_TARGET_DIR", str(REPO / "target")),
        # The worker is abi3: any CPython >= 3.9 configures pyo3. A stable path
        # (not this run's fresh venv, which setuptools-rust would pass) keeps
        # pyo3's build script, and so the worker, cached between runs.
        PYO3_PYTHON=os.environ.get("PYO3_PYTHON", sys.executable),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    t0 = time.monotonic()
    p = _run(
        [venv / "bin" / "python", "-m", "pip", "wheel", "--no-deps", "-w", out, REPO],
        timeout=BUILD_TIMEOUT,
        env=env,
        cwd=str(out),
    )
    took = time.monotonic() - t0
    (out / "build.log").write_text(p.stdout)
    assert p.returncode == 0, "pip wheel failed:\n" + _tail(p.stdout)
    wheels = sorted(out.glob("oxwsgi-*.whl"))
    assert len(wheels) == 1, wheels
    pytestconfig.oxwsgi_packaging_timings.append(("pip wheel (CARGO_TARGET_DIR=%s)" % env["CARGO_TARGET_DIR"], took))
    return wheels[0]


@pytest.fixture(scope="module")
def installed(venv, wheel):
    p = _run(
        [venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index", wheel],
        timeout=300,
        env=_clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"),
    )
    assert p.returncode == 0, p.stdout
    return venv


def test_wheel_layout(wheel):
    assert wheel.name.startswith("oxwsgi-%s-cp39-abi3-" % VERSION), wheel.name
    with zipfile.ZipFile(str(wheel)) as z:
        infos = {i.filename: i for i in z.infolist()}
        entry_points = z.read("oxwsgi-%s.dist-info/entry_points.txt" % VERSION)
    for name in (
        "oxwsgi/__init__.py",
        "oxwsgi/__main__.py",
        "oxwsgi/_cli.py",
        "oxwsgi/_bootstrap.py",
        "oxwsgi/_oxwsgi_worker.abi3.so",
        "oxwsgi/bin/oxwsgi",
    ):
        assert name in infos, sorted(infos)
    mode = infos["oxwsgi/bin/oxwsgi"].external_attr >> 16
    assert mode & 0o111, oct(mode)
    assert b"oxwsgi = oxwsgi._cli:main" in entry_points


def test_version(installed):
    for cmd in (
        [installed / "bin" / "oxwsgi", "--version"],
        [installed / "bin" / "python", "-m", "oxwsgi", "--version"],
    ):
        p = _run(cmd, timeout=30, env=_clean_env())
        assert p.returncode == 0, p.stdout
        assert VERSION in p.stdout, p.stdout


def test_worker_extension_imports(installed):
    # The abi3 extension loads into the venv's Python (as daemons load it).
    p = _run(
        [installed / "bin" / "python", "-c", "import oxwsgi._oxwsgi_worker as w; print(w.__file__)"],
        timeout=30,
        env=_clean_env(),
    )
    assert p.returncode == 0, p.stdout
    assert "_oxwsgi_worker.abi3.so" in p.stdout


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, deadline):
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError as e:  # not listening yet
            last = e
            time.sleep(0.2)
    raise AssertionError("no answer from %s: %r" % (url, last))


class _Server:
    """`oxwsgi serve TARGET` from the venv, stopped by its PID."""

    def __init__(self, venv, target, log_path):
        self.port = _free_port()
        self.log = open(str(log_path), "w")
        self.proc = subprocess.Popen(
            [
                str(venv / "bin" / "oxwsgi"),
                "serve",
                str(target),
                "--listen",
                "127.0.0.1:%d" % self.port,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            # Daemons must not need PATH's python3. CI runs as root, and
            # oxwsgi runs applications as root only when told to.
            env=_clean_env(PATH="/usr/bin:/bin", OXWSGI_ALLOW_ROOT="1"),
            start_new_session=True,
        )

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    return self.proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)  # the group we started
                    self.proc.wait(timeout=10)
                    raise AssertionError("oxwsgi did not stop on SIGTERM")
            return self.proc.returncode
        finally:
            self.log.close()

    def output(self):
        self.log.flush()
        with open(self.log.name) as f:
            return _tail(f.read())


@pytest.fixture
def serve(installed, tmp_path):
    servers = []

    def start(target):
        s = _Server(installed, target, tmp_path / ("server%d.log" % len(servers)))
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def test_serve_hello_example(serve):
    s = serve(REPO / "examples" / "hello" / "wsgi.py")
    status, body = _get(s.url(), time.monotonic() + START_TIMEOUT)
    assert status == 200, (status, body, s.output())
    assert body == b"Hello, world!\n", (body, s.output())
    # The entry point exec'd the binary: same PID, no Python in between.
    exe = os.readlink("/proc/%d/exe" % s.proc.pid)
    assert exe.endswith("/oxwsgi/bin/oxwsgi"), exe
    assert s.stop() == 0, s.output()


def test_daemons_run_the_installing_python(serve, installed, tmp_path):
    app = tmp_path / "probe.py"
    app.write_text(
        "import sys\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [('%s\\n%s' % (sys.prefix, sys.executable)).encode()]\n"
    )
    s = serve(app)
    status, body = _get(s.url(), time.monotonic() + START_TIMEOUT)
    assert status == 200, (status, body, s.output())
    prefix = body.decode().splitlines()[0]
    assert os.path.realpath(prefix) == os.path.realpath(str(installed)), body
