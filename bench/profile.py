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

DEFAULT_STEPS = "cpu,peers,strace,perf,callgrind"

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

    def settle(self, timeout=600):
        """Waits until every daemon the front started has said it is ready."""
        deadline = time.monotonic() + timeout
        time.sleep(0.5)
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            if text.count("worker ready:") >= text.count("daemon process started"):
                return
            time.sleep(0.2)

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


def wrk(port, conns=64, duration=5, limit=None, threads=2, path="/hello"):
    script = os.path.join(OUT, "wrk.lua")
    with open(script, "w") as f:
        if limit:
            f.write(LIMIT_LUA % limit)
        with open(os.path.join(bench.LUA, "report.lua")) as r:
            f.write(r.read())
    argv = ["wrk", "-t", str(threads), "-c", str(conns), "-d", "%ds" % duration, "--timeout", "10s", "-s", script,
            "http://127.0.0.1:%d%s" % (port, path)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60).stdout
    m = re.search(r"^BENCHJSON (\{.*\})$", out, re.M)
    if not m:
        raise RuntimeError("wrk: " + out[-500:])
    import json

    res = json.loads(m.group(1))
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    return res


def fixed_load(port, conns, n, path="/hello"):
    """Exactly N GET requests over CONNS keep-alive connections; every
    connection waits for its last answer before closing (no request is cut
    off, so no slot breaks). Returns (requests, seconds)."""
    import asyncio

    from idle_clients import read_response

    async def one(state):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (path, port)).encode()
        while state["left"] > 0:
            state["left"] -= 1
            writer.write(req)
            await read_response(reader)
            state["done"] += 1
        writer.close()

    async def main():
        state = {"left": n, "done": 0}
        t0 = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(one(state) for _ in range(conns))), timeout=1800)
        return state["done"], time.monotonic() - t0

    return asyncio.run(main())


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
        ox.settle()
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


def step_peers(args, md):
    """The same CPU and context-switch accounting for the fastest peers."""
    cfg = bench.Config()
    cfg.processes, cfg.threads = 2, 15
    cfg.venv = os.path.dirname(os.path.dirname(args.python))
    cfg.python = args.python
    cfg.bin = lambda name: os.path.join(cfg.venv, "bin", name)
    cfg.oxwsgi_bin = args.oxwsgi_bin
    cfg.mod_wsgi_python_matches = True
    md.append("## The same accounting for peers (hello, 64 conns, 5 s; whole process tree)\n")
    md.append("| server | req/s | CPU µs/req (user + system) | system µs/req | voluntary ctx switches/req | involuntary/req |")
    md.append("|---|---:|---:|---:|---:|---:|")
    for cls in (bench.Oxwsgi, bench.Granian, bench.Uwsgi, bench.Apache):
        server = cls(cfg)
        if server.unsupported("stdlib"):
            continue
        run = bench.Running(server, "stdlib", cfg)
        try:
            run.wait_ready(["/hello"])
            wrk(run.port, duration=1)
            run.settle()
            t = run.tree()
            a = task_stats(t)
            res = wrk(run.port, duration=5)
            b = task_stats(run.tree())
            n = res["requests"]
            tick = 1e6 / bench.CLK_TCK
            md.append("| %s | %.0f | %.1f | %.1f | %.2f | %.2f |" % (
                server.label.replace("T", "15") if cls is bench.Granian else server.label, res["rps"],
                ((b[0] - a[0]) + (b[1] - a[1])) * tick / n, (b[1] - a[1]) * tick / n, (b[2] - a[2]) / n, (b[3] - a[3]) / n))
        finally:
            run.stop()
    md.append("")


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
    md.append("## Syscalls per request (`strace -c -f -p PID`, wrk 5 s)\n")
    md.append("strace slows the traced processes a lot; the counts per request are what matters.\n")
    for path, conns, who in (("/hello", 64, "front"), ("/hello", 64, "daemons"), ("/file", 32, "front"), ("/file", 32, "daemons")):
        ox = Ox(args.oxwsgi_bin, args.python)
        try:
            ox.wait_ready()
            wrk(ox.port, duration=1, path=path, conns=conns)
            ox.settle()  # replacements of daemons whose slot broke when wrk stopped
            pids = [ox.pid] if who == "front" else ox.daemons()
            out = os.path.join(OUT, "strace-%s-%s.txt" % (path.strip("/"), who))
            argv = ["strace", "-c", "-f", "-o", out]
            for p in pids:
                argv += ["-p", str(p)]
            st = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            res = wrk(ox.port, duration=5, path=path, conns=conns)
            st.send_signal(signal.SIGINT)
            st.wait(timeout=60)
            n = res["requests"]
            rows = parse_strace(out)
            total = sum(r[1] for r in rows)
            md.append("**%s, GET %s, %d conns** (%d requests at %.0f req/s under strace): %.2f syscalls per request\n"
                      % (who, path, conns, n, res["rps"], total / n))
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
        ox.settle()
        front, daemons = ox.pid, ox.daemons()
        rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "1999", "-a", "-g", "-o", data, "--", "sleep", "6"],
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

    md.append("Share of all samples by process and object (kernel = `[kernel.kallsyms]`):\n\n```")
    md += report(["--sort", "comm,dso", "-g", "none"], 0.5)[:16]
    md.append("```\n")
    # Kernel time by entry point (inclusive, from kernel call chains): how
    # much of each process goes to the TCP side, the Unix-socket side, epoll,
    # futexes and the scheduler.
    keys = ("tcp_sendmsg", "tcp_recvmsg", "unix_stream_sendmsg", "unix_stream_recvmsg", "do_epoll_wait",
            "do_futex", "schedule", "try_to_wake_up", "__x64_sys_sendto", "__x64_sys_recvfrom",
            "__x64_sys_writev", "__x64_sys_futex", "__x64_sys_epoll_wait", "entry_SYSCALL_64")
    for name, pids in (("front", [front]), ("daemons", daemons)):
        out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--children", "--sort", "sym", "-g", "none",
                              "--pid", ",".join(map(str, pids))], capture_output=True, text=True).stdout
        md.append("Kernel entry points in the %s (inclusive share of all samples):\n\n```" % name)
        for line in out.splitlines():
            m = re.match(r"^\s+([\d.]+)%\s+([\d.]+)%\s+\[k\]\s+(\S+)", line)
            if m and m.group(3) in keys:
                md.append("%7s%%  %s" % (m.group(1), m.group(3)))
        md.append("```\n")
    md += classify_samples(data, front, daemons)
    for name, pids in (("front", [front]), ("daemons", daemons)):
        md.append("Top symbols in the %s (share of all samples):\n\n```" % name)
        md += report(["--pid", ",".join(map(str, pids)), "--sort", "dso,sym", "-g", "none"], 0.3)[:40]
        md.append("```\n")


def classify_samples(data, front, daemons):
    """Each perf sample of the front and of the daemons by where it is: user
    space (by object), or in the kernel by system call and socket family."""
    out = subprocess.run(["perf", "script", "-i", data, "-F", "pid,ip,sym,dso"], capture_output=True, text=True).stdout
    groups = {"front": {}, "daemons": {}}
    totals = {"front": 0, "daemons": 0}
    who = None
    frames = []

    def flush():
        if who is None or not frames:
            return
        syscall = None
        for f in frames:
            m = re.search(r"__x64_sys_(\w+)", f)
            if m:
                syscall = m.group(1)
                break
        text = " ".join(frames)
        if "kernel.kallsyms" not in frames[0]:
            m = re.search(r"\(([^)]*)\)\s*$", frames[0])
            cat = "user: " + os.path.basename(m.group(1)) if m else "user"
        elif syscall:
            fam = " (unix)" if " unix_" in text else " (tcp)" if (" tcp_" in text or " inet_" in text) else ""
            cat = "kernel: %s%s" % (syscall, fam)
        elif "irq" in text or "softirq" in text:
            cat = "kernel: interrupts"
        else:
            cat = "kernel: other (scheduler, page faults, ...)"
        g = groups[who]
        g[cat] = g.get(cat, 0) + 1
        totals[who] += 1

    for line in out.splitlines():
        if not line.strip():
            flush()
            who, frames = None, []
            continue
        if not line.startswith((" ", "\t")):
            flush()
            frames = []
            try:
                pid = int(line.split()[0])
            except (ValueError, IndexError):
                who = None
                continue
            who = "front" if pid == front else "daemons" if pid in daemons else None
            continue
        frames.append(line.strip())
    flush()
    md = ["Where each process's samples are (share of that process's samples; kernel samples by system call, "
          "and by socket family where the call chain shows it):\n"]
    for name in ("front", "daemons"):
        md.append("| %s: where | share |" % name)
        md.append("|---|---:|")
        for cat, n in sorted(groups[name].items(), key=lambda kv: -kv[1])[:12]:
            md.append("| %s | %.1f%% |" % (cat, 100.0 * n / max(1, totals[name])))
        md.append("")
    return md


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
        fixed_load(ox.port, 64, 1000)  # warm-up
        ox.settle()
        pid = ox.pid if who == "front" else int(re.findall(r"daemon process started [^\n]*pid=(\d+)", open(ox.log_path).read())[-1])
        # callgrind handles a monitor command (vgdb, as callgrind_control does; it cannot
        # find the daemon by its rewritten title) when the process next runs:
        # zero before the counted load, dump after it (one extra request wakes it)
        z = subprocess.Popen(["vgdb", "--pid=%d" % pid, "zero"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        bench.http_get(ox.port, "/hello", timeout=60)
        z.wait(timeout=120)
        done, secs = fixed_load(ox.port, 64, n)
        d = subprocess.Popen(["vgdb", "--pid=%d" % pid, "dump"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        bench.http_get(ox.port, "/hello", timeout=60)
        d.wait(timeout=120)
        res = {"requests": done + 2}  # the wake-up requests ran under the counters too
        log("%s: %d requests in %.1f s under callgrind" % (who, done, secs))
    finally:
        ox.stop()
    base = os.path.join(OUT, "callgrind.%s.%d" % (who, pid))
    dump = base + ".1" if os.path.exists(base + ".1") else base  # the -d dump, else the at-exit one
    ir = total_ir(dump)
    reqs = res["requests"]
    md.append("### %s: %.0f instructions per request (%d requests, %s)\n" % (who, ir / reqs, reqs, os.path.basename(dump)))
    self_cost, incl = callgrind_costs(dump)
    for title, table in (("Self", self_cost), ("Inclusive", incl)):
        md.append("%s cost, top functions (instructions per request, share of the total):\n\n```" % title)
        for name, cost in sorted(table.items(), key=lambda kv: -kv[1])[:30]:
            md.append("%9.0f  %5.1f%%  %s" % (cost / reqs, 100.0 * cost / ir if ir else 0, name[:150]))
        md.append("```\n")


def callgrind_costs(path):
    """Self and inclusive Ir per function from a callgrind dump (positions:
    line, events: Ir). callgrind_annotate 3.19 attributes everything to
    `clone` on these dumps, hence this small reader."""
    names = {"fn": {}, "ob": {}}
    self_cost, calls_cost = {}, {}
    fn = ob = None
    cfn = None
    after_calls = False

    def name(kind, value):
        m = re.match(r"^\((\d+)\)(?: (.*))?$", value)
        if not m:
            return value
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1), value)

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if after_calls:
                    calls_cost[fn] = calls_cost.get(fn, 0) + cost
                    after_calls = False
                else:
                    self_cost[fn] = self_cost.get(fn, 0) + cost
                continue
            key, _, value = line.partition("=")
            if key == "ob":
                ob = name("ob", value)
            elif key == "fn":
                fn = "%s [%s]" % (name("fn", value), os.path.basename(ob or "?"))
            elif key == "cob":
                name("ob", value)
            elif key == "cfn":
                cfn = name("fn", value)
            elif key == "calls":
                after_calls = True
    incl = {k: self_cost.get(k, 0) + calls_cost.get(k, 0) for k in set(self_cost) | set(calls_cost)}
    return self_cost, incl


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
    ap.add_argument("--only", default=DEFAULT_STEPS)
    ap.add_argument("--requests", type=int, default=5000, help="requests counted under callgrind")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    steps = args.only.split(",")
    md = ["# oxwsgi profile, hello workload (%s, binary %s, commit %s)\n" % (
        time.strftime("%Y-%m-%d"), args.oxwsgi_bin, bench.git_commit())]
    if "cpu" in steps:
        log("cpu")
        step_cpu(args, md)
    if "peers" in steps:
        log("peers")
        step_peers(args, md)
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
    path = os.path.join(OUT, "summary.md" if args.only == DEFAULT_STEPS else "summary-%s.md" % "-".join(steps))
    with open(path, "w") as f:
        f.write("\n".join(md) + "\n")
    log("wrote %s" % path)


if __name__ == "__main__":
    main()
