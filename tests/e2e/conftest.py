"""Fixtures for the end-to-end tests: real oxwsgi servers on 127.0.0.1.

* `servers` (module scope) / `server` (function scope): factories returning
  a fresh `oxserver.Server` in a private temp directory; every server they
  made is stopped (SIGTERM, then SIGKILL, leftover daemons killed) at the end
  of the module / test.
* On a failing test the logs (stderr + stdout) of every server that was
  running, or was started during the test, are attached to the report.
* Every test gets a pytest-timeout bound (DEFAULT_TIMEOUT unless marked).

Environment: OXWSGI_BIN (default <repo>/target/debug/oxwsgi),
OXWSGI_CORPUS (default <repo>/../shared/corpus/http; the corpus tests skip
when it is unset and that directory does not exist).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# CI runs the suite as root; oxwsgi refuses to run applications as root
# unless told to. test_privileges.py unsets this to test the refusal.
os.environ.setdefault("OXWSGI_ALLOW_ROOT", "1")

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import oxserver  # noqa: E402
from oxserver import ALL_SERVERS, Server  # noqa: E402

DEFAULT_TIMEOUT = 120  # seconds per test unless the test says otherwise


def pytest_collection_modifyitems(config, items):
    from known_server_bugs import SERVER_BUGS

    for item in items:
        path = Path(str(item.fspath)).resolve()
        if HERE not in path.parents:
            continue
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))
        rel = f"{path.name}::{item.name}"
        reason = SERVER_BUGS.get(rel) or SERVER_BUGS.get(f"{path.name}::{item.originalname}")
        if reason:
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))


def _make_factory(tmp_path_factory, label: str, made: list):
    def make(name: str = "server") -> Server:
        safe = "".join(c if c.isalnum() else "-" for c in f"{label}-{name}")[:60]
        s = Server(tmp_path_factory.mktemp(safe), name)
        made.append(s)
        return s

    return make


@pytest.fixture(scope="module")
def servers(tmp_path_factory, request):
    """Factory for servers shared by a module (stopped at module end)."""
    made: list[Server] = []
    yield _make_factory(tmp_path_factory, request.module.__name__.rsplit(".", 1)[-1], made)
    for s in made:
        s.stop()


@pytest.fixture
def server(tmp_path_factory, request):
    """Factory for servers private to one test (stopped after it)."""
    made: list[Server] = []
    yield _make_factory(tmp_path_factory, request.node.name, made)
    for s in made:
        s.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item._ox_first_server = len(ALL_SERVERS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and not hasattr(item, "_ox_logs_attached"):
        first = getattr(item, "_ox_first_server", len(ALL_SERVERS))
        relevant = [
            s
            for i, s in enumerate(ALL_SERVERS)
            if s.proc is not None and (i >= first or s.proc.poll() is None)
        ]
        if relevant:
            item._ox_logs_attached = True
            report.sections.append(
                ("oxwsgi server logs", "\n\n".join(s.logs_tail() for s in relevant))
            )


def pytest_sessionfinish(session, exitstatus):
    # Belt and braces: nothing this test run started may outlive it.
    for s in ALL_SERVERS:
        try:
            s.stop(timeout=5)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


@pytest.fixture(scope="session")
def repo() -> Path:
    return oxserver.REPO


@pytest.fixture(scope="session")
def apps() -> Path:
    return oxserver.APPS
