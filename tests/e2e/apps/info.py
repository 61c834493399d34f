"""Environ dump app: answers JSON describing the request as the app saw it.

Control headers (so the path and query string stay free for the tests):
  X-Sleep: seconds      sleep before answering (keeps a thread busy); logs
                        "info: sleeping S token=<X-Token>" to wsgi.errors first
  X-Exit: code          os._exit(code) in the middle of the request
The body is always read to the end (wsgi.input_terminated) and summarised.
"""

import base64
import hashlib
import json
import os
import sys
import threading
import time

NAME = os.path.splitext(os.path.basename(__file__))[0]


def jsonable(v):
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    if isinstance(v, (tuple, list)):
        return [jsonable(x) for x in v]
    return repr(v)


def describe(environ):
    inp = environ.get("wsgi.input")
    err = environ.get("wsgi.errors")
    return {
        "environ": {k: jsonable(v) for k, v in environ.items()},
        "types": {k: type(v).__name__ for k, v in environ.items()},
        "key_types": sorted({type(k).__name__ for k in environ}),
        "input_methods": [m for m in ("read", "readline", "readlines", "__iter__") if hasattr(inp, m)],
        "errors_methods": [m for m in ("write", "writelines", "flush") if hasattr(err, m)],
        "file_wrapper_callable": callable(environ.get("wsgi.file_wrapper")),
    }


def application(environ, start_response):
    sleep = environ.get("HTTP_X_SLEEP")
    if sleep:
        err = environ["wsgi.errors"]
        err.write(f"info: sleeping {sleep} token={environ.get('HTTP_X_TOKEN', '-')}\n")
        err.flush()
        time.sleep(float(sleep))
    code = environ.get("HTTP_X_EXIT")
    if code:
        os._exit(int(code))
    body = b""
    inp = environ["wsgi.input"]
    while True:
        chunk = inp.read(65536)
        if not chunk:
            break
        body += chunk
    out = describe(environ)
    out.update(
        {
            "app": NAME,
            "file": __file__,
            "pid": os.getpid(),
            "thread": threading.get_ident(),
            # Of the thread serving the request (Linux: per thread).
            "sched_policy": os.sched_getscheduler(0),
            "nice": os.getpriority(os.PRIO_PROCESS, 0),
            "time": time.time(),
            "sys_prefix": sys.prefix,
            "executable": sys.executable,
            "body_len": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_b64": base64.b64encode(body[:65536]).decode("ascii"),
        }
    )
    data = json.dumps(out).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
