"""Application two of the two-apps example: answers JSON describing where the
request ran (stdlib only)."""

import json
import os

NAME = "two"


def application(environ, start_response):
    body = json.dumps(
        {
            "app": NAME,
            "pid": os.getpid(),
            "process_group": environ.get("mod_wsgi.process_group"),
            "application_group": environ.get("mod_wsgi.application_group"),
            "script_name": environ.get("SCRIPT_NAME"),
            "path_info": environ.get("PATH_INFO"),
        },
        indent=2,
    ).encode("utf-8") + b"\n"
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
