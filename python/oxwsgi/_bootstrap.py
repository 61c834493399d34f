# oxwsgi daemon bootstrap, run by the front as `<python> -c <this file>`.
# Loads the worker extension named by OXWSGI_WORKER_LIB and hands it the
# JSON config in OXWSGI_WORKER_CONFIG; everything else happens in Rust.
import sys
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]
import os
import importlib.machinery
import importlib.util
_path = os.environ["OXWSGI_WORKER_LIB"]
_loader = importlib.machinery.ExtensionFileLoader("_oxwsgi_worker", _path)
_spec = importlib.util.spec_from_file_location("_oxwsgi_worker", _path, loader=_loader)
_worker = importlib.util.module_from_spec(_spec)
_loader.exec_module(_worker)
sys.modules["_oxwsgi_worker"] = _worker
del _path, _loader, _spec
sys.exit(_worker.run(os.environ["OXWSGI_WORKER_CONFIG"]))
