"""Apps wrapped in wsgiref.validate.validator, one per PATH_INFO.

The validator checks the server's side of PEP 3333 too: environ keys and
types, start_response arguments, wsgi.input / wsgi.errors behaviour, that
the server calls close() on the iterable and never iterates it after that
(an unclosed iterable is reported from __del__ as an AssertionError on
stderr). Every WSGIWarning is printed (filter "always") so the test can look
for them in the server's error log.
"""

import hashlib
import json
import os
import warnings
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("always", WSGIWarning)

DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "file_wrapper.txt")


def _len(body):
    return [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]


def list_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"list-", b"response"]


def gen_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        for i in range(5):
            yield b"chunk%d;" % i

    return gen()


def write_app(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written-")
    write(b"then-")
    return [b"returned"]


def file_app(environ, start_response):
    f = open(DATA_FILE, "rb")
    size = os.fstat(f.fileno()).st_size
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](f, 4096)


def input_app(environ, start_response):
    inp = environ["wsgi.input"]
    first_line = inp.readline()  # validator: readline() with no argument
    limited = inp.readline(4)  # at most 4 bytes
    part = inp.read(3)  # validator requires read(size)
    rest = b""
    while True:
        c = inp.read(1000)
        if not c:
            break
        rest += c
    body = json.dumps(
        {
            "first_line": first_line.decode("latin-1"),
            "limited": limited.decode("latin-1"),
            "part": part.decode("latin-1"),
            "rest_sha256": hashlib.sha256(rest).hexdigest(),
            "rest_len": len(rest),
        }
    ).encode()
    start_response("200 OK", _len(body))
    return [body]


def lines_app(environ, start_response):
    inp = environ["wsgi.input"]
    if environ.get("QUERY_STRING") == "iter":
        lines = [line for line in inp]
    else:
        lines = inp.readlines()
    body = json.dumps([x.decode("latin-1") for x in lines]).encode()
    start_response("200 OK", _len(body))
    return [body]


def errors_app(environ, start_response):
    err = environ["wsgi.errors"]
    err.write("validated: a line for wsgi.errors\n")
    err.writelines(["validated: writelines 1\n", "validated: writelines 2\n"])
    err.flush()
    body = b"logged"
    start_response("200 OK", _len(body))
    return [body]


def status_app(environ, start_response):
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Extra", "yes"), ("Content-Length", "7")])
    return [b"created"]


def empty_app(environ, start_response):
    start_response("204 No Content", [])
    return []


ROUTES = {
    "/list": list_app,
    "/gen": gen_app,
    "/write": write_app,
    "/file": file_app,
    "/input": input_app,
    "/lines": lines_app,
    "/errors": errors_app,
    "/status": status_app,
    "/empty": empty_app,
}
VALIDATED = {k: validator(v) for k, v in ROUTES.items()}


def application(environ, start_response):
    app = VALIDATED.get(environ.get("PATH_INFO", ""))
    if app is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such validated app"]
    return app(environ, start_response)
