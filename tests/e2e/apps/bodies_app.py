"""Large response bodies whose bytes depend on the request, so a body that
came out of the wrong shared-memory chunk (or a chunk reused too early)
shows up as a wrong digest.

  /whole?seed=S&size=N     one bytes object of N bytes (the whole-body path)
  /pieces?seed=S&size=N    the same bytes yielded in 300 000-byte pieces
  /hello                   b"hello"
"""

import hashlib
from urllib.parse import parse_qs


def body_for(seed: str, size: int) -> bytes:
    block = hashlib.sha256(seed.encode()).digest() * 2048  # 64 KiB, seed-specific
    out = bytearray()
    i = 0
    while len(out) < size:
        out += i.to_bytes(4, "big") + block[4:]
        i += 1
    return bytes(out[:size])


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]
    seed = query.get("seed", ["0"])[0]
    size = int(query.get("size", ["1048576"])[0])
    data = body_for(seed, size)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(size))])
    if path == "/pieces":
        return [data[at:at + 300_000] for at in range(0, size, 300_000)]
    return [data]
