"""Where oxwsgi's per-request time goes, on the hello workload (issue 8).

    bench/.venv/bin/python bench/profile.py [--oxwsgi-bin PATH] [--only cpu,strace,perf,callgrind]

Steps (each on a fresh `oxwsgi run` of bench/apps/app.py, 2 x 15 unless said,
access log off, wrk on 127.0.0.1 only, every process stopped by PID):
  cpu        wrk -c64 for 5 s: CPU per request of the front and of the daemons
             (user / system), context switches per request (all threads)
  strace     `strace -c -f -p PID` on the front, then on both daemons, during
             a 5 s wrk run: syscalls per request
  perf       `perf record -e cpu-clock -a` during a 5 s wrk run (software
             clock: this VM has no hardware counters); top symbols per process
  callgrind  instructions per request, repeatable: the front under callgrind
             (daemons native), then one daemon under callgrind (processes=1,
             front native); counters zeroed after a warm-up, N requests sent
             with wrk (a lua script stops it), counters dumped, Ir / N
Writes bench/out/profile/summary.md and the raw files next to it.
"""

import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

OUT = os.path.join(bench.BENCH, "out", "profile")
APP = os.path.join(bench.APPS, "app.py")

LIMIT_LUA = """
local n = 0
local limit = %d
response = function(status, headers, body)
  n = n + 1
  if n >= limit then wrk.thread:stop() end
end
"""


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


class Ox:
    """One oxwsgi server for profiling."""

    def __init__(self, bin_, python, processes=2, threads=15, front_prefix=(), startup_timeout=60):
        self.port = bench.free_port()
        self.tmp = tempfile.mkdtemp(prefix="oxprof-")
        conf = os.path.join(self.tmp, "oxwsgi.toml")
        with open(conf, "w") as f:
            f.write(
                'listen = ["127.0.0.1:%d"]\naccess-log = false\n\n[groups.bench]\nprocesses = %d\nthreads = %d\n'
                'display-name = "%%{GROUP}"\npython = "%s"\nstartup-timeout = %d\n\n'
                '[[mount]]\npath = "/"\nscript = "%s"\ngroup = "bench"\n'
                % (self.port, processes, threads, python, startup_timeout, APP))
        self.log_path = os.path.join(self.tmp, "server.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(list(front_prefix) + [bin_, "run", conf], cwd=bench.APPS,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid
        self.known = {self.pid}

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("oxwsgi exited: " + open(self.log_path).read()[-2000:])
            try:
                if bench.http_get(self.port, "/hello", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("oxwsgi not ready")

    def tree(self):
        t = bench.proc_tree(self.pid)
        self.known.update(t)
        return t

    def daemons(self):
        """The daemon processes (children of the front, maybe under valgrind)."""
        return [p for p in self.tree() if p != self.pid]

    def stop(self):
        self.tree()
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()
        deadline = time.monotonic() + 30
        left = [p for p in self.known if p != self.pid and bench.alive(p)]
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = [p for p in left if bench.alive(p)]
        for p in left:
            os.kill(p, signal.SIGKILL)
        self.log.close()


def wrk(port, conns=64, duration=5, limit=None, threads=2):
    script = os.path.join(OUT, "wrk.lua")
    with open(script, "w") as f:
        if limit:
            f.write(LIMIT_LUA % limit)
        with open(os.path.join(bench.LUA, "report.lua")) as r:
            f.write(r.read())
    argv = ["wrk", "-t", str(threads), "-c", str(conns), "-d", "%ds" % duration, "--timeout", "10s", "-s", script,
            "http://127.0.0.1:%d/hello" % port]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60).stdout
    m = re.search(r"^BENCHJSON (\{.*\})$", out, re.M)
    if not m:
        raise RuntimeError("wrk: " + out[-500:])
    import json

    res = json.loads(m.group(1))
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    return res


def task_stats(pids):
    """user ticks, system ticks, voluntary and involuntary context switches over every thread."""
    ut = st = vol = invol = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rpartition(")")[2].split()
            ut += int(fields[11])
            st += int(fields[12])
            for t in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/status" % (p, t)) as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches"):
                            vol += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches"):
                            invol += int(line.split()[1])
        except OSError:
            pass
    return ut, st, vol, invol


def step_cpu(args, md):
    ox = Ox(args.oxwsgi_bin, args.python)
    try:
        ox.wait_ready()
        wrk(ox.port, duration=1)
        front, daemons = [ox.pid], ox.daemons()
        f0, d0 = task_stats(front), task_stats(daemons)
        res = wrk(ox.port, duration=5)
        f1, d1 = task_stats(front), task_stats(daemons)
        n = res["requests"]
        tick = 1e6 / bench.CLK_TCK
        md.append("## CPU per request (hello, 64 conns, 5 s, %d requests, %.0f req/s)\n" % (n, res["rps"]))
        md.append("| process | user µs/req | system µs/req | total µs/req | voluntary ctx switches/req | involuntary/req |")
        md.append("|---|---:|---:|---:|---:|---:|")
        for name, a, b in (("front", f0, f1), ("daemons (2)", d0, d1)):
            u, s = (b[0] - a[0]) * tick / n, (b[1] - a[1]) * tick / n
            md.append("| %s | %.1f | %.1f | %.1f | %.2f | %.2f |" % (name, u, s, u + s, (b[2] - a[2]) / n, (b[3] - a[3]) / n))
        md.append("")
    finally:
        ox.stop()


def parse_strace(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and re.match(r"^[\d.]+$", parts[0]) and parts[-1] not in ("total",):
                calls = int(parts[3])
                errors = int(parts[4]) if len(parts) == 6 else 0
                rows.append((parts[-1], calls, errors))
    return sorted(rows, key=lambda r: -r[1])


def step_strace(args, md):
    md.append("## Syscalls per request (`strace -c -f -p PID`, hello, 64 conns, 5 s)\n")
    md.append("strace slows the traced processes a lot; the counts per request are what matters.\n")
    for who in ("front", "daemons"):
        ox = Ox(args.oxwsgi_bin, args.python)
        try:
            ox.wait_ready()
            wrk(ox.port, duration=1)
            pids = [ox.pid] if who == "front" else ox.daemons()
            out = os.path.join(OUT, "strace-%s.txt" % who)
            argv = ["strace", "-c", "-f", "-o", out]
            for p in pids:
                argv += ["-p", str(p)]
            st = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            res = wrk(ox.port, duration=5)
            st.send_signal(signal.SIGINT)
            st.wait(timeout=60)
            n = res["requests"]
            rows = parse_strace(out)
            total = sum(r[1] for r in rows)
            md.append("**%s** (%d requests at %.0f req/s under strace): %.2f syscalls per request\n" % (who, n, res["rps"], total / n))
            md.append("| syscall | per request | errors per request |")
            md.append("|---|---:|---:|")
            for name, calls, errors in rows[:12]:
                md.append("| %s | %.3f | %s |" % (name, calls / n, "%.3f" % (errors / n) if errors else ""))
            md.append("")
        finally:
            ox.stop()


def step_perf(args, md):
    ox = Ox(args.oxwsgi_bin, args.python)
    data = os.path.join(OUT, "perf.data")
    try:
        ox.wait_ready()
        wrk(ox.port, duration=1)
        front, daemons = ox.pid, ox.daemons()
        rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "1999", "-a", "-o", data, "--", "sleep", "6"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        res = wrk(ox.port, duration=5)
        rec.wait(timeout=60)
    finally:
        ox.stop()
    md.append("## perf (cpu-clock sampling, whole machine, hello 64 conns, %.0f req/s)\n" % res["rps"])

    def report(extra, limit):
        out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--percent-limit", str(limit)] + extra,
                             capture_output=True, text=True).stdout
        return [l for l in out.splitlines() if l.strip() and not l.startswith("#")]

    md.append("Share of all samples by process:\n\n```")
    md += report(["--sort", "comm"], 1)[:12]
    md.append("```\n")
    for name, pids in (("front", [front]), ("daemons", daemons)):
        md.append("Top symbols in the %s (share of all samples):\n\n```" % name)
        md += report(["--pid", ",".join(map(str, pids)), "--sort", "dso,sym"], 0.4)[:40]
        md.append("```\n")


def callgrind_run(args, md, who, n):
    """Callgrind on the front (who='front') or on the daemon (who='daemon')."""
    vg = ["valgrind", "--tool=callgrind", "--trace-children=no", "--dump-instr=no",
          "--callgrind-out-file=%s/callgrind.%s.%%p" % (OUT, who)]
    for f in glob.glob(os.path.join(OUT, "callgrind.%s.*" % who)):
        os.remove(f)
    if who == "front":
        ox = Ox(args.oxwsgi_bin, args.python, front_prefix=vg)
        target = lambda: ox.pid  # noqa: E731
    else:
        wrapper = os.path.join(OUT, "python-under-callgrind")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec %s %s \"$@\"\n" % (" ".join(vg), args.python))
        os.chmod(wrapper, 0o755)
        ox = Ox(args.oxwsgi_bin, wrapper, processes=1, startup_timeout=600)
        target = lambda: ox.daemons()[0]  # noqa: E731
    try:
        ox.wait_ready(timeout=600)
        wrk(ox.port, conns=64, duration=60, limit=500, threads=1)  # warm-up
        pid = target()
        subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True, timeout=120)
        res = wrk(ox.port, conns=64, duration=300, limit=n, threads=1)
        subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, timeout=120)
        time.sleep(1)
    finally:
        ox.stop()
    files = [f for f in glob.glob(os.path.join(OUT, "callgrind.%s.*" % who)) if re.search(r"\.\d+\.\d+$", f)]
    if not files:
        files = glob.glob(os.path.join(OUT, "callgrind.%s.*" % who))
    dump = max(files, key=os.path.getsize) if files else None
    # the dump after zeroing is the one with the ".<pid>.<n>" suffix and the
    # most events; the final at-exit dump also exists
    best, best_ir = None, -1
    for f in files:
        ir = total_ir(f)
        if f.count(".") and re.search(r"\.\d+\.\d+$", f) and ir > best_ir:
            best, best_ir = f, ir
    dump = best or dump
    ir = total_ir(dump)
    reqs = res["requests"]
    md.append("### %s: %.0f instructions per request (%d requests, %s)\n" % (who, ir / reqs, reqs, os.path.basename(dump)))
    for inclusive in ("no", "yes"):
        out = subprocess.run(["callgrind_annotate", "--inclusive=%s" % inclusive, "--threshold=99", dump],
                             capture_output=True, text=True).stdout
        lines = [l for l in out.splitlines() if re.match(r"^\s*[\d,]+ ", l)]
        md.append("%s cost, top functions (Ir per request, share):\n\n```" % ("Inclusive" if inclusive == "yes" else "Self"))
        for l in lines[1:31]:
            m = re.match(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(.*)$", l)
            if not m:
                continue
            cost = int(m.group(1).replace(",", ""))
            md.append("%9.0f  %5.1f%%  %s" % (cost / reqs, 100.0 * cost / ir if ir else 0, m.group(2)[:150]))
        md.append("```\n")


def total_ir(path):
    if not path:
        return 0
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--oxwsgi-bin", default=os.path.join(bench.BENCH, "out", "bin", "oxwsgi"))
    ap.add_argument("--python", default=os.path.join(bench.BENCH, ".venv", "bin", "python"))
    ap.add_argument("--only", default="cpu,strace,perf,callgrind")
    ap.add_argument("--requests", type=int, default=5000, help="requests counted under callgrind")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    steps = args.only.split(",")
    md = ["# oxwsgi profile, hello workload (%s, %s)\n" % (time.strftime("%Y-%m-%d"), bench.git_commit())]
    if "cpu" in steps:
        log("cpu")
        step_cpu(args, md)
    if "strace" in steps and shutil.which("strace"):
        log("strace")
        step_strace(args, md)
    if "perf" in steps and shutil.which("perf"):
        log("perf")
        step_perf(args, md)
    if "callgrind" in steps and shutil.which("valgrind"):
        md.append("## callgrind (instructions per request, hello, 64 conns)\n")
        log("callgrind front")
        callgrind_run(args, md, "front", args.requests)
        log("callgrind daemon")
        callgrind_run(args, md, "daemon", args.requests)
    path = os.path.join(OUT, "summary-%s.md" % "-".join(steps))
    with open(path, "w") as f:
        f.write("\n".join(md) + "\n")
    log("wrote %s" % path)


if __name__ == "__main__":
    main()
