# oxwsgi daemon bootstrap, run by the front as `<python> -c <this file>`.
# Loads the worker extension named by OXWSGI_WORKER_LIB and hands it the
# JSON config in OXWSGI_WORKER_CONFIG; the WSGI work happens in Rust.
# Before `run` it sets up the process-level watchdogs that must work even
# when the GIL is stuck or that are plain CPython facilities:
#   - SIGUSR1 writes every thread's stack to stderr (faulthandler, then the
#     worker for threads inside sub-interpreters), which the front sends when
#     a request exceeds request-timeout;
#   - deadlock-timeout: faulthandler's C watchdog exits the process (after a
#     stack dump) unless a Python thread re-arms it every second, i.e. unless
#     the GIL is released now and then;
#   - the control channel: one-line commands from the front, such as
#     `interrupt STREAM` (raise RequestTimeout in the thread serving that
#     request).
#
# Memory: every module imported here stays in every daemon, so the bootstrap
# imports only what it needs (no json, ctypes, socket, importlib.util: the
# worker parses the config and raises in threads itself).
import sys
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]
import os
import importlib.machinery

_path = os.environ["OXWSGI_WORKER_LIB"]
_loader = importlib.machinery.ExtensionFileLoader("_oxwsgi_worker", _path)
_spec = importlib.machinery.ModuleSpec("_oxwsgi_worker", _loader, origin=_path)
_worker = _loader.create_module(_spec)
_loader.exec_module(_worker)
sys.modules["_oxwsgi_worker"] = _worker
# (umask, deadlock_timeout, control_fd), each None when not set.
_config = _worker.bootstrap_settings(os.environ["OXWSGI_WORKER_CONFIG"])
if _config[0] is not None:
    os.umask(_config[0])


def _oxwsgi_watchdogs(worker, deadlock, control_fd):
    import faulthandler
    import signal
    import threading
    import time

    # SIGUSR1: faulthandler dumps the main interpreter's threads at once,
    # from C, even while the GIL is stuck. The sub-interpreters' stacks come
    # from the control thread's `dump` command (below), which the front
    # sends along: a Python-level signal handler would run only in the main
    # thread, which sits in join() until the process ends.
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True, chain=False)

    if deadlock:
        def rearm():
            while True:
                faulthandler.dump_traceback_later(deadlock, exit=True, file=sys.stderr)
                time.sleep(1)
        threading.Thread(target=rearm, name="oxwsgi-deadlock", daemon=True).start()

    if control_fd is not None:
        class RequestTimeout(Exception):
            """Raised in a request's thread when it exceeded request-timeout."""

        def interrupt(stream):
            # The front names the request (its stream on the channel); the
            # worker knows which thread serves it, if any still does.
            index = worker.thread_serving(stream)
            if index is None:
                return
            name = "oxwsgi-thread-%d" % index
            # A request running in a sub-interpreter (named application
            # group) is interrupted by the worker, in that interpreter.
            if worker.interrupt(index):
                sys.stderr.write("[oxwsgi] interrupted %s: request-timeout\n" % name)
                return
            for thread in threading.enumerate():
                if thread.name == name and thread.ident is not None:
                    worker.raise_in_thread(thread.ident, RequestTimeout)
                    sys.stderr.write("[oxwsgi] interrupted %s: request-timeout\n" % name)

        def serve_control():
            os.set_inheritable(control_fd, False)
            # A socket, read as a plain file: lines until the front closes it.
            for line in open(control_fd, "r", encoding="ascii", errors="replace"):
                command, _, argument = line.strip().partition(" ")
                if command == "interrupt" and argument.isdigit():
                    interrupt(int(argument))
                elif command == "dump":
                    # faulthandler only sees the main interpreter's threads:
                    # the worker adds those of busy sub-interpreters.
                    worker.dump_stacks()

        threading.Thread(target=serve_control, name="oxwsgi-control", daemon=True).start()


_oxwsgi_watchdogs(_worker, _config[1], _config[2])
del _path, _loader, _spec, _config, _oxwsgi_watchdogs
try:
    _status = _worker.run(os.environ["OXWSGI_WORKER_CONFIG"])
except BaseException:
    if not _worker.subinterpreters():
        raise
    import traceback
    traceback.print_exc()
    _status = 1
if _worker.subinterpreters():
    # CPython's finalization aborts while sub-interpreters remain, and they
    # cannot be ended while threads of theirs live: run the main
    # interpreter's atexit functions (the worker ran theirs), flush, leave.
    import atexit
    atexit._run_exitfuncs()
    for _stream in (sys.stdout, sys.stderr):
        try:
            _stream.flush()
        except Exception:
            pass
    os._exit(_status)
sys.exit(_status)
