"""numpy in the main interpreter (%{GLOBAL}): reports numpy's version and a
small computation, the interpreter the app runs in, and the process."""

import json
import os
import sys

import numpy  # in a sub-interpreter numpy warns "...imported from a Python sub-interpreter..."

_M = numpy.arange(12, dtype=numpy.int64).reshape(3, 4)


def application(environ, start_response):
    result = {
        "numpy": numpy.__version__,
        "sum": int(_M.sum()),
        "matmul": (_M @ _M.T).tolist(),
        "mean": float(numpy.linspace(0.0, 1.0, 5).mean()),
        "pid": os.getpid(),
        "process_group": environ.get("mod_wsgi.process_group"),
        "application_group": environ.get("mod_wsgi.application_group"),
        "python": sys.version,
    }
    data = json.dumps(result).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
