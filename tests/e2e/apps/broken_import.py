"""A WSGI script that fails when imported (a missing dependency)."""

import e2e_module_that_does_not_exist  # noqa: F401


def application(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b"unreachable"]
