"""Large response bodies through the shared body arena (each daemon
process's memfd of chunks, docs/design.md §9): many concurrent bodies each
arrive intact, clients that read slowly hold chunks while others are still
served (the daemon then falls back to the channel), and the same holds with
the arena turned off."""

from __future__ import annotations

import hashlib
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from oxserver import APPS

sys.path.insert(0, str(APPS))
from bodies_app import body_for  # noqa: E402

MiB = 1 << 20


def config(threads=8):
    return {
        "groups": {"bodies": {"processes": 2, "threads": threads}},
        "mount": [{"path": "/b", "script": str(APPS / "bodies_app.py"), "group": "bodies"}],
    }


def fetch(srv, route: str, seed: str, size: int) -> tuple[str, int, str]:
    r = requests.get(srv.url(f"/b/{route}?seed={seed}&size={size}"), timeout=60)
    return seed, r.status_code, hashlib.sha256(r.content).hexdigest()


def check_many(srv, route: str, count: int, size: int):
    seeds = [f"{route}-{i}" for i in range(count)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda s: fetch(srv, route, s, size), seeds))
    for seed, status, digest in results:
        assert status == 200, seed
        assert digest == hashlib.sha256(body_for(seed, size)).hexdigest(), f"body of {seed} is wrong"


@pytest.fixture(scope="module", params=["arena", "no-arena"])
def bodies(servers, request):
    env = {"OXWSGI_BODY_ARENA_CHUNKS": "0"} if request.param == "no-arena" else None
    return servers(f"bodies-{request.param}").start_run(config(), ready=["/b/hello"], env=env)


@pytest.mark.parametrize("route", ["whole", "pieces"])
def test_concurrent_large_bodies_arrive_intact(bodies, route):
    # 48 bodies of 1.3 MiB over 16 connections: more than the arena holds
    # at once, so chunks are reused and the channel fallback runs too.
    check_many(bodies, route, 48, 1_300_000)


def test_odd_sizes_around_the_chunk_size(bodies):
    for size in (64 * 1024 - 1, 64 * 1024 + 1, 256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1, 3 * MiB + 7):
        seed, status, digest = fetch(bodies, "whole", f"odd-{size}", size)
        assert status == 200
        assert digest == hashlib.sha256(body_for(seed, size)).hexdigest(), size


def test_slow_readers_hold_chunks_and_others_are_still_served(bodies):
    """Clients that send a request for 8 MiB and read nothing for a while:
    the front holds what the socket does not take (chunks among it).
    Others still get intact bodies meanwhile; then the slow ones read
    theirs, intact too. (A receive buffer of a few KiB would make loopback
    TCP crawl at one window per delayed ACK: 64 KiB keeps it a test of the
    server.)"""
    size = 8 * MiB
    slow = []
    try:
        for i in range(6):
            s = socket.create_connection(("127.0.0.1", bodies.port), timeout=60)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.sendall(f"GET /b/whole?seed=slow-{i}&size={size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            slow.append(s)
        # Give the daemons time to answer into the front's buffers.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            r = requests.get(bodies.url("/b/hello"), timeout=30)
            assert r.status_code == 200
            time.sleep(0.2)
        check_many(bodies, "whole", 16, 1_300_000)
        for i, s in enumerate(slow):
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            while len(body) < size:
                piece = s.recv(1 << 20)
                assert piece, f"slow-{i}: connection closed after {len(body)} bytes"
                body += piece
            assert hashlib.sha256(body[:size]).digest() == hashlib.sha256(body_for(f"slow-{i}", size)).digest()
    finally:
        for s in slow:
            s.close()
