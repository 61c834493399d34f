"""oxwsgi's side-by-side benchmark: oxwsgi against Granian, uWSGI, gunicorn,
waitress and Apache + mod_wsgi, same app, same processes x threads, loaded by
wrk on 127.0.0.1 only. Run it through bench/run.sh (which installs the peers
and builds oxwsgi); `bench/run.sh --help` lists the options.

Method
  * Rounds: in every round each server is started, loaded with every selected
    workload, and stopped (by PID) before the next server starts; the order of
    the servers rotates from round to round, and the reported numbers are the
    medians over the rounds (single runs vary 15-40% on a 2-core machine).
  * Each measurement is one bounded wrk run (-t2, --timeout 5s); a lua hook
    (lua/report.lua) prints the summary as JSON.
  * Unserved connections: wrk only reports requests that were answered, so
    during each run `ss` is sampled twice (at 1/2 and 9/10 of the run) on the
    client side; a connection to the server that has received 0 bytes in
    both samples has waited that long without any answer and is counted.
  * Server CPU per request: utime+stime of the server's whole process tree
    over the run, divided by the requests wrk completed.
  * Server context switches per request: voluntary + nonvoluntary context
    switches of every thread of the server's process tree
    (/proc/PID/task/TID/status), read at the same two points as the CPU,
    summed per thread as end - start (a thread born during the run counts
    from 0), divided by the requests wrk completed. A thread or process that
    exits during the run is lost (Linux keeps no reaped-children total for
    them that another process can read), so a server that recycles workers
    or threads mid-run reads low.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
APPS = os.path.join(BENCH, "apps")
LUA = os.path.join(BENCH, "lua")
TWO_APPS = os.path.join(ROOT, "examples", "two-apps")
APACHE_MODULES = "/usr/lib/apache2/modules"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MiB = 1024 * 1024

# --------------------------------------------------------------------------
# workloads


class Workload:
    def __init__(self, name, title, app, path, conns, lua=None, kind="wrk", servers=None):
        self.name = name
        self.title = title
        self.app = app  # "stdlib" | "flask" | "twoapps"
        self.path = path
        self.conns = conns
        self.lua = lua
        self.kind = kind  # "wrk" | "idle"
        self.servers = servers  # None: every server


WORKLOADS = [
    Workload("hello64", "hello world, 64 conns", "stdlib", "/hello", 64),
    Workload("hello256", "hello world, 256 conns", "stdlib", "/hello", 256),
    Workload("big", "1 MiB response (bytes), 32 conns", "stdlib", "/big", 32),
    Workload("file", "1 MiB wsgi.file_wrapper, 32 conns", "stdlib", "/file", 32),
    Workload("upload", "1 MiB upload read by the app, 16 conns", "stdlib", "/upload", 16, lua="upload.lua"),
    Workload("idle2000", "2000 idle keep-alive conns + 64 busy", "stdlib", "/hello", 64, kind="idle"),
    Workload("flask", "Flask template, 64 conns", "flask", "/", 64),
    Workload("twoapps", "two-apps site (2 groups), 64 conns", "twoapps", "/api/wsgi/one/", 64,
             lua="two_apps.lua", servers=("oxwsgi", "apache")),
]
WL = {w.name: w for w in WORKLOADS}

# --------------------------------------------------------------------------
# process helpers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def proc_tree(root):
    kids = children_map()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rpartition(")")[2].split()
            # utime + stime + cutime + cstime: a process that exited during
            # the run (a recycled daemon, an Apache child) is counted through
            # the parent that reaped it.
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        except OSError:
            pass
    return total


def ctxt_switches(pids):
    """{tid: voluntary + nonvoluntary context switches} over every thread of
    `pids` (keyed by tid, so a delta can be taken thread by thread)."""
    out = {}
    for p in pids:
        try:
            tids = os.listdir("/proc/%d/task" % p)
        except OSError:
            continue
        for tid in tids:
            n = 0
            try:
                with open("/proc/%d/task/%s/status" % (p, tid)) as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                            n += int(line.split()[1])
            except (OSError, ValueError):
                continue
            out[int(tid)] = n
    return out


def ctxt_delta(before, after):
    # threads gone by the end are lost; threads born during the run count from 0
    return sum(n - before.get(tid, 0) for tid, n in after.items())


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def http_get(port, path, timeout=2.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        return r.status, body
    finally:
        c.close()


# --------------------------------------------------------------------------
# servers


class Server:
    key = ""
    label = ""
    note = ""
    stop_signal = signal.SIGTERM

    def __init__(self, cfg):
        self.cfg = cfg

    def unsupported(self, app):
        """A reason string when this server cannot run APP, else None."""
        return None

    def command(self, app, port, tmp):
        raise NotImplementedError

    def app_target(self, app):
        if app == "flask":
            return os.path.join(APPS, "flask_app.py"), "flask_app:app"
        return os.path.join(APPS, "app.py"), "app:application"


class Oxwsgi(Server):
    key = "oxwsgi"
    label = "oxwsgi"

    def command(self, app, port, tmp):
        py = self.cfg.python
        if app == "twoapps":
            conf = two_apps_toml(port, py)
        else:
            script, _ = self.app_target(app)
            conf = (
                'listen = ["127.0.0.1:%d"]\naccess-log = false\n\n'
                '[groups.bench]\nprocesses = %d\nthreads = %d\ndisplay-name = "%%{GROUP}"\npython = "%s"\n\n'
                '[[mount]]\npath = "/"\nscript = "%s"\ngroup = "bench"\n'
                % (port, self.cfg.processes, self.cfg.threads, py, script)
            )
        path = os.path.join(tmp, "oxwsgi.toml")
        with open(path, "w") as f:
            f.write(conf)
        # The peers run their apps as whoever starts the bench; so does
        # oxwsgi (it refuses root unless told, see docs/design.md §3).
        return [self.cfg.oxwsgi_bin, "run", path], APPS, {"OXWSGI_ALLOW_ROOT": "1"}


def two_apps_toml(port, python):
    """examples/two-apps/oxwsgi.toml on PORT, access log off, the bench's python."""
    with open(os.path.join(TWO_APPS, "oxwsgi.toml")) as f:
        src = f.read()
    src = re.sub(r'(?m)^listen = .*$', 'listen = ["127.0.0.1:%d"]\naccess-log = false' % port, src)
    src = re.sub(r'(?m)^(\[groups\.[^\]]+\])$', r'\1\npython = "%s"' % python, src)
    src = re.sub(r'(?m)^script = "(?!/)', 'script = "%s/' % TWO_APPS, src)
    return src


class Granian(Server):
    key = "granian"
    label = "Granian --blocking-threads T"

    def command(self, app, port, tmp):
        _, target = self.app_target(app)
        argv = [
            self.cfg.bin("granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(self.cfg.processes), "--blocking-threads", str(self.cfg.threads),
            "--working-dir", APPS, "--log-level", "warning", target,
        ]
        return argv, APPS, {}

    def unsupported(self, app):
        return "one app per server" if app == "twoapps" else None


class GranianDefault(Granian):
    key = "granian-default"
    label = "Granian (default threads)"

    def command(self, app, port, tmp):
        argv, cwd, env = super().command(app, port, tmp)
        i = argv.index("--blocking-threads")
        del argv[i:i + 2]
        return argv, cwd, env


class Uwsgi(Server):
    key = "uwsgi"
    label = "uWSGI --http11-socket"

    def command(self, app, port, tmp):
        script, _ = self.app_target(app)
        callable_ = "app" if app == "flask" else "application"
        argv = [
            self.cfg.bin("uwsgi"), "--http11-socket", "127.0.0.1:%d" % port, "--master", "--die-on-term",
            "--processes", str(self.cfg.processes), "--threads", str(self.cfg.threads),
            "--wsgi-file", script, "--callable", callable_, "--chdir", APPS, "--need-app",
            "--disable-logging", "--post-buffering", "0",
        ]
        return argv, APPS, {}

    def unsupported(self, app):
        if app == "twoapps":
            return "one app per server"
        if not os.path.exists(self.cfg.bin("uwsgi")):
            return "uWSGI did not install"
        return None


class Gunicorn(Server):
    key = "gunicorn"
    label = "gunicorn gthread"

    def command(self, app, port, tmp):
        _, target = self.app_target(app)
        argv = [
            self.cfg.bin("gunicorn"), "-k", "gthread", "--workers", str(self.cfg.processes),
            "--threads", str(self.cfg.threads), "--bind", "127.0.0.1:%d" % port, "--chdir", APPS,
            "--log-level", "warning", target,
        ]
        return argv, APPS, {}

    def unsupported(self, app):
        return "one app per server" if app == "twoapps" else None


class Waitress(Server):
    key = "waitress"
    label = "waitress (1 process)"
    note = "waitress has no worker processes: one process x T threads"

    def command(self, app, port, tmp):
        _, target = self.app_target(app)
        argv = [self.cfg.bin("waitress-serve"), "--listen=127.0.0.1:%d" % port,
                "--threads=%d" % self.cfg.threads, target]
        return argv, APPS, {"PYTHONPATH": APPS}

    def unsupported(self, app):
        return "one app per server" if app == "twoapps" else None


APACHE_MAIN = """\
# Private Apache config written by bench/bench.py (Debian's defaults from
# /etc/apache2/apache2.conf and mods-available/mpm_event.conf, no access log).
ServerRoot "{tmp}"
PidFile "{tmp}/apache2.pid"
DefaultRuntimeDir "{tmp}"
ErrorLog "{tmp}/error.log"
LogLevel warn
ServerName 127.0.0.1
User www-data
Group www-data
LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule wsgi_module {mods}/mod_wsgi.so
Timeout 300
KeepAlive On
MaxKeepAliveRequests 100
KeepAliveTimeout 5
HostnameLookups Off
StartServers 2
MinSpareThreads 25
MaxSpareThreads 75
ThreadLimit 64
ThreadsPerChild 25
MaxRequestWorkers 150
MaxConnectionsPerChild 0
WSGISocketPrefix "{tmp}/wsgi"
"""

APACHE_APP = """\
Listen 127.0.0.1:{port}
WSGIDaemonProcess bench processes={processes} threads={threads} display-name=%{{GROUP}} python-home={venv}
WSGIProcessGroup bench
WSGIApplicationGroup %{{GLOBAL}}
WSGIScriptAlias / {script}
<Directory {apps}>
    Require all granted
</Directory>
"""


class Apache(Server):
    key = "apache"
    label = "Apache + mod_wsgi daemon"

    def unsupported(self, app):
        if not os.path.exists(os.path.join(APACHE_MODULES, "mod_wsgi.so")) or not shutil.which("apache2"):
            return "apache2 / libapache2-mod-wsgi-py3 not installed"
        if app == "flask" and not self.cfg.mod_wsgi_python_matches:
            return "Debian's mod_wsgi embeds another Python than the bench venv's, so it cannot import its Flask"
        return None

    def command(self, app, port, tmp):
        os.chmod(tmp, 0o755)  # the daemons (www-data) reach their socket in it
        conf = APACHE_MAIN.format(tmp=tmp, mods=APACHE_MODULES)
        if app == "twoapps":
            # The mission's exact site file, with its paths and port adjusted
            # to where the example lives, as its own comment says to do.
            with open(os.path.join(TWO_APPS, "apache-site.conf")) as f:
                site = f.read()
            site = site.replace("/var/www/mysite", TWO_APPS).replace("127.0.0.1:8000", "127.0.0.1:%d" % port)
            site_path = os.path.join(tmp, "apache-site.conf")
            with open(site_path, "w") as f:
                f.write(site)
            conf += "Include %s\n" % site_path
        else:
            script, _ = self.app_target(app)
            conf += APACHE_APP.format(port=port, processes=self.cfg.processes, threads=self.cfg.threads,
                                      venv=self.cfg.venv, script=script, apps=APPS)
        path = os.path.join(tmp, "apache2.conf")
        with open(path, "w") as f:
            f.write(conf)
        return ["apache2", "-f", path, "-DFOREGROUND"], tmp, {}


SERVER_CLASSES = [Oxwsgi, Granian, GranianDefault, Uwsgi, Gunicorn, Waitress, Apache]


class Running:
    """One started server: its process, its log, and how to stop it."""

    def __init__(self, server, app, cfg):
        self.server = server
        self.app = app
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="oxbench-%s-" % server.key)
        argv, cwd, extra_env = server.command(app, self.port, self.tmp)
        env = dict(os.environ)
        env.update(extra_env)
        self.log_path = os.path.join(self.tmp, "server.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid
        self.known = {self.pid}

    def tree(self):
        t = proc_tree(self.pid) if alive(self.pid) else []
        self.known.update(t)
        return t

    def wait_ready(self, paths, timeout=60.0):
        deadline = time.monotonic() + timeout
        pending = list(paths)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s; log: %s" % (self.server.key, self.proc.returncode, self.log_tail()))
            try:
                status, _ = http_get(self.port, pending[0], timeout=2)
                if status == 200:
                    pending.pop(0)
                    if not pending:
                        self.tree()
                        return
                    continue
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("%s not ready after %ss; log: %s" % (self.server.key, timeout, self.log_tail()))

    def oxwsgi_counts(self):
        """(daemons started, daemons ready) so far, from oxwsgi's error log."""
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return 0, 0
        return text.count("daemon process started"), text.count("worker ready:")

    def settle(self, timeout=30.0):
        """Waits until the server is back to full strength after a run; returns
        the seconds waited. oxwsgi replaces a daemon process whose slot broke
        when a client went away mid-request, which every wrk run does as it
        stops: the next run starts only once every replacement is ready, so
        each run measures the steady state (the wait is reported)."""
        t0 = time.monotonic()
        time.sleep(0.15)
        if self.server.key == "oxwsgi":
            deadline = t0 + timeout
            while time.monotonic() < deadline:
                started, ready = self.oxwsgi_counts()
                if started and ready >= started:
                    break
                time.sleep(0.05)
        return time.monotonic() - t0

    def log_tail(self, n=15):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        self.tree()
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, self.server.stop_signal)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        # Anything of the tree still there (own process groups: oxwsgi's and
        # mod_wsgi's daemons) is ended by its PID.
        deadline = time.monotonic() + 5
        left = [p for p in self.known if p != self.pid and alive(p)]
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = [p for p in left if alive(p)]
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()
        return left


# --------------------------------------------------------------------------
# measurement


def ss_zero_received(port):
    """Client-side sockets connected to PORT -> bytes received so far."""
    try:
        out = subprocess.run(["ss", "-tniH", "state", "established", "( dport = :%d )" % port],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    socks = {}
    current = None
    for line in out.splitlines():
        if not line.startswith((" ", "\t")) and ":" in line:
            parts = line.split()
            current = parts[-2] if len(parts) >= 2 else None  # local addr:port
            socks[current] = 0
        elif current is not None:
            m = re.search(r"bytes_received:(\d+)", line)
            if m:
                socks[current] = int(m.group(1))
    return socks


def run_wrk(cfg, port, wl, duration, sample_ss=True):
    script = os.path.join(cfg.tmp, "wl-%s.lua" % wl.name)
    with open(script, "w") as out:
        if wl.lua:
            with open(os.path.join(LUA, wl.lua)) as f:
                out.write(f.read() + "\n")
        with open(os.path.join(LUA, "report.lua")) as f:
            out.write(f.read())
    argv = ["wrk", "-t", "2", "-c", str(wl.conns), "-d", "%ds" % duration, "--timeout", "5s", "-s", script,
            "http://127.0.0.1:%d%s" % (port, wl.path)]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples = []
    if sample_ss:
        for frac in (0.5, 0.9):
            delay = t0 + duration * frac - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            samples.append(ss_zero_received(port))
    try:
        out, _ = proc.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise RuntimeError("wrk did not finish in time")
    m = re.search(r"^BENCHJSON (\{.*\})$", out, re.M)
    if not m:
        raise RuntimeError("wrk failed: %s" % out[-800:])
    res = json.loads(m.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    if not res["requests"]:
        for k in ("p50_us", "p90_us", "p99_us", "max_us", "mean_us"):
            res[k] = None  # no answered request: no latency (the table says "starved")
    res["unserved"] = None
    if len(samples) == 2 and all(s is not None for s in samples):
        a, b = samples
        res["unserved"] = sum(1 for k, v in b.items() if v == 0 and a.get(k) == 0)
        res["conns_seen"] = len(b)
    return res


def run_idle(cfg, port, wl, duration):
    argv = [cfg.python, os.path.join(BENCH, "idle_clients.py"), "--port", str(port), "--path", wl.path,
            "--conns", str(cfg.idle_conns), "--interval", "3", "--duration", str(duration + 1),
            "--ready-timeout", "3"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready = None
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 1)
        if r:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("READY "):
                ready = json.loads(line[6:])
                break
    if ready is None:
        proc.kill()
        proc.wait()
        raise RuntimeError("idle client never got ready: %s" % "".join(lines)[-500:])
    try:
        res = run_wrk(cfg, port, wl, duration)
    finally:
        try:
            out, _ = proc.communicate(timeout=duration + 40)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    m = re.search(r"^IDLEJSON (\{.*\})$", out, re.M)
    res["idle"] = json.loads(m.group(1)) if m else None
    res["idle_ready"] = ready
    return res


def bare_python_rss(cfg, app):
    script = {"stdlib": os.path.join(APPS, "app.py"), "flask": os.path.join(APPS, "flask_app.py")}[app]
    code = ("import runpy, sys; sys.path.insert(0, %r); runpy.run_path(%r, run_name='bench_app');"
            "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])"
            % (APPS, script))
    out = subprocess.run([cfg.python, "-c", code], capture_output=True, text=True, timeout=60, cwd=APPS)
    return int(out.stdout.strip()) if out.returncode == 0 else None


def measure_memory(run):
    tree = run.tree()
    root = run.pid
    mem = {"tree_kib": sum(rss_kib(p) for p in tree), "root_kib": rss_kib(root)}
    if run.server.key == "oxwsgi":
        kids = [p for p in tree if p != root]
        mem["daemons_kib"] = [rss_kib(p) for p in kids]
    return mem


def count_recycles(run):
    try:
        with open(run.log_path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return 0
    return len(re.findall(r"recycling daemon process|daemon process (?:died|exited)", text))


# --------------------------------------------------------------------------
# the run


class Config:
    pass


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def main():
    ap = argparse.ArgumentParser(prog="bench/run.sh", description="oxwsgi vs its peers, side by side.")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds, medians reported (default 3)")
    ap.add_argument("--duration", type=int, default=4, help="seconds per measurement (default 4)")
    ap.add_argument("--quick", action="store_true", help="1 round of 3 s measurements")
    ap.add_argument("--smoke", action="store_true", help="<= 60 s: 1 round, 1 s, hello64 only")
    ap.add_argument("--only", default="", help="workloads, comma separated: " + ",".join(WL))
    ap.add_argument("--servers", default="", help="servers, comma separated: " + ",".join(c.key for c in SERVER_CLASSES))
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=15)
    ap.add_argument("--idle-conns", type=int, default=2000)
    ap.add_argument("--out", default=None, help="folder for results.md, results.json and the PNGs "
                    "(default: docs/ for a full default run, else bench/out/)")
    ap.add_argument("--docs", action="store_true", help="write into docs/benchmarks.md and docs/bench/ even for a partial run")
    ap.add_argument("--oxwsgi-bin", default=os.environ.get("BENCH_OXWSGI_BIN") or os.path.join(ROOT, "target", "release", "oxwsgi"))
    ap.add_argument("--venv", default=os.path.join(BENCH, ".venv"))
    args = ap.parse_args()

    cfg = Config()
    cfg.processes, cfg.threads = args.processes, args.threads
    cfg.venv = os.path.abspath(args.venv)
    cfg.python = os.path.join(cfg.venv, "bin", "python")
    cfg.bin = lambda name: os.path.join(cfg.venv, "bin", name)
    cfg.oxwsgi_bin = os.path.abspath(args.oxwsgi_bin)
    cfg.idle_conns = args.idle_conns
    cfg.tmp = tempfile.mkdtemp(prefix="oxbench-")
    rounds, duration = args.rounds, args.duration
    partial = False
    if args.quick:
        rounds, duration, partial = 1, 3, True
    only = [w for w in args.only.split(",") if w]
    if args.smoke:
        rounds, duration, partial = 1, 1, True
        only = only or ["hello64"]
    if only or args.servers or rounds != 3 or duration != 4 or (args.processes, args.threads) != (2, 15):
        partial = True
    for w in only:
        if w not in WL:
            sys.exit("unknown workload %r (known: %s)" % (w, ", ".join(WL)))
    workloads = [w for w in WORKLOADS if not only or w.name in only]
    server_keys = [s for s in args.servers.split(",") if s]
    known = [c.key for c in SERVER_CLASSES]
    for s in server_keys:
        if s not in known:
            sys.exit("unknown server %r (known: %s)" % (s, ", ".join(known)))
    servers = [c(cfg) for c in SERVER_CLASSES if not server_keys or c.key in server_keys]

    # Debian's mod_wsgi embeds /usr/bin/python3's version; python-home=<venv>
    # works only when the venv is of that same Python.
    venv_ver = subprocess.run([cfg.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True).stdout.strip()
    deb_ver = ""
    if os.path.exists("/usr/bin/python3"):
        deb_ver = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True).stdout.strip()
    cfg.mod_wsgi_python_matches = bool(venv_ver) and venv_ver == deb_ver

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    except (ValueError, OSError):
        pass
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < 2 * args.idle_conns + 1000:
        log("open-files limit is %s: too low for %d idle connections" % (soft, args.idle_conns))

    data = os.path.join(APPS, "data-1mib.bin")
    if not os.path.exists(data) or os.path.getsize(data) != MiB:
        with open(data, "wb") as f:
            f.write(os.urandom(MiB))
    os.chmod(data, 0o644)

    out_dir = args.out
    write_docs = args.docs or (not partial and out_dir is None)
    if out_dir is None:
        out_dir = os.path.join(BENCH, "out")
    os.makedirs(out_dir, exist_ok=True)

    commit = git_commit()
    results = {}  # workload -> server -> [round results]
    skipped = {}  # (workload, server) -> reason
    memory = {}  # server -> app -> [mem]
    recycles = {}  # server -> count
    started_at = time.time()
    log("load average before the run: %s (other work on the machine skews the numbers)" % loadavg())
    log("oxwsgi bench: %d round(s) x %d s, %s, servers: %s" % (
        rounds, duration, ", ".join(w.name for w in workloads), ", ".join(s.key for s in servers)))

    apps = []
    for w in workloads:
        if w.app not in apps:
            apps.append(w.app)

    for r in range(rounds):
        order = servers[r % len(servers):] + servers[:r % len(servers)]
        for app in apps:
            for server in order:
                wls = [w for w in workloads if w.app == app and (w.servers is None or server.key in w.servers)]
                if not wls:
                    continue
                reason = server.unsupported(app)
                if reason:
                    for w in wls:
                        skipped[(w.name, server.key)] = reason
                    continue
                run_server(cfg, server, app, wls, r, duration, results, skipped, memory, recycles)
        log("round %d/%d done after %.0f s (load average %s)" % (r + 1, rounds, time.time() - started_at, loadavg()))

    bare = {}
    for app in apps:
        if app != "twoapps":
            bare[app] = bare_python_rss(cfg, app)

    meta = {
        "date": datetime.date.today().isoformat(),
        "command": " ".join([os.environ.get("BENCH_INVOKED_AS", "bench/bench.py")] + sys.argv[1:]),
        "rounds": rounds, "duration": duration, "processes": cfg.processes, "threads": cfg.threads,
        "elapsed_s": round(time.time() - started_at),
        "commit": commit,
        "machine": machine_info(),
        "versions": versions(cfg),
        "idle_conns": cfg.idle_conns,
        "partial": partial,
    }
    raw = {"meta": meta, "results": results, "skipped": {"%s|%s" % k: v for k, v in skipped.items()},
           "memory": memory, "bare_python_kib": bare, "recycles": recycles,
           "servers": [[s.key, s.label] for s in servers], "workloads": [w.name for w in workloads]}
    raw_dir = out_dir if not write_docs else os.path.join(BENCH, "out")
    os.makedirs(raw_dir, exist_ok=True)
    with open(os.path.join(raw_dir, "results.json"), "w") as f:
        json.dump(raw, f, indent=1)
    import report  # bench/report.py: tables, targets, charts

    if write_docs:
        md_path = os.path.join(ROOT, "docs", "benchmarks.md")
        png_dir = os.path.join(ROOT, "docs", "bench")
        report.write(raw, md_path, png_dir, png_rel="bench", docs=True)
        shutil.copy(os.path.join(raw_dir, "results.json"), os.path.join(png_dir, "results.json"))
        log("wrote %s and %s/" % (os.path.relpath(md_path, ROOT), os.path.relpath(png_dir, ROOT)))
    else:
        md_path = os.path.join(out_dir, "results.md")
        report.write(raw, md_path, out_dir, png_rel=".", docs=False)
        log("wrote %s" % md_path)
    shutil.rmtree(cfg.tmp, ignore_errors=True)
    log("done in %.0f s" % (time.time() - started_at))


def run_server(cfg, server, app, wls, rnd, duration, results, skipped, memory, recycles):
    run = Running(server, app, cfg)
    try:
        paths = {"stdlib": ["/hello"], "flask": ["/"], "twoapps": ["/api/wsgi/one/", "/api/wsgi/two/"]}[app]
        run.wait_ready(paths)
        time.sleep(0.5)
        mem_idle = measure_memory(run)
        mem_after = None
        # warm-up: every thread and code path touched once
        warm = Workload("warm", "", app, paths[0], 64, lua="two_apps.lua" if app == "twoapps" else None)
        run_wrk(cfg, run.port, warm, 1, sample_ss=False)
        run.settle()
        for wl in wls:
            try:
                recycled0 = run.oxwsgi_counts()[0]
                t = run.tree()
                c0 = cpu_ticks(t)
                s0 = ctxt_switches(t)
                if wl.kind == "idle":
                    res = run_idle(cfg, run.port, wl, duration)
                else:
                    res = run_wrk(cfg, run.port, wl, duration)
                t = run.tree()
                c1 = cpu_ticks(t)
                s1 = ctxt_switches(t)
                res["cpu_us_per_req"] = (c1 - c0) / CLK_TCK * 1e6 / res["requests"] if res["requests"] else None
                res["ctxsw_per_req"] = ctxt_delta(s0, s1) / res["requests"] if res["requests"] else None
                if wl is wls[-1]:
                    mem_after = measure_memory(run)  # before any daemon is replaced
                if server.key == "oxwsgi":
                    res["settle_s"] = round(run.settle(), 2)
                    res["daemons_replaced"] = run.oxwsgi_counts()[0] - recycled0
                else:
                    run.settle()
                results.setdefault(wl.name, {}).setdefault(server.key, []).append(res)
                extra = ""
                if wl.kind == "idle" and res.get("idle"):
                    extra = ", idle answered %s/%s" % (res["idle"]["answered"], res["idle"]["conns"])
                log("round %d %-16s %-9s %9.0f req/s  p99 %8.2f ms  unserved %s  errors %d%s" % (
                    rnd + 1, server.key, wl.name, res["rps"], (res["p99_us"] or 0) / 1000, res["unserved"],
                    res["connect"] + res["read"] + res["write"] + res["timeout"] + res["non2xx"], extra))
            except Exception as e:  # noqa: BLE001 - one failed cell must not stop the run
                log("round %d %-16s %-9s FAILED: %s" % (rnd + 1, server.key, wl.name, e))
                skipped.setdefault((wl.name, server.key), "failed: %s" % str(e).splitlines()[0][:120])
                if run.proc.poll() is not None:
                    break
        if mem_after is None:
            mem_after = measure_memory(run)
        memory.setdefault(server.key, {}).setdefault(app, []).append({"idle": mem_idle, "after": mem_after})
    except Exception as e:  # noqa: BLE001
        log("%s (%s) failed to start: %s" % (server.key, app, e))
        for wl in wls:
            skipped.setdefault((wl.name, server.key), "failed to start: %s" % str(e).splitlines()[0][:120])
    finally:
        left = run.stop()
        if left:
            log("%s: killed leftover processes %s" % (server.key, left))
        if server.key == "oxwsgi":
            n = count_recycles(run)
            recycles[server.key] = recycles.get(server.key, 0) + n
            if n:
                log("oxwsgi recycled daemon processes %d time(s) during this run (see %s)" % (n, run.log_path))
                keep = os.path.join(BENCH, "out", "oxwsgi-%s-round%d.log" % (app, rnd + 1))
                os.makedirs(os.path.dirname(keep), exist_ok=True)
                shutil.copy(run.log_path, keep)
        shutil.rmtree(run.tmp, ignore_errors=True)


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def git_commit():
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "crates"], capture_output=True, text=True).stdout.strip()
        return head + (" (crates/ modified)" if dirty else "")
    except OSError:
        return "?"


def machine_info():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%d cores, %s, Linux %s" % (os.cpu_count(), cpu, platform.release())


def versions(cfg):
    v = {}

    def first_line(argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None

    v["python"] = first_line([cfg.python, "--version"])
    v["oxwsgi"] = (first_line([cfg.oxwsgi_bin, "--version"]) or "").replace("oxwsgi ", "") or None
    code = ("import importlib.metadata as m\nfor n in ('granian','gunicorn','waitress','uWSGI','Flask'):\n"
            "    try: print(n, m.version(n))\n    except Exception: pass")
    out = subprocess.run([cfg.python, "-c", code], capture_output=True, text=True).stdout
    for line in out.splitlines():
        n, ver = line.split()
        v[n] = ver
    v["apache2"] = (first_line(["apache2", "-v"]) or "").replace("Server version: ", "") or None
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libapache2-mod-wsgi-py3"], capture_output=True, text=True).stdout
        v["mod_wsgi"] = out.strip() or None
    except OSError:
        pass
    w = first_line(["wrk", "-v"]) or ""
    m = re.search(r"(\d+\.\d+\.\d+)", w)
    v["wrk"] = "wrk " + m.group(1) if m else None
    return v


if __name__ == "__main__":
    sys.path.insert(0, BENCH)
    main()
