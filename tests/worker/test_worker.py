"""The daemon side on its own: a real `python3 -c <bootstrap>` process with
the worker extension, driven over one socketpair (its channel) by a fake
front that speaks the frame protocol (crates/oxwsgi-protocol) with `struct`:
every request on its own stream, frames of several streams interleaved,
bodies flow-controlled with Credit frames. No network.

Self-contained (no conftest). The extension is taken from OXWSGI_WORKER_LIB,
else <repo>/target/debug/liboxwsgi_worker.so (built with cargo when missing).
The daemon runs OXWSGI_TEST_PYTHON if set (any CPython >= 3.9: the extension
is built for the stable ABI), else the interpreter running the tests.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = (ROOT / "python" / "oxwsgi" / "_bootstrap.py").read_text()
TIMEOUT = 20.0
PYTHON = os.environ.get("OXWSGI_TEST_PYTHON") or sys.executable

# Frame kinds (crates/oxwsgi-protocol/src/frame.rs).
REQUEST_HEAD, REQUEST_BODY, REQUEST_END, CREDIT = 0x01, 0x02, 0x03, 0x04
HELLO, RESPONSE_HEAD, RESPONSE_BODY, RESPONSE_END, RESPONSE_ABORT = 0x10, 0x11, 0x12, 0x13, 0x14
RESPONSE_FILE = 0x15
RESPONSE_KINDS = {RESPONSE_HEAD, RESPONSE_BODY, RESPONSE_END, RESPONSE_ABORT, RESPONSE_FILE}
ABORT_FLAG = 1
BODY_LENGTH_UNKNOWN = 2**64 - 1
# Flow control windows (crates/oxwsgi-protocol/src/lib.rs).
REQUEST_WINDOW = 1024 * 1024
RESPONSE_WINDOW = 4 * 1024 * 1024
MIB = 1024 * 1024
GROUP = "testgroup"
TITLE = "(wsgi:testgroup)"


def worker_lib() -> Path:
    env = os.environ.get("OXWSGI_WORKER_LIB")
    if env:
        return Path(env)
    lib = ROOT / "target" / "debug" / "liboxwsgi_worker.so"
    if not lib.exists():
        subprocess.run(["cargo", "build", "-p", "oxwsgi-worker"], cwd=ROOT, check=True)
    return lib


# --------------------------------------------------------------------------
# Frames

HEADER = struct.Struct("<BII")  # kind, stream, payload length


def frame(kind: int, stream: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, stream, len(payload)) + payload


def credit(stream: int, nbytes: int) -> bytes:
    return frame(CREDIT, stream, struct.pack("<I", nbytes))


def field_bytes(value: bytes) -> bytes:
    return struct.pack("<I", len(value)) + value


def request_head(
    stream: int,
    mount: int = 0,
    method: bytes = b"GET",
    path: bytes = b"/",
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    scheme: bytes = b"http",
    script_name: bytes = b"/app",
    request_start: float = 1700000000.25,
    queue_start: float = 1700000000.5,
) -> bytes:
    headers = headers if headers is not None else [(b"HTTP_HOST", b"localhost")]
    uri = script_name + path + (b"?" + query if query else b"")
    payload = struct.pack("<Idd", mount, request_start, queue_start)
    for value in (
        method,
        script_name,
        path,
        query,
        uri,
        b"localhost",
        b"8000",
        b"HTTP/1.1",
        b"127.0.0.1",
        b"5555",
        scheme,
    ):
        payload += field_bytes(value)
    payload += struct.pack("<I", len(headers))
    for name, value in headers:
        payload += field_bytes(name) + field_bytes(value)
    return frame(REQUEST_HEAD, stream, payload)


def request_end(stream: int, flags: int = 0) -> bytes:
    return frame(REQUEST_END, stream, bytes([flags]))


@dataclass
class Response:
    stream: int = 0
    status: str | None = None
    body_length: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    frames: list[int] = field(default_factory=list)
    body_frames: list[int] = field(default_factory=list)
    abort: str | None = None
    # (offset, length) of each ResponseFile frame; the body has its bytes.
    files: list[tuple[int, int]] = field(default_factory=list)
    # Response body bytes granted back to the daemon (Credit frames sent).
    granted: int = 0

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)

    @property
    def ended(self) -> bool:
        return bool(self.frames) and self.frames[-1] in (RESPONSE_END, RESPONSE_ABORT)


class Channel:
    """The front's end of a daemon's channel. Frames are read as they come
    and sorted by stream: response frames into a queue per stream, Credit
    frames into the stream's request-body credit. Descriptors that come
    with the bytes (SCM_RIGHTS; a plain recv would close them) are kept in
    arrival order and handed to the ResponseFile frames in order, as the
    front does."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()
        # Descriptors received and not yet claimed by a ResponseFile frame.
        self.fds: list[int] = []
        # stream -> deque of (kind, payload, fd) not yet taken.
        self.pending: dict[int, collections.deque] = collections.defaultdict(collections.deque)
        # stream -> request body bytes the daemon acknowledged (Credit).
        self.credits: dict[int, int] = collections.defaultdict(int)
        # Every frame read, in wire order: (kind, stream, payload length).
        self.log: list[tuple[int, int, int]] = []
        self.hellos: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        data, fds, _, _ = socket.recv_fds(self.sock, 1 << 20, 16, socket.MSG_CMSG_CLOEXEC)
        self.fds.extend(fds)
        if not data:
            raise EOFError(f"EOF with {len(self.buf)} bytes of a frame read")
        self.buf += data

    def read_frame(self) -> tuple[int, int, bytes, int | None]:
        """The next frame on the wire: (kind, stream, payload, fd)."""
        while len(self.buf) < HEADER.size:
            self._fill()
        kind, stream, length = HEADER.unpack_from(self.buf)
        while len(self.buf) < HEADER.size + length:
            self._fill()
        payload = bytes(self.buf[HEADER.size : HEADER.size + length])
        del self.buf[: HEADER.size + length]
        fd = None
        if kind == RESPONSE_FILE:
            assert self.fds, "a file frame without its descriptor"
            fd = self.fds.pop(0)
        self.log.append((kind, stream, length))
        return kind, stream, payload, fd

    def pump(self) -> None:
        """Reads one frame and files it."""
        kind, stream, payload, fd = self.read_frame()
        if kind == HELLO:
            assert stream == 0, f"Hello on stream {stream}"
            self.hellos.append(payload)
        elif kind == CREDIT:
            assert stream != 0 and len(payload) == 4, (stream, payload)
            self.credits[stream] += struct.unpack("<I", payload)[0]
        elif kind in RESPONSE_KINDS:
            assert stream != 0, f"response frame {kind:#x} on stream 0"
            self.pending[stream].append((kind, payload, fd))
        else:
            raise AssertionError(f"unexpected frame kind {kind:#x} on stream {stream}")

    def next(self, stream: int) -> tuple[int, bytes, int | None]:
        """The next response frame of `stream`, reading (and filing other
        streams' frames) until there is one."""
        queue = self.pending[stream]
        while not queue:
            self.pump()
        return queue.popleft()

    def ended(self, stream: int) -> bool:
        """Whether a frame that ends `stream`'s response is already filed."""
        return any(k in (RESPONSE_END, RESPONSE_ABORT) for k, _, _ in self.pending[stream])

    def read_eof(self) -> None:
        """Files frames until the daemon closes the channel."""
        while True:
            try:
                self.pump()
            except EOFError:
                return

    def send_request(self, stream: int, head: bytes, body: list[bytes], end_flags: int = 0,
                     end: bool = True) -> int:
        """Opens `stream` with `head` and sends `body` (one RequestBody frame a
        block) and RequestEnd, never more than REQUEST_WINDOW bytes beyond
        the daemon's Credit: while the window is full it reads (and files)
        frames until Credit comes. Stops sending once the stream's response
        ended (the front may). Returns the body bytes sent."""
        self.credits[stream] = 0
        self.send(head)
        sent = 0
        for block in body:
            if not block:
                self.send(frame(REQUEST_BODY, stream, b""))
                continue
            view = memoryview(block)
            while view:
                room = REQUEST_WINDOW + self.credits[stream] - sent
                if room <= 0:
                    if self.ended(stream):
                        return sent
                    self.pump()
                    continue
                piece = view[:room]
                self.send(frame(REQUEST_BODY, stream, bytes(piece)))
                sent += len(piece)
                view = view[len(piece):]
        if end:
            self.send(request_end(stream, end_flags))
        return sent

    def read_response(self, stream: int, until_head: bool = False, resp: Response | None = None,
                      grant: bool = True, until_body: int | None = None) -> Response:
        """Reads `stream`'s frames up to ResponseEnd / ResponseAbort (or the
        head, or `until_body` bytes of body); `resp` continues a response
        whose first frames were already read. With `grant`, each body frame
        is acknowledged with a Credit frame as soon as it is read, as the
        front does when its client takes the bytes."""
        resp = resp or Response(stream=stream)
        while True:
            if until_body is not None and len(resp.body) >= until_body:
                return resp
            kind, payload, fd = self.next(stream)
            resp.frames.append(kind)
            if kind == RESPONSE_HEAD:
                assert resp.status is None, "two response heads"
                parse_response_head(payload, resp)
                if until_head:
                    return resp
            elif kind == RESPONSE_BODY:
                assert resp.status is not None, "body before head"
                resp.body += payload
                resp.body_frames.append(len(payload))
                if grant and payload:
                    self.send(credit(stream, len(payload)))
                    resp.granted += len(payload)
            elif kind == RESPONSE_FILE:
                assert resp.status is not None, "file before head"
                offset, length = struct.unpack("<QQ", payload)
                try:
                    data = os.pread(fd, length, offset)
                finally:
                    os.close(fd)
                assert len(data) == length
                resp.body += data
                resp.files.append((offset, length))
            elif kind == RESPONSE_END:
                assert resp.status is not None, "end before head"
                if not self.buf:
                    assert not self.fds, "descriptors no frame claimed"
                return resp
            elif kind == RESPONSE_ABORT:
                resp.abort = payload.decode()
                return resp


def parse_response_head(payload: bytes, resp: Response) -> None:
    def take_bytes(pos: int) -> tuple[bytes, int]:
        (n,) = struct.unpack_from("<I", payload, pos)
        return payload[pos + 4 : pos + 4 + n], pos + 4 + n

    status, pos = take_bytes(0)
    (resp.body_length,) = struct.unpack_from("<Q", payload, pos)
    (count,) = struct.unpack_from("<I", payload, pos + 8)
    pos += 12
    for _ in range(count):
        name, pos = take_bytes(pos)
        value, pos = take_bytes(pos)
        resp.headers.append((name.decode("latin-1"), value.decode("latin-1")))
    assert pos == len(payload)
    resp.status = status.decode("latin-1")


# --------------------------------------------------------------------------
# --------------------------------------------------------------------------
# Applications under test

APPS = r'''
import io, json, os, sys, threading, time

CLOSED = []
GATE = threading.Event()


def application(environ, start_response):
    name = environ["PATH_INFO"].strip("/").split("/")[0] or "hello"
    return globals()["app_" + name](environ, start_response)


def app_hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hel", b"lo"]


def app_tuple(environ, start_response):
    start_response("200 OK", [])
    return (b"a", b"bc")


def app_environ(environ, start_response):
    out = {}
    for k, v in environ.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = [type(v).__name__, v]
        elif isinstance(v, tuple):
            out[k] = ["tuple", list(v)]
        else:
            out[k] = [type(v).__name__, None]
    out["_sys_path"] = sys.path[:3]
    out["_cwd"] = os.getcwd()
    out["_empty_in_path"] = "" in sys.path
    out["_thread"] = threading.current_thread().name
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(out).encode()]


def app_input(environ, start_response):
    inp = environ["wsgi.input"]
    got = {}
    got["read3"] = inp.read(3).decode()
    got["line"] = inp.readline().decode()
    got["line_limited"] = inp.readline(2).decode()
    got["lines"] = [l.decode() for l in inp.readlines(1)]
    got["iter"] = [l.decode() for l in inp]
    got["rest"] = inp.read().decode()
    got["after"] = inp.read(10).decode()
    start_response("200 OK", [])
    return [json.dumps(got).encode()]


def app_readall(environ, start_response):
    try:
        data = environ["wsgi.input"].read()
        result = b"ok:%d" % len(data)
    except OSError as e:
        result = ("OSError:" + str(e)).encode()
    start_response("200 OK", [])
    return [result]


def app_ignore(environ, start_response):
    start_response("200 OK", [])
    return [b"ignored"]


def app_big(environ, start_response):
    write = start_response("200 OK", [])
    write(b"w" * (17 * 1024 * 1024))
    return [b"x" * (17 * 1024 * 1024)]


def app_big_header(environ, start_response):
    start_response("200 OK", [("X-Big", "v" * (17 * 1024 * 1024))])
    return [b""]


def app_write(environ, start_response):
    write = start_response("200 OK", [])
    write(b"a")
    write(b"bb")
    return [b"ccc"]


class Gen:
    def __init__(self, blocks, fail=False):
        self.blocks = list(blocks)
        self.fail = fail

    def __iter__(self):
        return self

    def __next__(self):
        if not self.blocks:
            if self.fail:
                raise ValueError("generator failed")
            raise StopIteration
        return self.blocks.pop(0)

    def close(self):
        CLOSED.append("closed")


def app_gen(environ, start_response):
    start_response("200 OK", [])
    return Gen([b"", b"one", b"", b"two"])


class ClosingList(list):
    def close(self):
        CLOSED.append("list closed")


def app_list_subclass(environ, start_response):
    start_response("200 OK", [])
    return ClosingList([b"a", b"b"])


def app_mutate_environ(environ, start_response):
    # The environ is the request's own dict: none of this may reach the
    # next request.
    environ["REQUEST_METHOD"] = "MUTATED"
    del environ["SCRIPT_NAME"]
    environ["wsgi.run_once"] = True
    environ["x.added"] = "added"
    environ.clear()
    start_response("200 OK", [])
    return [b"mutated"]


def app_module_name(environ, start_response):
    start_response("200 OK", [])
    return [__name__.encode()]


def app_gen_fail(environ, start_response):
    start_response("200 OK", [])
    return Gen([b"one"], fail=True)


def app_gen_empty(environ, start_response):
    start_response("204 No Content", [])
    return Gen([b"", b""])


def app_closed(environ, start_response):
    start_response("200 OK", [])
    data = json.dumps(CLOSED).encode()
    CLOSED.clear()
    return [data]


def app_slow(environ, start_response):
    start_response("200 OK", [])
    GATE.clear()
    def gen():
        yield b"first"
        GATE.wait(10)
        yield b"second"
    return gen()


def app_open_gate(environ, start_response):
    GATE.set()
    start_response("200 OK", [])
    return [b"opened"]


def app_raise(environ, start_response):
    raise RuntimeError("boom from the app")


def app_raise_after(environ, start_response):
    start_response("200 OK", [])
    def gen():
        yield b"partial"
        raise KeyError("late failure")
    return gen()


def app_str_body(environ, start_response):
    start_response("200 OK", [])
    return ["not bytes"]


def app_no_start(environ, start_response):
    return [b"body"]


HEAD_CASES = [
    (200, []),
    ("200 caf\u0100", []),
    ("20 OK", []),
    ("200OK", []),
    ("200 O\nK", []),
    ("200 OK\x7f", []),
    ("\ud800 OK", []),
    ("200 OK", ()),
    ("200 OK", [("A",)]),
    ("200 OK", [["A", "b"]]),
    ("200 OK", [(b"A", "b")]),
    ("200 OK", [("A", 1)]),
    ("200 OK", [("", "x")]),
    ("200 OK", [("X Y", "x")]),
    ("200 OK", [("X-\u00e9", "x")]),
    ("200 OK", [("Keep-Alive", "x")]),
    ("200 OK", [("tE", "x")]),
    ("200 OK", [("X", "caf\u0100")]),
    ("200 OK", [("X", "a\x00b")]),
    ("200 OK", [("X", "\ud800")]),
    ("200 OK", [("\ud800", 1)]),
    ("200 OK", [("X", "v" * (17 * 1024 * 1024))]),
    ("299 caf\u00e9", [("X-A", "a\tb"), ("X-B", "caf\u00e9"), ("X-C", ""), ("Accept-Ranges", "x")]),
    ("200 OK", [("X-D", "d")] * 3),
]


def app_head_case(environ, start_response):
    status, headers = HEAD_CASES[int(environ["QUERY_STRING"])]
    try:
        start_response(status, headers)
    except Exception as e:
        start_response("200 OK", [])
        return [("%s: %s" % (type(e).__name__, e)).encode("utf-8", "backslashreplace")]
    return [b"accepted"]


def app_bad_status(environ, start_response):
    start_response("OK", [])
    return [b""]


def app_crlf(environ, start_response):
    start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
    return [b""]


def app_hop(environ, start_response):
    start_response("200 OK", [("Connection", "close")])
    return [b""]


def app_tuple_headers(environ, start_response):
    start_response("200 OK", (("A", "b"),))
    return [b""]


def app_twice(environ, start_response):
    start_response("200 OK", [])
    start_response("200 OK", [])
    return [b""]


def app_exc_info(environ, start_response):
    start_response("200 OK", [("X-First", "1")])
    try:
        raise ValueError("handled")
    except ValueError:
        start_response("503 Busy", [("X-Second", "2")], sys.exc_info())
    return [b"replaced"]


def app_exc_info_late(environ, start_response):
    write = start_response("200 OK", [])
    write(b"sent")
    try:
        raise ValueError("too late")
    except ValueError:
        start_response("500 Oops", [], sys.exc_info())
    return [b"never"]


def app_latin1(environ, start_response):
    start_response("200 OK", [("X-Name", "caf\u00e9")])
    return [environ["PATH_INFO"].encode("latin-1")]


def app_errors(environ, start_response):
    err = environ["wsgi.errors"]
    err.write("first line\nsecond ")
    err.write("part\n")
    err.writelines(["third\n", "unterminated"])
    print("via print", file=err)
    start_response("200 OK", [])
    return [b"logged"]


def app_file(environ, start_response):
    f = open(os.environ["OXWSGI_TEST_FILE"], "rb")
    f.read(10)
    start_response("200 OK", [])
    return environ["wsgi.file_wrapper"](f, 4096)


def app_file_bytesio(environ, start_response):
    start_response("200 OK", [])
    return environ["wsgi.file_wrapper"](io.BytesIO(b"x" * 10000), 3000)


def app_file_closed(environ, start_response):
    class F(io.BytesIO):
        def close(self):
            CLOSED.append("file closed")
            super().close()
    start_response("200 OK", [])
    return environ["wsgi.file_wrapper"](F(b"abc"))


EVENTS = {}
EVENTS_LOCK = threading.Lock()


def _event(key):
    with EVENTS_LOCK:
        return EVENTS.setdefault(key, threading.Event())


def app_hold(environ, start_response):
    # Keeps its thread until /release?<the same key> (at most 10 s).
    released = _event(environ["QUERY_STRING"]).wait(10)
    start_response("200 OK", [])
    return [json.dumps([threading.current_thread().name, released]).encode()]


def app_release(environ, start_response):
    _event(environ["QUERY_STRING"]).set()
    start_response("200 OK", [])
    return [b"released"]


def app_sleep(environ, start_response):
    time.sleep(float(environ["QUERY_STRING"]))
    start_response("200 OK", [])
    return [b"slept"]


def app_spin(environ, start_response):
    # Busy in Python (holding the GIL but for the switch interval) for
    # QUERY_STRING seconds.
    end = time.monotonic() + float(environ["QUERY_STRING"])
    while time.monotonic() < end:
        pass
    start_response("200 OK", [])
    return [b"spun"]


def app_sized(environ, start_response):
    start_response("200 OK", [])
    return [b"s" * int(environ["QUERY_STRING"])]


def app_thread(environ, start_response):
    start_response("200 OK", [])
    return [threading.current_thread().name.encode()]


def app_read_late(environ, start_response):
    # Answers "ready" first, then reads the body.
    start_response("200 OK", [])
    def gen():
        yield b"ready"
        yield b"ok:%d" % len(environ["wsgi.input"].read())
    return gen()


def app_switch_interval(environ, start_response):
    sys.setswitchinterval(float(environ["QUERY_STRING"]))
    start_response("200 OK", [])
    return [b"set"]
'''

VALIDATED = r'''
import warnings
from wsgiref.validate import validator

warnings.simplefilter("always")


@validator
def application(environ, start_response):
    inp = environ["wsgi.input"]
    head = inp.readline()
    lines = inp.readlines()
    rest = inp.read(100)
    environ["wsgi.errors"].write("validated\n")
    environ["wsgi.errors"].flush()
    kind = environ["PATH_INFO"]
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    if kind == "/write":
        write(b"w")
        return [b"x"]
    if kind == "/gen":
        return (b for b in [head, b"".join(lines), rest])
    if kind == "/file":
        import io
        return environ["wsgi.file_wrapper"](io.BytesIO(b"filedata"))
    return [head, b"".join(lines), rest]
'''

BROKEN = """
import this_module_does_not_exist_at_all
def application(environ, start_response):
    pass
"""

MODAPP = """
def app(environ, start_response):
    start_response("200 OK", [("X-Via", "module")])
    return [environ["SCRIPT_NAME"].encode()]
"""

# Mount indexes.
M_APPS, M_BROKEN, M_MODULE, M_MISSING, M_VALIDATED = 0, 1, 2, 3, 4


class Worker:
    """One daemon process and the front's end of its channel."""

    def __init__(self, tmp: Path, threads: int = 2, title: str | None = TITLE, config: dict | None = None):
        self.tmp = tmp
        (tmp / "apps.py").write_text(APPS)
        (tmp / "broken.py").write_text(BROKEN)
        (tmp / "validated.py").write_text(VALIDATED)
        libdir = tmp / "lib"
        libdir.mkdir(exist_ok=True)
        (libdir / "modapp.py").write_text(MODAPP)
        home = tmp / "home"
        home.mkdir(exist_ok=True)
        self.file = tmp / "data.bin"
        self.file.write_bytes(bytes(range(256)) * 2400)  # 600 KiB
        front, daemon = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        cfg = {
            "group": GROUP,
            "title": title,
            "channel_fd": daemon.fileno(),
            "threads": threads,
            "python_path": [str(libdir), str(tmp / "extra")],
            "home": str(home),
            "multiprocess": False,
            "mounts": [
                {"path": "/app", "script": str(tmp / "apps.py"), "module": None,
                 "callable": "application", "application_group": "%{GLOBAL}"},
                {"path": "/broken", "script": str(tmp / "broken.py"), "module": None,
                 "callable": "application", "application_group": "%{GLOBAL}"},
                {"path": "/mod", "script": None, "module": "modapp",
                 "callable": "app", "application_group": "%{GLOBAL}"},
                {"path": "/missing", "script": str(tmp / "apps.py"), "module": None,
                 "callable": "no_such_callable", "application_group": "%{GLOBAL}"},
                {"path": "/v", "script": str(tmp / "validated.py"), "module": None,
                 "callable": "application", "application_group": "%{GLOBAL}"},
            ],
        }
        if config:
            cfg.update(config)
        env = dict(os.environ)
        env["OXWSGI_WORKER_LIB"] = str(worker_lib())
        env["OXWSGI_WORKER_CONFIG"] = json.dumps(cfg)
        env["OXWSGI_TEST_FILE"] = str(self.file)
        env.pop("PYTHONPATH", None)
        self.stderr_path = tmp / "stderr.log"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [PYTHON, "-c", BOOTSTRAP],
                env=env,
                cwd=str(tmp),
                pass_fds=[daemon.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
            )
        daemon.close()
        front.settimeout(TIMEOUT)
        self.ch = Channel(front)
        # The first frame is the one Hello.
        kind, stream, payload, _ = self.ch.read_frame()
        assert (kind, stream) == (HELLO, 0), (kind, stream, self.stderr())
        self.pid, self.failed_imports = struct.unpack("<II", payload)
        # Fresh ids, far from the ones tests pick by hand.
        self._streams = itertools.count(1 << 20)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def new_stream(self) -> int:
        return next(self._streams)

    def open(self, stream: int | None = None, body: list[bytes] | None = None, end_flags: int = 0,
             end: bool = True, **head) -> int:
        """Sends a request on `stream` (a fresh one by default); returns the
        stream id. The response is read with `read`."""
        stream = self.new_stream() if stream is None else stream
        self.ch.send_request(stream, request_head(stream, **head), body or [], end_flags, end)
        return stream

    def open_app(self, name: str, **kw) -> int:
        return self.open(mount=M_APPS, path=b"/" + name.encode(), **kw)

    def read(self, stream: int, **kw) -> Response:
        return self.ch.read_response(stream, **kw)

    def request(self, stream: int | None = None, body: list[bytes] | None = None, end_flags: int = 0,
                until_head: bool = False, grant: bool = True, **head) -> Response:
        stream = self.open(stream, body, end_flags, **head)
        return self.read(stream, until_head=until_head, grant=grant)

    def app(self, name: str, **kw) -> Response:
        return self.request(mount=M_APPS, path=b"/" + name.encode(), **kw)

    def wait(self) -> int:
        try:
            return self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def close(self) -> int:
        self.ch.sock.close()
        return self.wait()


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    w = Worker(tmp_path_factory.mktemp("worker"))
    yield w
    if w.proc.poll() is None:
        w.close()


# --------------------------------------------------------------------------
# Start-up


def test_one_hello_on_stream_0(worker):
    assert worker.pid == worker.proc.pid
    # The fixture's /broken (raises) and /missing (no such callable) mounts
    # fail to load: the Hello says so.
    assert worker.failed_imports == 2
    # Only once per channel, however many threads and requests.
    assert worker.app("hello").body == b"hello"
    assert worker.ch.hellos == []


def test_process_title(worker):
    pid = worker.proc.pid
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == TITLE.encode() + b"\0"
    assert Path(f"/proc/{pid}/comm").read_text().strip() == TITLE[:15]
    if shutil.which("ps"):
        ps = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True)
        assert ps.stdout.strip() == TITLE


def test_startup_environment(worker):
    env = worker.app("environ").json()
    assert env["_sys_path"][:2] == [str(worker.tmp / "lib"), str(worker.tmp / "extra")]
    assert env["_cwd"] == str(worker.tmp / "home")
    assert env["_empty_in_path"] is False


def test_import_failure_is_logged_once_and_aborts(worker):
    for _ in range(2):
        r = worker.request(mount=M_BROKEN)
        assert r.status is None and "failed to import" in r.abort
    log = worker.stderr()
    assert log.count("Failed to load the WSGI application for mount '/broken'") == 1
    assert "ModuleNotFoundError: No module named 'this_module_does_not_exist_at_all'" in log


def test_missing_callable_aborts(worker):
    r = worker.request(mount=M_MISSING)
    assert r.abort and r.status is None
    assert "no callable 'no_such_callable'" in worker.stderr()


def test_module_mount(worker):
    r = worker.request(mount=M_MODULE, script_name=b"/mod")
    assert (r.status, r.header("X-Via"), r.body) == ("200 OK", "module", b"/mod")


def test_unknown_mount_aborts(worker):
    r = worker.request(mount=99)
    assert r.abort and "mount #99" in r.abort


# --------------------------------------------------------------------------
# Environ


def test_environ(worker):
    env = worker.app(
        "environ",
        query=b"a=1&b=2",
        headers=[(b"HTTP_HOST", b"example.org"), (b"CONTENT_TYPE", b"text/plain"),
                 (b"CONTENT_LENGTH", b"0"), (b"HTTP_X_LATIN", b"caf\xe9")],
    ).json()
    expect = {
        "REQUEST_METHOD": ["str", "GET"],
        "SCRIPT_NAME": ["str", "/app"],
        "PATH_INFO": ["str", "/environ"],
        "QUERY_STRING": ["str", "a=1&b=2"],
        "REQUEST_URI": ["str", "/app/environ?a=1&b=2"],
        "SERVER_NAME": ["str", "localhost"],
        "SERVER_PORT": ["str", "8000"],
        "SERVER_PROTOCOL": ["str", "HTTP/1.1"],
        "REMOTE_ADDR": ["str", "127.0.0.1"],
        "REMOTE_PORT": ["str", "5555"],
        "HTTP_HOST": ["str", "example.org"],
        "CONTENT_TYPE": ["str", "text/plain"],
        "CONTENT_LENGTH": ["str", "0"],
        "HTTP_X_LATIN": ["str", "caf\u00e9"],
        "SCRIPT_FILENAME": ["str", str(worker.tmp / "apps.py")],
        "wsgi.version": ["tuple", [1, 0]],
        "wsgi.url_scheme": ["str", "http"],
        "wsgi.multithread": ["bool", True],
        "wsgi.multiprocess": ["bool", False],
        "wsgi.run_once": ["bool", False],
        "wsgi.input_terminated": ["bool", True],
        "mod_wsgi.process_group": ["str", GROUP],
        "mod_wsgi.application_group": ["str", ""],
        "mod_wsgi.request_start": ["float", 1700000000.25],
        "mod_wsgi.queue_start": ["float", 1700000000.5],
        "wsgi.input": ["Input", None],
        "wsgi.errors": ["ErrorsLog", None],
        "wsgi.file_wrapper": ["type", None],
    }
    for key, value in expect.items():
        assert env.get(key) == value, key
    assert "HTTPS" not in env
    assert env["_thread"] in ("oxwsgi-thread-0", "oxwsgi-thread-1")


def test_script_module_is_named_as_mod_wsgi_does(worker):
    import hashlib
    path = str(worker.tmp / "apps.py").encode()
    expect = "_mod_wsgi_" + hashlib.md5(path).hexdigest()
    assert worker.app("module_name").body.decode() == expect


def test_environ_is_fresh_per_request(worker):
    first = worker.app("environ").json()
    assert worker.app("mutate_environ").body == b"mutated"
    # Also when another thread mutated one (two mutations in flight at once).
    streams = [worker.open_app("mutate_environ") for _ in range(2)]
    assert [worker.read(s).body for s in streams] == [b"mutated"] * 2
    again = worker.app("environ").json()
    for key in ("REQUEST_METHOD", "SCRIPT_NAME", "wsgi.run_once"):
        assert again[key] == first[key], key
    assert "x.added" not in again
    # Fields that differ from the earlier requests' are the request's own.
    env = worker.request(
        mount=M_APPS, method=b"POST", script_name=b"/other", path=b"/environ",
        query=b"q=1", scheme=b"https").json()
    assert env["REQUEST_METHOD"] == ["str", "POST"]
    assert env["SCRIPT_NAME"] == ["str", "/other"]
    assert env["QUERY_STRING"] == ["str", "q=1"]
    assert env["wsgi.url_scheme"] == ["str", "https"]
    assert env["HTTPS"] == ["str", "on"]
    env = worker.app("environ").json()
    assert (env["REQUEST_METHOD"], env["SCRIPT_NAME"]) == (["str", "GET"], ["str", "/app"])
    assert env["wsgi.url_scheme"] == ["str", "http"] and "HTTPS" not in env


def test_environ_items_win_over_headers_of_the_same_name(worker):
    env = worker.app(
        "environ",
        headers=[(b"REQUEST_METHOD", b"EVIL"), (b"wsgi.input", b"x"),
                 (b"X_OTHER", b"kept"), (b"HTTP_SOMETHING_RARE", b"rare")],
    ).json()
    assert env["REQUEST_METHOD"] == ["str", "GET"]
    assert env["wsgi.input"] == ["Input", None]
    assert env["X_OTHER"] == ["str", "kept"]
    assert env["HTTP_SOMETHING_RARE"] == ["str", "rare"]


def test_environ_https_and_latin1_path(worker):
    env = worker.request(mount=M_APPS, path=b"/environ/caf\xe9", scheme=b"https").json()
    assert env["wsgi.url_scheme"] == ["str", "https"]
    assert env["HTTPS"] == ["str", "on"]
    assert env["PATH_INFO"] == ["str", "/environ/caf\u00e9"]
    assert env["_thread"] in ("oxwsgi-thread-0", "oxwsgi-thread-1")


def test_concurrent_streams_are_served_by_different_threads(worker):
    # Stream A keeps one thread; B and C, in flight meanwhile on the same
    # channel, are served by the other one.
    a = worker.open_app("hold", query=b"threads")
    b = worker.open_app("thread")
    other = worker.read(b).body.decode()
    c = worker.open_app("release", query=b"threads")
    assert worker.read(c).body == b"released"
    held, released = worker.read(a).json()
    assert released is True
    assert {held, other} == {"oxwsgi-thread-0", "oxwsgi-thread-1"}
    assert worker.ch.pending[a] == collections.deque()


def test_latin1_round_trip(worker):
    r = worker.request(mount=M_APPS, path=b"/latin1/\xff")
    assert r.body == b"/latin1/\xff"
    assert r.header("X-Name") == "caf\u00e9"


# --------------------------------------------------------------------------
# wsgi.input


def test_input_in_several_frames(worker):
    body = [b"ab", b"c-line one\nli", b"ne two\nthree\n", b"", b"four\nfive\nsix", b"-tail"]
    got = worker.app("input", method=b"POST", body=body).json()
    assert got == {
        "read3": "abc",
        "line": "-line one\n",
        "line_limited": "li",
        "lines": ["ne two\n"],
        "iter": ["three\n", "four\n", "five\n", "six-tail"],
        "rest": "",
        "after": "",
    }


def test_input_read_all_large(worker):
    # Three times the request window: the upload goes through only as the
    # daemon grants credit while the application reads.
    blocks = [bytes([i]) * 100_000 for i in range(30)]
    stream = worker.open_app("readall", method=b"POST", body=blocks)
    assert worker.ch.credits[stream] >= 3_000_000 - REQUEST_WINDOW
    assert worker.read(stream).body == b"ok:3000000"


def test_input_aborted_body_raises(worker):
    r = worker.app("readall", method=b"POST", body=[b"partial"], end_flags=ABORT_FLAG)
    assert r.body == b"OSError:request body incomplete"


def test_unread_body_is_drained(worker):
    r = worker.app("ignore", method=b"POST", body=[b"x" * 70000, b"y" * 70000])
    assert r.body == b"ignored"
    assert worker.app("hello").body == b"hello"


def test_unread_large_body_gets_no_credit_and_is_dropped(worker):
    # The application never reads: the daemon grants nothing, so the front
    # stops at the request window; the response ends and the front gives
    # up the rest of the body. The channel goes on serving.
    stream = worker.new_stream()
    sent = worker.ch.send_request(stream, request_head(stream, path=b"/ignore", method=b"POST"),
                                  [b"z" * (3 * MIB)])
    assert sent == REQUEST_WINDOW
    assert worker.ch.credits[stream] == 0
    assert worker.read(stream).body == b"ignored"
    # Body frames for the stream that come after its end are ignored.
    worker.ch.send(frame(REQUEST_BODY, stream, b"late") + request_end(stream))
    assert worker.app("hello").body == b"hello"


def test_unread_aborted_body_is_drained(worker):
    r = worker.app("ignore", method=b"POST", body=[b"x" * 10], end_flags=ABORT_FLAG)
    assert r.body == b"ignored"
    assert worker.app("hello").body == b"hello"


# --------------------------------------------------------------------------
# Responses


def test_list_response_has_length_and_one_write(worker):
    r = worker.app("hello")
    assert (r.status, r.headers, r.body, r.body_length) == (
        "200 OK", [("Content-Type", "text/plain")], b"hello", 5)
    assert r.frames[0] == RESPONSE_HEAD and r.frames[-1] == RESPONSE_END


def test_tuple_response_has_length(worker):
    r = worker.app("tuple")
    assert (r.body, r.body_length) == (b"abc", 3)


def test_write_callable(worker):
    r = worker.app("write")
    assert r.body == b"abbccc"
    assert r.body_length == BODY_LENGTH_UNKNOWN
    assert r.body_frames == [1, 2, 3]


def test_large_bodies_are_split_into_256_kib_frames(worker):
    # Each body item (17 MiB) becomes frames of at most 256 KiB, so the
    # front can forward the start while the worker still writes the rest.
    # (The fake front grants credit for each frame it reads.)
    r = worker.app("big")
    mib = 1024 * 1024
    assert r.body_frames == [256 * 1024] * (2 * 17 * 4)
    assert r.body == b"w" * (17 * mib) + b"x" * (17 * mib)


def test_response_waits_for_credit_without_holding_up_other_streams(worker):
    # Without credit the daemon sends exactly RESPONSE_WINDOW of body and
    # waits; meanwhile the other thread serves other streams on the channel.
    big = worker.open_app("big")
    r = worker.read(big, grant=False, until_body=RESPONSE_WINDOW)
    assert len(r.body) == RESPONSE_WINDOW
    for name in ("hello", "write", "tuple"):
        assert worker.app(name).status == "200 OK"
    assert worker.ch.pending[big] == collections.deque()  # nothing beyond the window
    # Credit in small grants: the daemon sends exactly as much as granted.
    worker.ch.send(credit(big, 1000))
    r = worker.read(big, grant=False, resp=r, until_body=RESPONSE_WINDOW + 1000)
    assert len(r.body) == RESPONSE_WINDOW + 1000
    assert worker.app("hello").body == b"hello"
    assert worker.ch.pending[big] == collections.deque()
    # Then all of it.
    worker.ch.send(credit(big, 34 * MIB))
    r = worker.read(big, grant=False, resp=r)
    assert r.frames[-1] == RESPONSE_END
    assert r.body == b"w" * (17 * MIB) + b"x" * (17 * MIB)


def test_list_response_beyond_the_window_waits_for_credit(worker):
    # 5 MiB in one list item: 4 MiB go out, the rest after credit.
    stream = worker.open_app("sized", query=str(5 * MIB).encode())
    r = worker.read(stream, grant=False, until_body=RESPONSE_WINDOW)
    assert worker.app("hello").body == b"hello"
    assert len(r.body) == RESPONSE_WINDOW and not r.ended
    worker.ch.send(credit(stream, MIB))
    r = worker.read(stream, grant=False, resp=r)
    assert (r.body_length, len(r.body), r.frames[-1]) == (5 * MIB, 5 * MIB, RESPONSE_END)


def test_generator_streams_and_is_closed(worker):
    r = worker.app("gen")
    assert (r.body, r.body_length, r.body_frames) == (b"onetwo", BODY_LENGTH_UNKNOWN, [3, 3])
    assert worker.app("closed").json() == ["closed"]


def test_list_subclass_is_sent_whole_and_closed(worker):
    # An exact list has no close() and is not looked up; a subclass may.
    r = worker.app("list_subclass")
    assert (r.body, r.body_length) == (b"ab", 2)
    assert worker.app("closed").json() == ["list closed"]


def test_empty_generator_sends_head_at_end(worker):
    r = worker.app("gen_empty")
    assert (r.status, r.body, r.body_length, r.frames) == (
        "204 No Content", b"", 0, [RESPONSE_HEAD, RESPONSE_END])
    assert worker.app("closed").json() == ["closed"]


def test_yielded_block_is_sent_at_once(worker):
    # Stream A streams "first" then waits for a gate that stream B (served
    # by the other thread meanwhile) opens: the head and the first block
    # must arrive before the generator resumes.
    a = worker.open_app("slow")
    r = worker.read(a, until_head=True)
    kind, payload, _ = worker.ch.next(a)
    assert (kind, payload) == (RESPONSE_BODY, b"first")
    assert worker.app("open_gate").body == b"opened"
    r = worker.read(a, resp=r)
    assert r.body == b"second" and r.frames[-1] == RESPONSE_END


def test_head_request_drops_body(worker):
    r = worker.app("hello", method=b"HEAD")
    assert (r.status, r.body, r.body_length, r.frames) == ("200 OK", b"", 5, [RESPONSE_HEAD, RESPONSE_END])
    r = worker.app("gen", method=b"HEAD")
    assert (r.body, r.frames) == (b"", [RESPONSE_HEAD, RESPONSE_END])
    assert worker.app("closed").json() == ["closed"]


def test_exception_aborts_and_process_keeps_serving(worker):
    r = worker.app("raise")
    assert r.status is None and r.abort == "RuntimeError: boom from the app"
    assert worker.app("hello").body == b"hello"
    log = worker.stderr()
    assert "Exception occurred processing WSGI application (mount '/app'" in log
    assert "raise RuntimeError(\"boom from the app\")" in log


def test_exception_after_head_aborts(worker):
    r = worker.app("raise_after")
    assert (r.status, r.body, r.abort) == ("200 OK", b"partial", "KeyError: 'late failure'")
    assert worker.app("hello").body == b"hello"


def test_generator_failure_still_closes(worker):
    r = worker.app("gen_fail")
    assert r.abort == "ValueError: generator failed"
    assert worker.app("closed").json() == ["closed"]


@pytest.mark.parametrize(
    "name, message",
    [
        ("str_body", "TypeError: the response iterable yielded str, expected bytes"),
        ("no_start", "RuntimeError: start_response() was not called before the response was sent"),
        ("bad_status", "ValueError: invalid status"),
        ("crlf", 'ValueError: response header "X-Bad" has a control character'),
        ("hop", 'ValueError: hop-by-hop header "Connection" is not allowed'),
        ("tuple_headers", "TypeError: response headers must be a list, not tuple"),
        ("twice", "RuntimeError: start_response() called a second time without exc_info"),
        ("exc_info_late", "ValueError: too late"),
        ("big_header", "ValueError: response headers too large"),
    ],
)
def test_invalid_responses_abort(worker, name, message):
    r = worker.app(name)
    assert r.abort is not None and r.abort.startswith(message), r
    assert worker.app("hello").body == b"hello"


HEAD_CASE_RESULTS = [
    "TypeError: status must be a str, not int",
    "ValueError: response status \"200 caf\u0100\" cannot be encoded as latin-1",
    "ValueError: invalid status \"20 OK\": must be a 3-digit code, a space and a reason phrase",
    "ValueError: invalid status \"200OK\": must be a 3-digit code, a space and a reason phrase",
    "ValueError: invalid status \"200 O\\nK\": must be a 3-digit code, a space and a reason phrase",
    "ValueError: invalid status \"200 OK\\u{7f}\": must be a 3-digit code, a space and a reason phrase",
    "UnicodeEncodeError: 'utf-8' codec can't encode character '\\ud800' in position 0: surrogates not allowed",
    "TypeError: response headers must be a list, not tuple",
    "TypeError: each response header must be a (name, value) tuple, not tuple",
    "TypeError: each response header must be a (name, value) tuple, not list",
    "TypeError: response header name must be a str, not bytes",
    "TypeError: response header value must be a str, not int",
    "ValueError: invalid response header name \"\"",
    "ValueError: invalid response header name \"X Y\"",
    "ValueError: invalid response header name \"X-\u00e9\"",
    "ValueError: hop-by-hop header \"Keep-Alive\" is not allowed in a WSGI response (PEP 3333)",
    "ValueError: hop-by-hop header \"tE\" is not allowed in a WSGI response (PEP 3333)",
    "ValueError: response header value \"caf\u0100\" cannot be encoded as latin-1",
    "ValueError: response header \"X\" has a control character (CR, LF, NUL, ...) in its value",
    "UnicodeEncodeError: 'utf-8' codec can't encode character '\\ud800' in position 0: surrogates not allowed",
    "UnicodeEncodeError: 'utf-8' codec can't encode character '\\ud800' in position 0: surrogates not allowed",
    "ValueError: response headers too large (17825823 bytes)",
]


@pytest.mark.parametrize("case", range(len(HEAD_CASE_RESULTS)))
def test_start_response_rejects(worker, case):
    r = worker.app("head_case", query=str(case).encode())
    assert (r.status, r.body.decode()) == ("200 OK", HEAD_CASE_RESULTS[case])


def test_start_response_accepts_latin1_and_tabs(worker):
    r = worker.app("head_case", query=str(len(HEAD_CASE_RESULTS)).encode())
    assert r.body == b"accepted"
    assert r.status == "299 caf\u00e9"
    assert r.headers == [("X-A", "a\tb"), ("X-B", "caf\u00e9"), ("X-C", ""), ("Accept-Ranges", "x")]
    r = worker.app("head_case", query=str(len(HEAD_CASE_RESULTS) + 1).encode())
    assert r.headers == [("X-D", "d")] * 3


def test_exc_info_replaces_pending_head(worker):
    r = worker.app("exc_info")
    assert (r.status, r.headers, r.body) == ("503 Busy", [("X-Second", "2")], b"replaced")


def test_wsgi_errors_lines(worker):
    assert worker.app("errors").body == b"logged"
    pid = worker.proc.pid
    lines = [l for l in worker.stderr().splitlines() if f"[pid {pid}] [group {GROUP}]" in l]
    messages = [l.split(f"[group {GROUP}] ", 1)[1] for l in lines if "] [error] " in l]
    for expected in ["first line", "second part", "third", "unterminatedvia print"]:
        assert expected in messages
    line = next(l for l in lines if l.endswith("] second part"))
    assert line.startswith("[") and "] [error] [pid " in line


@pytest.mark.parametrize("path, body", [
    (b"/list", b"l1\nl2\nl3"), (b"/gen", b"l1\nl2\nl3"), (b"/write", b"wx"), (b"/file", b"filedata"),
])
def test_wsgiref_validator_is_satisfied(worker, path, body):
    before = worker.stderr()
    r = worker.request(mount=M_VALIDATED, script_name=b"/v", path=path, method=b"POST",
                       headers=[(b"HTTP_HOST", b"h"), (b"CONTENT_LENGTH", b"9")],
                       body=[b"l1\nl", b"2\nl3"])
    assert (r.abort, r.status, r.body) == (None, "200 OK", body)
    log = worker.stderr()[len(before):]
    assert "validated" in log
    assert "Warning" not in log and "Traceback" not in log, log


# --------------------------------------------------------------------------
# wsgi.file_wrapper


def test_file_wrapper_fast_path(worker):
    """A regular file goes to the front as a descriptor (ResponseFile, from
    the file object's position: the app read 10 bytes), not as body frames."""
    data = worker.file.read_bytes()[10:]
    r = worker.app("file")
    assert r.status == "200 OK"
    assert r.body_length == len(data)
    assert r.frames == [RESPONSE_HEAD, RESPONSE_FILE, RESPONSE_END]
    assert r.files == [(10, len(data))]
    assert r.body == data


def test_file_wrapper_head(worker):
    r = worker.app("file", method=b"HEAD")
    assert (r.body_length, r.body, r.frames) == (
        worker.file.stat().st_size - 10, b"", [RESPONSE_HEAD, RESPONSE_END])


def test_file_wrapper_iterates_without_fileno(worker):
    r = worker.app("file_bytesio")
    assert r.body == b"x" * 10000 and r.body_frames == [3000, 3000, 3000, 1000]


def test_file_wrapper_close_closes_file(worker):
    assert worker.app("file_closed").body == b"abc"
    assert worker.app("closed").json() == ["file closed"]


# --------------------------------------------------------------------------
# Streams on one channel


def test_many_streams_in_flight_at_once(worker):
    # More requests than threads, opened at once on arbitrary stream ids
    # (up to the largest), read back in another order: each stream gets
    # its own response, whatever the interleaving on the wire.
    cases = {
        0xFFFF_FFFF: ("hello", b"", b"hello"),
        7: ("tuple", b"", b"abc"),
        3: ("write", b"", b"abbccc"),
        1000: ("gen", b"", b"onetwo"),
        42: ("latin1", b"", b"/latin1"),
        5: ("sized", b"300000", b"s" * 300000),
        6: ("readall", b"", b"ok:5"),
        8: ("hello", b"", b"hello"),
    }
    for stream, (name, query, _) in cases.items():
        body = [b"ab", b"cde"] if name == "readall" else None
        worker.open_app(name, stream=stream, query=query, body=body,
                        method=b"POST" if body else b"GET")
    for stream in sorted(cases, reverse=True):
        r = worker.read(stream)
        assert r.body == cases[stream][2], (stream, r)
    assert worker.app("closed").json() == ["closed"]


def test_stream_ids_are_reused_after_the_response_ended(worker):
    # (A request that reads its body comes only after a response whose end
    # was left to the thread's loop: right after an in-band end (abort,
    # large list), reuse is what the test below checks.)
    for _ in range(3):
        assert worker.app("raise", stream=1).abort == "RuntimeError: boom from the app"
        for name, expect in (("hello", b"hello"), ("gen", b"onetwo"), ("write", b"abbccc")):
            assert worker.app(name, stream=1).body == expect
        assert worker.app("readall", stream=1, method=b"POST", body=[b"x" * 70000]).body == b"ok:70000"
    assert worker.app("closed").json() == ["closed"] * 3


@pytest.mark.parametrize("ender", ["sized", "raise"])
def test_stream_id_reused_at_once_after_an_in_band_end(tmp_path, ender):
    # The response's last frame goes out from inside the request (not left
    # to the thread's loop); the front reuses the id as soon as it has it
    # and sends the new request's body once the request runs. A busy
    # thread (GIL contention, long switch interval) makes the old thread
    # slow to finish up after its last frame.
    w = Worker(tmp_path, threads=3, title=None)
    assert w.app("switch_interval", query=b"0.02").body == b"set"
    spin = w.open_app("spin", query=b"4")
    w.ch.sock.settimeout(3)
    try:
        for _ in range(40):
            r = w.app(ender, stream=1, query=b"100000")
            assert r.ended and (r.abort or len(r.body) == 100000)
            w.ch.send(request_head(1, path=b"/read_late", method=b"POST"))
            r = w.read(1, until_body=5)
            assert r.body == b"ready"
            w.ch.send(frame(REQUEST_BODY, 1, b"abc") + request_end(1))
            r = w.read(1, resp=r)
            assert r.body == b"readyok:3" and r.frames[-1] == RESPONSE_END
    finally:
        w.ch.sock.settimeout(TIMEOUT)
    assert w.read(spin).body == b"spun"
    assert w.close() == 0


def test_one_thread_serves_streams_in_fifo_order(tmp_path):
    w = Worker(tmp_path, threads=1, title=None)
    order = [9, 2, 7, 3, 11, 1]
    data = b"".join(request_head(s, path=b"/thread") + request_end(s) for s in order)
    w.ch.send(data)
    bodies = {s: w.read(s).body for s in order}
    assert set(bodies.values()) == {b"oxwsgi-thread-0"}
    ends = [stream for kind, stream, _ in w.ch.log if kind == RESPONSE_END]
    assert ends == order
    # Each response's frames came whole, one stream after the other.
    streams = [stream for kind, stream, _ in w.ch.log if kind != HELLO]
    assert streams == sorted(streams, key=order.index)
    assert w.close() == 0


def test_frames_for_unknown_streams_are_ignored(worker):
    # Body, end and credit for streams that were never opened (or already
    # ended) are dropped; the channel goes on.
    ghost = 0x7FFF_0000
    worker.ch.send(frame(REQUEST_BODY, ghost, b"body") + request_end(ghost, ABORT_FLAG)
                   + credit(ghost, 100) + frame(REQUEST_BODY, ghost + 1, b""))
    assert worker.app("hello").body == b"hello"


# --------------------------------------------------------------------------
# Ending


def test_eof_exits_zero(worker):
    assert worker.close() == 0


def test_eof_finishes_in_flight_and_queued_requests(tmp_path):
    # The front stops sending (shuts its side down) with two requests being
    # served and more queued: the daemon still answers every one, then
    # exits 0.
    w = Worker(tmp_path, threads=2, title=None)
    streams = [w.open_app("sleep", query=b"0.3"), w.open_app("sleep", query=b"0.3"),
               w.open_app("hello"), w.open_app("write"), w.open_app("gen")]
    w.ch.sock.shutdown(socket.SHUT_WR)
    # No credit can be sent any more (and none is needed).
    bodies = [w.read(s, grant=False).body for s in streams]
    assert bodies == [b"slept", b"slept", b"hello", b"abbccc", b"onetwo"], w.stderr()
    w.ch.read_eof()
    assert w.wait() == 0, w.stderr()


PROTOCOL_ERRORS = {
    "unknown kind": lambda s: frame(0x7F, s, b"x"),
    "head on stream 0": lambda s: request_head(0),
    "head on an open stream": lambda s: request_head(s),
    "response frame from the front": lambda s: frame(RESPONSE_END, s),
    "request end with two bytes": lambda s: frame(REQUEST_END, s, b"\x00\x00"),
    "short credit": lambda s: frame(CREDIT, s, b"\x01"),
    "oversized frame": lambda s: HEADER.pack(REQUEST_BODY, s, 16 * MIB + 1),
}


@pytest.mark.parametrize("case", list(PROTOCOL_ERRORS))
def test_protocol_error_closes_the_channel(tmp_path, case):
    # A request is in flight on stream 1 when the bad frame comes: the
    # daemon logs the error and closes the channel; its threads finish and
    # the process exits 1.
    w = Worker(tmp_path, threads=2, title=None)
    stream = w.open_app("sleep", query=b"0.2")
    w.ch.send(PROTOCOL_ERRORS[case](stream))
    w.ch.read_eof()
    assert w.wait() == 1
    log = w.stderr()
    assert "channel to the front: " in log, log



def test_named_application_group_runs_in_a_sub_interpreter(tmp_path):
    mounts = [{"path": "/x", "script": str(tmp_path / "apps.py"), "module": None,
               "callable": "application", "application_group": "named"}]
    w = Worker(tmp_path, threads=1, title=None, config={"mounts": mounts})
    env = w.request(mount=0, path=b"/environ").json()
    assert env["mod_wsgi.application_group"] == ["str", "named"]
    assert env["wsgi.multithread"] == ["bool", False]
    # The sub-interpreter's own request objects, not the PyO3 classes.
    assert env["wsgi.input"] == ["Input", None]
    assert env["wsgi.errors"] == ["ErrorsLog", None]
    assert env["wsgi.file_wrapper"] == ["type", None]
    body = b"abc\ndef\nghi\nrest"
    got = w.request(mount=0, path=b"/input", body=[body[:5], body[5:]]).json()
    assert got["read3"] == "abc" and got["rest"] == "" and got["iter"], got
    assert w.close() == 0
    assert "created sub-interpreter for application group 'named'" in w.stderr()
