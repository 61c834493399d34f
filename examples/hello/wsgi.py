"""The smallest oxwsgi application.

    oxwsgi serve examples/hello/wsgi.py
    curl http://127.0.0.1:8000/      # -> "Hello, world!" plus a newline (14 bytes)

oxwsgi loads a WSGI script file the way mod_wsgi does: it runs the file and
serves the module-level callable named ``application``.
"""

BODY = b"Hello, world!\n"  # 13 characters of text + "\n" = 14 bytes


def application(environ, start_response):
    start_response(
        "200 OK",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(BODY)))],
    )
    return [BODY]
