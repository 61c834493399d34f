"""A small raw HTTP/1.x client for the end-to-end tests.

The tests need to see exactly what goes over the wire (framing, pipelining,
half-close, interim 100 responses, connections closed mid-body), which
higher-level clients hide. Everything here talks to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field


class ConnectionClosed(Exception):
    """The peer closed (or reset) the connection before a complete message."""


class Timeout(Exception):
    """No data within the allowed time."""


@dataclass
class Response:
    status: int
    reason: str
    version: str
    headers: list  # [(name, value)] as received (latin-1 str)
    body: bytes = b""
    framing: str = "none"  # "length" | "chunked" | "close" | "none"
    complete: bool = True  # False: the connection ended inside the body
    interim: list = field(default_factory=list)  # 1xx responses before this one

    def header(self, name: str, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name: str) -> list:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):  # short, for assertion messages
        b = self.body if len(self.body) < 300 else self.body[:300] + b"..."
        return (
            f"<Response {self.status} {self.reason!r} {self.version} framing={self.framing} "
            f"complete={self.complete} headers={self.headers!r} body={b!r}>"
        )


class Conn:
    """One TCP connection with a receive buffer."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.timeout = timeout

    # -- context manager -------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    @property
    def local_port(self) -> int:
        return self.sock.getsockname()[1]

    # -- sending ---------------------------------------------------------
    def send(self, data: bytes):
        self.sock.sendall(data)

    def send_pieces(self, data: bytes, sizes):
        """Write data in pieces of the given sizes (cycled)."""
        i = 0
        k = 0
        sizes = list(sizes)
        while i < len(data):
            n = sizes[k % len(sizes)]
            self.sock.sendall(data[i : i + n])
            i += n
            k += 1

    def shutdown_write(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    # -- receiving -------------------------------------------------------
    def _fill(self, deadline: float | None) -> bool:
        """Read more bytes into the buffer. False at EOF."""
        if self.eof:
            return False
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout("timed out waiting for data")
            self.sock.settimeout(remaining)
        else:
            self.sock.settimeout(self.timeout)
        try:
            data = self.sock.recv(262144)
        except socket.timeout:
            raise Timeout("timed out waiting for data") from None
        except (ConnectionResetError, BrokenPipeError):
            self.eof = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_line(self, deadline=None, limit=1 << 20) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            if len(self.buf) > limit:
                raise ValueError("line too long")
            if not self._fill(deadline):
                raise ConnectionClosed("EOF while reading a line (%r)" % bytes(self.buf[:200]))

    def read_exact(self, n: int, deadline=None) -> bytes:
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise ConnectionClosed(f"EOF after {len(self.buf)} of {n} bytes")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_until_close(self, deadline=None) -> bytes:
        while self._fill(deadline):
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """True if the peer closes within timeout (any unread bytes are kept)."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
        except Timeout:
            return False
        return True

    def has_pending(self, wait: float = 0.0) -> bool:
        """True if bytes are buffered or arrive within wait seconds."""
        if self.buf:
            return True
        if self.eof:
            return False
        try:
            self._fill(time.monotonic() + wait)
        except Timeout:
            return False
        return bool(self.buf)

    def read_head(self, deadline=None):
        status_line = self.read_line(deadline)
        while status_line in (b"\r\n", b"\n"):  # tolerate stray CRLF
            status_line = self.read_line(deadline)
        parts = status_line.rstrip(b"\r\n").split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ValueError(f"bad status line {status_line!r}")
        version = parts[0].decode("latin-1")
        status = int(parts[1])
        reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
        headers = []
        while True:
            line = self.read_line(deadline)
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.rstrip(b"\r\n").partition(b":")
            headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        return version, status, reason, headers

    def read_response(self, method: str = "GET", timeout: float | None = None, keep_interim=True) -> Response:
        """Read one response (skipping 1xx interim ones, which are attached)."""
        deadline = time.monotonic() + timeout if timeout else None
        interim = []
        while True:
            version, status, reason, headers = self.read_head(deadline)
            if 100 <= status < 200 and status != 101:
                interim.append(Response(status, reason, version, headers))
                continue
            break
        resp = Response(status, reason, version, headers, interim=interim if keep_interim else [])
        te = ",".join(resp.header_all("transfer-encoding")).lower()
        cl = resp.header("content-length")
        if method == "HEAD" or status in (204, 304):
            resp.framing = "none"
            return resp
        body = bytearray()
        try:
            if "chunked" in te:
                resp.framing = "chunked"
                while True:
                    size_line = self.read_line(deadline)
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        # trailer section
                        while self.read_line(deadline) not in (b"\r\n", b"\n"):
                            pass
                        break
                    body += self.read_exact(size, deadline)
                    self.read_exact(2, deadline)
                resp.body = bytes(body)
            elif cl is not None:
                resp.framing = "length"
                resp.body = self.read_exact(int(cl), deadline)
            else:
                resp.framing = "close"
                resp.body = self.read_until_close(deadline)
        except ConnectionClosed:
            # The connection ended inside the body: keep what was decoded
            # (chunked) plus the undecoded rest.
            resp.complete = False
            resp.body = bytes(body) + bytes(self.buf)
            self.buf.clear()
        return resp


def build_request(
    method: str,
    target: str,
    headers=None,
    body: bytes = b"",
    version: str = "HTTP/1.1",
    host: str | None = "127.0.0.1",
    content_length: bool = True,
) -> bytes:
    """Serialize a request. headers: list of (name, value) (str or bytes)."""
    lines = [f"{method} {target} {version}".encode("latin-1")]
    hdrs = list(headers or [])
    names = {(k.decode("latin-1") if isinstance(k, bytes) else k).lower() for k, _ in hdrs}
    if host is not None and "host" not in names:
        hdrs.insert(0, ("Host", host))
    if body and content_length and "content-length" not in names and "transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(body))))
    for k, v in hdrs:
        k = k if isinstance(k, bytes) else k.encode("latin-1")
        v = v if isinstance(v, bytes) else v.encode("latin-1")
        lines.append(k + b": " + v)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def request(port: int, method: str, target: str, headers=None, body: bytes = b"", version="HTTP/1.1", timeout=30.0, **kw) -> Response:
    """One request on a fresh connection (Connection: close)."""
    hdrs = list(headers or [])
    if not any((k if isinstance(k, str) else k.decode()).lower() == "connection" for k, _ in hdrs):
        hdrs.append(("Connection", "close"))
    with Conn(port, timeout=timeout) as c:
        c.send(build_request(method, target, hdrs, body, version, **kw))
        return c.read_response(method, timeout=timeout)


def get(port: int, target: str, **kw) -> Response:
    return request(port, "GET", target, **kw)


def chunked(data: bytes, size: int = 65536) -> bytes:
    out = bytearray()
    for i in range(0, len(data), size):
        piece = data[i : i + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    out += b"0\r\n\r\n"
    return bytes(out)
