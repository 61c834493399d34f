"""The ``oxwsgi`` console script: exec the bundled front binary.

The wheel lays out::

    oxwsgi/
        __init__.py, __main__.py, _cli.py, _bootstrap.py
        _oxwsgi_worker.abi3.so   the worker extension (PyO3, stable ABI)
        bin/oxwsgi               the front binary (pure Rust, no libpython)

:func:`main` sets, for the front:

* ``OXWSGI_PYTHON`` -- the default Python for daemon processes -- to
  ``sys.executable`` (the interpreter oxwsgi was installed into and is
  running under, a virtualenv's ``bin/python`` unresolved, so daemons see
  that virtualenv), unless already set;
* ``OXWSGI_WORKER_LIB`` to this installation's worker extension, always, so
  a front never drives a worker from another installation or version;

then replaces the Python process with the binary (``os.execv``), keeping the
arguments, so the PID, signals and exit status are the binary's own.
"""

import importlib.machinery
import importlib.util
import os
import sys

PYTHON_ENV = "OXWSGI_PYTHON"
WORKER_LIB_ENV = "OXWSGI_WORKER_LIB"
WORKER_MODULE = "_oxwsgi_worker"

# Exit status for "runtime failure to start" (DESIGN.md, command line).
EXIT_START_FAILURE = 2

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def binary_path():
    """Path of the bundled front binary (it may not exist in a bare checkout)."""
    name = "oxwsgi.exe" if os.name == "nt" else "oxwsgi"
    return os.path.join(_PACKAGE_DIR, "bin", name)


def worker_library_path():
    """Path of the installed worker extension, without importing it, or None."""
    try:
        spec = importlib.util.find_spec("oxwsgi." + WORKER_MODULE)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin and os.path.isfile(spec.origin):
        return os.path.abspath(spec.origin)
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = os.path.join(_PACKAGE_DIR, WORKER_MODULE + suffix)
        if os.path.isfile(candidate):
            return candidate
    return None


def prepare_environ(environ=None):
    """Set the variables the front reads; return the mapping (os.environ by default)."""
    if environ is None:
        environ = os.environ
    if not environ.get(PYTHON_ENV) and sys.executable:
        environ[PYTHON_ENV] = sys.executable
    lib = worker_library_path()
    if lib is not None:
        environ[WORKER_LIB_ENV] = lib
    return environ


def _fail(message):
    sys.stderr.write("oxwsgi: %s\n" % message)
    sys.stderr.flush()
    sys.exit(EXIT_START_FAILURE)


def main(argv=None):
    """Exec ``oxwsgi/bin/oxwsgi`` with ``argv`` (default ``sys.argv[1:]``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    exe = binary_path()
    if not os.path.isfile(exe):
        _fail(
            "the server binary is missing (%s); this oxwsgi installation is "
            "incomplete: reinstall it with pip" % exe
        )
    if not os.access(exe, os.X_OK):
        # An installer that dropped the executable bit: restore it if we can.
        try:
            mode = os.stat(exe).st_mode
            os.chmod(exe, mode | ((mode & 0o444) >> 2))
        except OSError:
            pass
    prepare_environ()

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass

    if os.name == "nt":  # no exec() that keeps the process there
        import subprocess

        sys.exit(subprocess.call([exe] + args))
    try:
        os.execv(exe, [exe] + args)
    except OSError as exc:
        _fail("cannot execute %s: %s" % (exe, exc))


if __name__ == "__main__":
    main()
