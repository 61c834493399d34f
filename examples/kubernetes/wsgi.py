"""The application the Kubernetes example ships (docs/kubernetes.md).

The Containerfile copies this folder to /srv/app in the image; the site
config (site.toml here, the ConfigMap in deploy/kubernetes/) mounts it at
"/". Replace the folder with your own application: its requirements.txt is
installed in a layer of its own, before the code is copied.

    GET /            -> "Hello from POD (pid PID)"
    GET /sleep?S     -> the same after S seconds (to see the drain, or
                        oxwsgi_busy_threads move)
"""

import os
import socket
import time


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/sleep":
        try:
            time.sleep(min(float(environ.get("QUERY_STRING") or 1), 30.0))
        except ValueError:
            start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"/sleep?SECONDS\n"]
    body = f"Hello from {socket.gethostname()} (pid {os.getpid()})\n".encode()
    start_response(
        "200 OK",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]
