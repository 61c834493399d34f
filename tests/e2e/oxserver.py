"""Start and stop a real oxwsgi server for the end-to-end tests.

A `Server` writes its config into a private directory, runs the binary
(`OXWSGI_BIN`, default `<repo>/target/debug/oxwsgi`) with stdout/stderr sent
to files, waits until the mounts answer, and stops it by PID (SIGTERM, then
SIGKILL). Every daemon it started is found through its process tree and an
environment tag and killed if still alive after the stop.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import oxhttp

REPO = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"
TAG_ENV = "OXWSGI_E2E_TAG"

# Every server started in this pytest process, for log dumps on failure.
ALL_SERVERS: list["Server"] = []


def binary() -> str:
    b = os.environ.get("OXWSGI_BIN") or str(REPO / "target" / "debug" / "oxwsgi")
    return b


def daemon_python() -> str:
    """The interpreter whose packages (Flask, Django, numpy) the test apps use."""
    return sys.executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- TOML
def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (str, Path)):
        s = str(v)
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def _toml_key(k: str) -> str:
    if k.replace("-", "").replace("_", "").isalnum():
        return k
    return _toml_value(k)


def toml_dumps(cfg: dict) -> str:
    """Enough TOML for oxwsgi configs: scalars, arrays, tables of tables
    (`groups`), arrays of tables (`mount`, `static`)."""
    out = []
    tables = []
    arrays = []
    for k, v in cfg.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            arrays.append((k, v))
        else:
            out.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for k, v in tables:
        plain = {kk: vv for kk, vv in v.items() if not isinstance(vv, dict)}
        subs = {kk: vv for kk, vv in v.items() if isinstance(vv, dict)}
        if plain or not subs:
            out.append(f"\n[{_toml_key(k)}]")
            out += [f"{_toml_key(kk)} = {_toml_value(vv)}" for kk, vv in plain.items()]
        for kk, vv in subs.items():
            out.append(f"\n[{_toml_key(k)}.{_toml_key(kk)}]")
            out += [f"{_toml_key(a)} = {_toml_value(b)}" for a, b in vv.items()]
    for k, items in arrays:
        for item in items:
            out.append(f"\n[[{_toml_key(k)}]]")
            out += [f"{_toml_key(a)} = {_toml_value(b)}" for a, b in item.items()]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- processes
def proc_exists(pid: int) -> bool:
    """True if pid is alive and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(b")", 1)[1].split()[0]
    return state not in (b"Z", b"X")


def start_time(pid: int):
    """The process's start time (clock ticks since boot), to tell a pid that
    was reused apart from the process we saw."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[19])


def children_of(pid: int) -> list[int]:
    """Direct children of pid."""
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat.rsplit(b")", 1)[1].split()
        if int(rest[1]) == pid:
            kids.append(int(d))
    return kids


def descendants_of(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children_of(p):
            out.append(c)
            todo.append(c)
    return out


def pids_with_tag(tag: str) -> list[int]:
    """Processes whose environment carries OXWSGI_E2E_TAG=tag."""
    needle = f"{TAG_ENV}={tag}".encode()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(int(d))
    return found


def cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


def kill_quietly(pid: int, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------- server
class ServerExited(Exception):
    pass


class Server:
    """One oxwsgi front process (and its daemons)."""

    def __init__(self, workdir: Path, name: str = "server"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = None
        self.proc: subprocess.Popen | None = None
        self.tag = uuid.uuid4().hex
        self.stdout_path = self.workdir / f"{name}.stdout.log"
        self.stderr_path = self.workdir / f"{name}.stderr.log"
        self.config_path = None
        self.args = None
        self.returncode = None
        self.seen_daemons: dict[int, int] = {}  # pid -> start time
        ALL_SERVERS.append(self)

    # -- environment -----------------------------------------------------
    def env(self, extra=None) -> dict:
        env = dict(os.environ)
        env[TAG_ENV] = self.tag
        # The daemons' default interpreter: the test venv's python.
        env.setdefault("OXWSGI_PYTHON", daemon_python())
        env["PATH"] = str(Path(daemon_python()).parent) + os.pathsep + env.get("PATH", "")
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("RUST_BACKTRACE", "1")
        if extra:
            env.update(extra)
        return env

    # -- start -----------------------------------------------------------
    def write_config(self, cfg: dict | str, filename: str = "oxwsgi.toml") -> Path:
        path = self.workdir / filename
        path.write_text(cfg if isinstance(cfg, str) else toml_dumps(cfg))
        self.config_path = path
        return path

    def start_run(self, cfg: dict | str | Path, ready=("/",), port=None, timeout=60.0, env=None, filename="oxwsgi.toml"):
        """`oxwsgi run CONFIG`. A dict config gets `listen` filled in."""
        if isinstance(cfg, Path):
            self.config_path = cfg
        else:
            if isinstance(cfg, dict):
                cfg = dict(cfg)
                if "listen" not in cfg:
                    self.port = port or free_port()
                    cfg = {"listen": [f"127.0.0.1:{self.port}"], **cfg}
            self.write_config(cfg, filename)
        if self.port is None:
            self.port = port
        return self.start([binary(), "run", str(self.config_path)], ready=ready, timeout=timeout, env=env)

    def start_serve(self, target: str, *opts, ready=("/",), timeout=60.0, env=None):
        self.port = free_port()
        args = [binary(), "serve", str(target), "--listen", f"127.0.0.1:{self.port}", *map(str, opts)]
        return self.start(args, ready=ready, timeout=timeout, env=env)

    def start(self, args, ready=("/",), timeout=60.0, env=None):
        if not os.path.exists(args[0]):
            raise FileNotFoundError(f"oxwsgi binary {args[0]} not found (build it or set OXWSGI_BIN)")
        self.args = args
        self._out = open(self.stdout_path, "ab")
        self._err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            args,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            env=self.env(env),
            start_new_session=True,
        )
        if ready:
            self.wait_ready(ready, timeout)
        return self

    def wait_ready(self, paths, timeout=60.0):
        """Poll every path until it answers something other than a
        connection error or 503 (daemons not up yet)."""
        deadline = time.monotonic() + timeout
        pending = list(paths)
        last = None
        while pending:
            if self.proc.poll() is not None:
                raise ServerExited(
                    f"oxwsgi exited with {self.proc.returncode} before it was ready\n{self.logs_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready after {timeout}s on {pending} (last: {last!r})\n{self.logs_tail()}")
            path = pending[0]
            try:
                r = oxhttp.get(self.port, path, timeout=10)
                last = r.status
                if r.status != 503:
                    pending.pop(0)
                    continue
            except (OSError, oxhttp.ConnectionClosed, oxhttp.Timeout, ValueError) as e:
                last = e
            time.sleep(0.1)  # poll interval, not a readiness assumption
        self.remember_daemons()

    # -- inspection ------------------------------------------------------
    @property
    def pid(self) -> int:
        return self.proc.pid

    def daemon_pids(self) -> list[int]:
        return [p for p in descendants_of(self.pid) if proc_exists(p)]

    def remember_daemons(self):
        if self.proc and self.proc.poll() is None:
            for p in descendants_of(self.pid):
                st = start_time(p)
                if st is not None:
                    self.seen_daemons[p] = st

    def stderr_text(self) -> str:
        self._err.flush() if getattr(self, "_err", None) else None
        try:
            return self.stderr_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stdout_text(self) -> str:
        try:
            return self.stdout_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stderr_mark(self) -> int:
        try:
            return self.stderr_path.stat().st_size
        except FileNotFoundError:
            return 0

    def stderr_since(self, mark: int) -> str:
        with open(self.stderr_path, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    def wait_stderr(self, needle: str, mark: int = 0, timeout: float = 10.0) -> str:
        """Wait until needle appears in stderr after mark; return that text."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.stderr_since(mark)
            if needle in text:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not in server stderr after {timeout}s:\n{text[-4000:]}")
            time.sleep(0.05)

    def logs_tail(self, n: int = 120) -> str:
        err = self.stderr_text().splitlines()[-n:]
        out = self.stdout_text().splitlines()[-30:]
        return (
            f"--- {self.name}: {' '.join(map(str, self.args or []))}\n"
            f"--- stderr ({self.stderr_path}, last {len(err)} lines)\n" + "\n".join(err) +
            f"\n--- stdout ({self.stdout_path}, last {len(out)} lines)\n" + "\n".join(out)
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # -- stop ------------------------------------------------------------
    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        self.returncode = self.proc.wait(timeout)
        return self.returncode

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        self.remember_daemons()
        if self.proc.poll() is None:
            kill_quietly(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                kill_quietly(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.returncode = self.proc.returncode
        self.kill_leftovers()
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f:
                f.close()
        return self.returncode

    def kill_leftovers(self) -> list[int]:
        """SIGKILL every daemon of this server still alive. Returns them."""
        left = [p for p, st in self.seen_daemons.items() if proc_exists(p) and start_time(p) == st]
        left += [p for p in pids_with_tag(self.tag) if p not in left and proc_exists(p)]
        for p in left:
            kill_quietly(p)
        return left


def wait_for(predicate, timeout=20.0, every=0.1):
    """Polls `predicate` until it returns something true (returned) or
    `timeout` seconds pass (its last value is returned)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return predicate()
