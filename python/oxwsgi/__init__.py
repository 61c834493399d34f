"""oxwsgi: host Python WSGI applications in daemon process groups.

The server itself is a Rust program; this package ships it as
``oxwsgi/bin/oxwsgi`` together with the worker extension
``oxwsgi._oxwsgi_worker`` that daemon processes load. The ``oxwsgi`` command
(and ``python -m oxwsgi``) is :func:`oxwsgi._cli.main`, which execs the
bundled binary. Importing this package does not load the extension.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
