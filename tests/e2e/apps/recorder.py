"""Recording app for the HTTP corpus test (tests/e2e/test_http_corpus.py).

Every call is recorded (in this process's memory) with what the app saw:
method, REQUEST_URI, PATH_INFO, QUERY_STRING, SERVER_PROTOCOL, CONTENT_TYPE,
CONTENT_LENGTH, every HTTP_* key, and the whole body read from wsgi.input
(base64), and the record is also the JSON response body.

Two control paths are answered without being recorded:
  /__calls__?since=N   {"pid", "count", "records": records[N:]}
  /__health__          "ok"
The daemon group must have exactly one process (the record is per process).
"""

import base64
import json
import os
import threading

_lock = threading.Lock()
_records = []


def _respond(start_response, obj, status="200 OK"):
    data = json.dumps(obj).encode("utf-8")
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/__health__":
        return _respond(start_response, "ok")
    if path == "/__calls__":
        since = 0
        q = environ.get("QUERY_STRING", "")
        if q.startswith("since="):
            since = int(q[6:])
        with _lock:
            return _respond(
                start_response,
                {"pid": os.getpid(), "count": len(_records), "records": _records[since:]},
            )
    body_error = None
    chunks = []
    try:
        inp = environ["wsgi.input"]
        while True:
            c = inp.read(8192)
            if not c:
                break
            chunks.append(c)
    except Exception as e:  # a body that fails while read is recorded as such
        body_error = f"{type(e).__name__}: {e}"
    body = b"".join(chunks)
    rec = {
        "pid": os.getpid(),
        "method": environ.get("REQUEST_METHOD"),
        "request_uri": environ.get("REQUEST_URI"),
        "script_name": environ.get("SCRIPT_NAME"),
        "path_info": environ.get("PATH_INFO"),
        "query_string": environ.get("QUERY_STRING"),
        "protocol": environ.get("SERVER_PROTOCOL"),
        "content_type": environ.get("CONTENT_TYPE"),
        "content_length": environ.get("CONTENT_LENGTH"),
        "http": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
        "body_b64": base64.b64encode(body).decode("ascii"),
        "body_error": body_error,
    }
    with _lock:
        rec["seq"] = len(_records)
        _records.append(rec)
    if body_error:
        return _respond(start_response, rec, "400 Bad Request")
    return _respond(start_response, rec)
