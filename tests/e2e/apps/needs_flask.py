"""Imports Flask at module level: works only in an interpreter that has it.
Reports where Flask and the interpreter come from."""

import json
import os
import sys

import flask


def application(environ, start_response):
    data = json.dumps(
        {
            "flask_file": flask.__file__,
            "sys_prefix": sys.prefix,
            "executable": sys.executable,
            "pid": os.getpid(),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
