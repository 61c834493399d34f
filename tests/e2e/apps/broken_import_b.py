"""A WSGI script that fails when imported (a missing dependency)."""

import e2e_other_missing_module  # noqa: F401


def application(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b"unreachable"]
