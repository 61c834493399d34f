"""Many mostly idle keep-alive connections (bench workload "idle2000").

Opens N connections to HOST:PORT, sends one GET on each and keeps every
connection open, sending one more GET every INTERVAL seconds (with jitter) for
DURATION seconds. A connection the server closes is counted and reopened.

Prints "READY <json>" once every connection got its first answer (or after
--ready-timeout), and at the end one line "IDLEJSON <json>" with:
  conns            connections asked for
  answered         connections that got at least one answer
  never_answered   connections that never got any answer (left unserved)
  reconnects       times the server closed a connection and it was reopened
  failed_connects  connect() failures
  requests, p50_ms, p99_ms, max_ms   for the idle connections' own requests
Stops by itself after DURATION seconds (plus the ready timeout).

stdlib only: python3 bench/idle_clients.py --port 8000 --conns 2000 --duration 10
"""

import argparse
import asyncio
import json
import random
import sys
import time


class Stats:
    def __init__(self):
        self.latencies = []
        self.reconnects = 0
        self.failed_connects = 0
        self.answered = set()
        self.first_done = 0


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return head


async def one_conn(i, args, stats, state, first_event):
    request = (
        "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: bench-idle\r\n\r\n"
        % (args.path, args.host, args.port)
    ).encode()
    first = True
    reader = writer = None
    while time.monotonic() < state["stop_at"]:
        if writer is None:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(args.host, args.port), timeout=5
                )
            except (OSError, asyncio.TimeoutError):
                stats.failed_connects += 1
                await asyncio.sleep(0.5)
                continue
        t0 = time.monotonic()
        try:
            writer.write(request)
            remaining = max(0.1, state["stop_at"] - t0)
            await asyncio.wait_for(read_response(reader), timeout=remaining)
        except asyncio.TimeoutError:
            break  # no answer before the end: stays unanswered
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            writer.close()
            writer = None
            stats.reconnects += 1
            continue
        stats.latencies.append(time.monotonic() - t0)
        stats.answered.add(i)
        if first:
            first = False
            stats.first_done += 1
            if stats.first_done >= args.conns:
                first_event.set()
        delay = args.interval * random.uniform(0.5, 1.5)
        await asyncio.sleep(min(delay, max(0.0, state["stop_at"] - time.monotonic())))
    if writer is not None:
        writer.close()


async def main_async(args):
    stats = Stats()
    first_event = asyncio.Event()
    start = time.monotonic()
    # Upper bound until every connection is served; then DURATION from there.
    state = {"stop_at": start + args.ready_timeout + args.duration}
    tasks = []
    for i in range(args.conns):
        tasks.append(asyncio.create_task(one_conn(i, args, stats, state, first_event)))
        if i % 100 == 99:
            await asyncio.sleep(0.01)  # do not flood the listen backlog at once
    try:
        await asyncio.wait_for(first_event.wait(), timeout=args.ready_timeout)
    except asyncio.TimeoutError:
        pass
    state["stop_at"] = time.monotonic() + args.duration
    print("READY " + json.dumps({"answered": len(stats.answered), "after_s": round(time.monotonic() - start, 2)}), flush=True)
    await asyncio.sleep(args.duration)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lat = sorted(stats.latencies)

    def pct(p):
        if not lat:
            return None
        return round(lat[min(len(lat) - 1, int(len(lat) * p / 100))] * 1000, 2)

    out = {
        "conns": args.conns,
        "answered": len(stats.answered),
        "never_answered": args.conns - len(stats.answered),
        "reconnects": stats.reconnects,
        "failed_connects": stats.failed_connects,
        "requests": len(lat),
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": round(lat[-1] * 1000, 2) if lat else None,
    }
    print("IDLEJSON " + json.dumps(out), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/hello")
    p.add_argument("--conns", type=int, default=2000)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between requests per connection")
    p.add_argument("--duration", type=float, default=10.0, help="seconds to keep going once ready")
    p.add_argument("--ready-timeout", type=float, default=10.0)
    args = p.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("idle_clients: loopback only")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
