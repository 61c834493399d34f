"""Request and response bodies: uploads, downloads, wsgi.input operations,
response framing. Routes by PATH_INFO:

  POST /upload                 read wsgi.input to EOF -> {"len", "sha256", "content_length"}
  GET  /download/gen?size=N    N bytes from a generator of 64 KiB chunks, no Content-Length
  GET  /download/gen-cl?size=N the same with Content-Length
  GET  /download/file?path=P   wsgi.file_wrapper over file P, with Content-Length
  POST /input?OPS              apply the operations OPS (JSON, URL-encoded) to wsgi.input
  GET  /frame/list1            [b"hello"]            (no Content-Length from the app)
  GET  /frame/list2            [b"hel", b"lo"]       (no Content-Length from the app)
  GET  /frame/gen              generator of 3 chunks (no Content-Length)
  GET  /frame/slow-gen         the same, 0.3 s between chunks
  GET  /frame/empty-gen        generator of nothing
  GET  /echo/<anything>        PATH_INFO and REMOTE_PORT as text
"""

import hashlib
import json
import os
import struct
import time
from urllib.parse import parse_qs, unquote

CHUNK = 65536
PATTERN = bytes(range(256)) * (CHUNK // 256)


def chunk(i, size=CHUNK):
    """Chunk i of the download stream: its index, then a fixed pattern."""
    return (struct.pack(">Q", i) + PATTERN[8:])[:size]


def stream(total):
    i = 0
    sent = 0
    while sent < total:
        c = chunk(i, min(CHUNK, total - sent))
        yield c
        sent += len(c)
        i += 1


def _json(start_response, obj, status="200 OK"):
    data = json.dumps(obj).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _digest(b):
    return {"len": len(b), "sha256": hashlib.sha256(b).hexdigest(), "head": b[:40].decode("latin-1")}


def apply_ops(inp, ops):
    out = []
    for op in ops:
        name, args = op[0], op[1:]
        if name == "iter":
            out.append([_digest(line) for line in inp])
        elif name == "readlines":
            out.append([_digest(line) for line in inp.readlines(*args)])
        else:
            out.append(_digest(getattr(inp, name)(*args)))
    return out


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    qs = environ.get("QUERY_STRING", "")
    q = {k: v[0] for k, v in parse_qs(qs).items()}
    inp = environ["wsgi.input"]

    if path == "/upload":
        h = hashlib.sha256()
        n = 0
        while True:
            c = inp.read(CHUNK)
            if not c:
                break
            h.update(c)
            n += len(c)
        return _json(start_response, {"len": n, "sha256": h.hexdigest(), "content_length": environ.get("CONTENT_LENGTH")})

    if path == "/download/gen":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return stream(int(q["size"]))

    if path == "/download/gen-cl":
        size = int(q["size"])
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])
        return stream(size)

    if path == "/download/file":
        f = open(q["path"], "rb")
        size = os.fstat(f.fileno()).st_size
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])
        return environ["wsgi.file_wrapper"](f, CHUNK)

    if path == "/input":
        ops = json.loads(unquote(qs))
        return _json(start_response, apply_ops(inp, ops))

    if path == "/frame/list1":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    if path == "/frame/list2":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hel", b"lo"]

    if path == "/frame/gen":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (c for c in (b"one,", b"two,", b"three"))

    if path == "/frame/slow-gen":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def slow():
            yield b"one,"
            time.sleep(0.3)  # the head must go out before the body is complete
            yield b"two,"
            time.sleep(0.3)
            yield b"three"

        return slow()

    if path == "/frame/empty-gen":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (c for c in ())

    if path.startswith("/echo/"):
        body = f"{path} {environ.get('REMOTE_PORT')} {inp.read()!r}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]
