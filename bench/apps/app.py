"""The benchmark's stdlib-only WSGI application (every server loads this file).

Routes (PATH_INFO):
  /hello   13-byte body "Hello, World!"
  /big     1 MiB response from a bytes object built at import
  /file    1 MiB response through wsgi.file_wrapper over a real file
           (bench/apps/data-1mib.bin, created by bench/bench.py)
  /upload  reads the whole request body (POST, 1 MiB from wrk's lua script)
           and answers with the number of bytes read
Anything else answers like /hello, so "/" works as a readiness probe.

Stdlib only and compatible with Debian's mod_wsgi Python (3.11).
"""

import os

HELLO = b"Hello, World!"  # 13 bytes
BIG = b"x" * (1024 * 1024)
FILE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data-1mib.bin")
TEXT = [("Content-Type", "text/plain")]


def hello(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "13")])
    return [HELLO]


def big(environ, start_response):
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BIG)))],
    )
    return [BIG]


def file_(environ, start_response):
    f = open(FILE_PATH, "rb")
    size = os.fstat(f.fileno()).st_size
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))],
    )
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        return wrapper(f, 65536)
    return iter(lambda: f.read(65536), b"")


def upload(environ, start_response):
    stream = environ["wsgi.input"]
    try:
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        remaining = 0
    total = 0
    while remaining > 0:
        chunk = stream.read(min(remaining, 65536))
        if not chunk:
            break
        total += len(chunk)
        remaining -= len(chunk)
    body = str(total).encode("ascii")
    start_response("200 OK", TEXT + [("Content-Length", str(len(body)))])
    return [body]


ROUTES = {"/hello": hello, "/big": big, "/file": file_, "/upload": upload}


def application(environ, start_response):
    return ROUTES.get(environ.get("PATH_INFO", ""), hello)(environ, start_response)


app = application
