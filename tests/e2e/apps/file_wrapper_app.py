"""wsgi.file_wrapper cases for tests/e2e/test_file_wrapper.py.

  GET /file?path=P&skip=N&how=read|seek   file_wrapper over P after the app
                                          read (or seeked past) N bytes, with
                                          Content-Length = size - N (and with
                                          &drain=1 after reading wsgi.input)
  GET /shrink?path=P                      file_wrapper over P whose close()
                                          truncates P to 1000 bytes
  GET /close-raises?path=P                file_wrapper over P whose close()
                                          raises after closing the file
  GET /hello                              [b"hello"]
"""

import io
import os
from urllib.parse import parse_qs


class Shrinking(io.FileIO):
    """A file that shrinks when the server closes it."""

    def close(self):
        if not self.closed:
            os.truncate(self.name, 1000)
        super().close()


class RaisingOnClose(io.FileIO):
    """A file whose close() fails (after it did close)."""

    def close(self):
        super().close()
        raise RuntimeError("close() failing on purpose")


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}

    if path == "/file":
        if q.get("drain"):
            environ["wsgi.input"].read()
        f = open(q["path"], "rb")
        skip = int(q.get("skip", "0"))
        if q.get("how") == "seek":
            f.seek(skip)
        elif skip:
            f.read(skip)  # buffered: the descriptor's offset is further on
        size = os.fstat(f.fileno()).st_size
        length = max(size - skip, 0)
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(length))])
        return environ["wsgi.file_wrapper"](f, 65536)

    if path == "/shrink":
        f = Shrinking(q["path"], "rb")
        size = os.fstat(f.fileno()).st_size
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])
        return environ["wsgi.file_wrapper"](f, 65536)

    if path == "/close-raises":
        f = RaisingOnClose(q["path"], "rb")
        size = os.fstat(f.fileno()).st_size
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])
        return environ["wsgi.file_wrapper"](f, 65536)

    if path == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]
