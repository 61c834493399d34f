"""Misbehaving applications (DESIGN §7), by PATH_INFO:

  /ok                 200 "ok <pid>"
  /raise              raises before start_response                  -> 500
  /raise-in-first     start_response, then the iterable raises before
                      its first item                                 -> 500
  /raise-after        generator: yields b"partial", waits, raises    -> connection closed
  /raise-after-cl     the same with Content-Length: 100              -> connection closed
  /bad-status-crlf    status with CR LF in it                        -> 500
  /bad-status-type    status is an int                               -> 500
  /bad-header-crlf    header value with CR LF (header injection)     -> 500
  /bad-header-name    header name with CR LF                         -> 500
  /bad-header-type    header value is an int                         -> 500
  /no-start-response  returns a body without calling start_response  -> 500
  /str-body           yields str instead of bytes                    -> 500
  /exit               os._exit(1) in the middle of the request       -> 502
  /slow               logs the marker to wsgi.errors, sleeps 0.5 s, then
                      answers 200 "slow <pid>"
Each error message carries the marker "e2e-marker" and the path.
"""

import os
import time


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    marker = f"e2e-marker {path} {environ.get('QUERY_STRING', '')}"

    if path == "/ok":
        body = f"ok {os.getpid()}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    if path == "/slow":
        environ["wsgi.errors"].write(marker + "\n")
        environ["wsgi.errors"].flush()
        time.sleep(0.5)
        body = f"slow {os.getpid()}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    if path == "/raise":
        raise ValueError(marker)

    if path == "/raise-in-first":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def gen():
            raise RuntimeError(marker)
            yield b"never"  # noqa: unreachable - makes this a generator

        return gen()

    if path in ("/raise-after", "/raise-after-cl"):
        headers = [("Content-Type", "text/plain")]
        if path.endswith("-cl"):
            headers.append(("Content-Length", "100"))
        start_response("200 OK", headers)

        def gen():
            yield b"partial"
            time.sleep(0.5)  # the front has forwarded the head by now
            raise RuntimeError(marker)

        return gen()

    if path == "/bad-status-crlf":
        start_response("200 OK\r\nX-Evil: 1", [("Content-Type", "text/plain")])
        return [b"bad status"]

    if path == "/bad-status-type":
        start_response(200, [("Content-Type", "text/plain")])
        return [b"bad status type"]

    if path == "/bad-header-crlf":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Test", "a\r\nX-Injected: 1")])
        return [b"bad header"]

    if path == "/bad-header-name":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Test\r\nX-Injected", "1")])
        return [b"bad header name"]

    if path == "/bad-header-type":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Test", 5)])
        return [b"bad header type"]

    if path == "/no-start-response":
        return [b"no start_response"]

    if path == "/str-body":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["not bytes"]

    if path == "/exit":
        environ["wsgi.errors"].write(f"{marker}: exiting\n")
        environ["wsgi.errors"].flush()
        os._exit(1)

    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]
