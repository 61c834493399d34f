"""The HTTP/1.1 request corpus (../shared/corpus/http, or OXWSGI_CORPUS),
sent over real sockets to oxwsgi serving a recording app
(tests/e2e/apps/recorder.py) mounted at "/".

Rules: the corpus README ("Running it against a server over the network").
Every case runs in two write modes (all bytes at once; in small pieces) and,
where one of its HTTP/1.1 requests has no Host header, in two variants:

* `raw`  — the bytes as they are. DESIGN §7: an HTTP/1.1 request without
  Host is answered 400 (connection closed) before any app is called, so a
  case whose request lacks Host expects that 400 at that request;
* `host` — the same bytes with `Host: corpus.test` added after each such
  request line, so the case tests what it was written for.

What each case must produce is a list of acceptable outcomes:

* Serve(reqs)     — the app is called once per request, in order, and sees
                    method, target (REQUEST_URI raw; PATH_INFO percent-decoded;
                    QUERY_STRING), SERVER_PROTOCOL, headers (DESIGN §5 mapping:
                    names with anything but letters/digits/"-" dropped,
                    repeated fields joined with ", ", cookies with "; "), and
                    exactly the body; one 200 per request, in order, none for
                    trailing bytes; closed after a non-persistent request.
* Reject(codes)   — a response with one of the codes (or, with no response,
                    a closed connection); the app is not called (for that
                    request); nothing after it becomes a request; a 400 closes
                    the connection (DESIGN §7).
* BodyReject      — a chunked-body error: no 2xx, connection closed; the app
                    not called, or called and told about the bad body.
* Accept(...)     — an `invalid/` case that oxwsgi legitimately accepts
                    (limits larger than gunicorn's defaults, gunicorn-only
                    options): called once, 200, with the given checks.

The default is Serve for valid cases, Reject(any 4xx) for invalid cases
failing in the head, BodyReject for those failing in the body. Every case
that differs from that default is listed in VALID_EXPECT / INVALID_EXPECT
below with the reason. Cases that oxwsgi does not (yet) pass go into
KNOWN_FAILURES (xfail, strict) so they stay visible.

After every case the server must still be healthy (front alive, the same
daemon process, a normal request on a fresh connection answered).
Where the corpus is: OXWSGI_CORPUS, else ../shared/corpus/http next to the
project. With OXWSGI_CORPUS unset and no corpus at the default place (a
fresh clone outside this layout) the whole module is skipped, with the
reason in the pytest summary; an OXWSGI_CORPUS that names no directory is
a failure (`test_corpus_present`), so CI, which sets it (scripts/test.sh),
can never skip the corpus by accident.
Set OXWSGI_CORPUS_RESULTS=path.json to get the per-case results as JSON
(tests/e2e/corpus_report.py turns them into docs/corpus.md).
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest

import oxhttp
from oxserver import APPS, REPO

CORPUS_ENV = os.environ.get("OXWSGI_CORPUS") or None
CORPUS = Path(CORPUS_ENV or (REPO.parent / "shared" / "corpus" / "http"))
if CORPUS_ENV is None and not CORPUS.is_dir():
    pytestmark = pytest.mark.skip(
        reason=f"HTTP corpus not found at {CORPUS} (set OXWSGI_CORPUS to run the corpus tests)"
    )
HOST_VALUE = "corpus.test"
FOUR_XX = frozenset(range(400, 500))
RESPONSE_TIMEOUT = 5.0  # one response (the server may legitimately wait for more input)
CLOSE_TIMEOUT = 3.0  # waiting for a close the outcome requires
IDLE_CHECK = 0.2  # looking for unexpected extra responses on a persistent connection
PIECES = (1, 3, 2, 7, 5, 11, 64)


# ================================================================ outcomes
@dataclass
class Serve:
    reqs: list
    why: str = ""

    def n(self):
        return len(self.reqs)


@dataclass
class Reject:
    codes: frozenset = FOUR_XX
    prefix: list = field(default_factory=list)  # requests served before the rejected one
    why: str = ""

    def n(self):
        return len(self.prefix) + 1


@dataclass
class BodyReject:
    why: str = ""

    def n(self):
        return 1


@dataclass
class Accept:
    """An invalid-folder case accepted: one call, 200, checks on the record."""

    body: bytes | None = None
    content_length: str | None = None
    check: object = None  # callable(record) -> list of problems
    why: str = ""

    def n(self):
        return 1


@dataclass
class IncompleteBody:
    """Content-Length promises more than is sent (valid/099), then EOF."""

    why: str = ""

    def n(self):
        return 1


@dataclass
class AnswerOrServe:
    """The server may answer itself (any status, app not called), or call
    the app with the request (checked as Serve)."""

    reqs: list
    why: str = ""

    def n(self):
        return 1


# ---------------------------------------------------------------- builders
def serve(why=""):
    return lambda reqs: [Serve(reqs, why)]


def serve_or(*codes, why=""):
    return lambda reqs: [Serve(reqs, why), Reject(frozenset(codes), why=why)]


def reject(*codes, why=""):
    return lambda reqs: [Reject(frozenset(codes) if codes else FOUR_XX, why=why)]


def accept(why="", alt_codes=(), body_reject=False, **kw):
    def build(reqs):
        out = [Accept(why=why, **kw)]
        if alt_codes:
            out.append(Reject(frozenset(alt_codes), why=why))
        if body_reject:
            out.append(BodyReject(why=why))
        return out

    return build


def _method_is(m):
    return lambda rec: [] if rec["method"] == m else [f"method {rec['method']!r} != {m!r}"]


def _trailer_safe(rec):
    p = []
    if rec.get("content_length") == "99":
        p.append("a trailer Content-Length changed CONTENT_LENGTH")
    if rec["http"].get("HTTP_HOST") != "example.com":
        p.append(f"HTTP_HOST is {rec['http'].get('HTTP_HOST')!r}, a trailer must not change it")
    return p


def _no_underscore_te(rec):
    te = rec["http"].get("HTTP_TRANSFER_ENCODING")
    return [] if te in (None, "chunked") else [f"HTTP_TRANSFER_ENCODING={te!r}: Transfer_Encoding leaked in"]


# ================================================================ expectation tables
# valid/ cases whose expectation is not plain Serve(requests from the JSON).
VALID_EXPECT = {
    # Target characters outside RFC 3986: gunicorn passes them on; a strict
    # parser may answer 400 (corpus README, tags fragment-in-target,
    # target-outside-rfc3986). REQUEST_URI may keep or drop the fragment.
    "005": serve_or(400, why="fragment in target"),
    "014": serve_or(400, why='" in target'),
    "027": serve_or(400, why="raw non-ASCII bytes in target"),
    # rfc-conflict: Transfer-Encoding: identity with Content-Length and no
    # final chunked. RFC 9112 §6.3 requires 400 (501 tolerated: identity is
    # not a coding oxwsgi implements).
    "009": reject(400, 501, why="TE without final chunked + CL: RFC 9112 §6.3 → 400"),
    # exceeds-gunicorn-default-limits: request line 8,189 bytes is within
    # limit-request-line 8190, but the 8,204-byte header line is over
    # limit-request-field-size 8190 (DESIGN §3) → 431.
    "024": reject(431, why="8,204-byte header line > limit-request-field-size 8190"),
    "026": reject(431, why="8,204-byte header line > limit-request-field-size 8190"),
    # non-chunked-transfer-coding: a coding before the final chunked that the
    # server does not implement; RFC 9112 §6.1: 501 is also right.
    "025": serve_or(501, why="gzip before chunked: serve the de-chunked bytes or 501"),
    "025_line": serve_or(501, why="gzip before chunked: serve the de-chunked bytes or 501"),
    "029": serve_or(501, why="obsolete identity before chunked: serve or 501"),
    "030": serve_or(501, why="obsolete identity before chunked: serve or 501"),
    "rfc9112_smuggle_gzip_chunked_01": serve_or(501, why="gzip, chunked: serve or 501"),
    "rfc9112_smuggle_te_identity_chunked_01": serve_or(501, why="identity, chunked: serve or 501"),
    # rfc-conflict: whitespace before the colon, only accepted under
    # gunicorn's deprecated strip_header_spaces; RFC 9112 §5.1 → 400
    # (invalid/020 is the same bytes).
    "028": reject(400, why="space between field name and colon: RFC 9112 §5.1 → 400"),
    # unconventional-method: valid token methods; a server may answer 501.
    "031": serve_or(501, why="token method -BLARGH"),
    "031compat2": serve_or(501, why="token method -blargh"),
    # gunicorn-transforms-request: casefold_http_method upper-cases; an
    # ordinary server passes the wire method '-blargh' (as 031compat2).
    "031compat": None,  # filled below from 031compat2's requests
    # obs-fold: RFC 9112 §5.2 allows rejecting (400) or unfolding with SP.
    "compat_obs_fold": serve_or(400, why="obs-fold: unfold or 400"),
    "compat_obs_fold_huge": serve_or(400, why="obs-fold: unfold or 400"),
    # PROXY protocol preambles: oxwsgi has no PROXY protocol support, so the
    # preamble is not a request line and must be rejected (no app call).
    "pp_01": reject(why="PROXY v1 preamble, PROXY protocol not supported"),
    "pp_02": reject(why="PROXY v1 preamble, PROXY protocol not supported"),
    "pp_04": reject(why="PROXY v2 preamble, PROXY protocol not supported"),
    "pp_05": reject(why="PROXY v2 preamble, PROXY protocol not supported"),
    # content-length-exceeds-data: sent, then half-closed; the short body must
    # never be presented to the app as complete.
    "099": lambda reqs: [IncompleteBody(why="Content-Length 17914, 8599 bytes, EOF")],
    # asterisk-form: the server may answer OPTIONS * itself.
    "rfc9112_target_asterisk_options_01": lambda reqs: [AnswerOrServe(reqs, why="OPTIONS *")],
    # authority-form: oxwsgi does not tunnel → 400/405/501, app not called.
    "rfc9112_target_authority_connect_01": reject(400, 405, 501, why="CONNECT without tunnelling"),
    "rfc9112_target_authority_ipv6_01": reject(400, 405, 501, why="CONNECT without tunnelling"),
    # absolute-form (rfc9112_target_absolute_*): must be served, PATH_INFO
    # from the path; REQUEST_URI may be the raw target or path+query
    # (handled in match_record). 040 / 040_compat: names with "_" are
    # dropped by DESIGN §5 (as gunicorn's default header_map=drop), so both
    # expect the app to see CONTENT_LENGTH 7 and body "tricked" (the header
    # filter in expected_environ applies the DESIGN rule) — plain Serve.
}

# invalid/ cases whose expectation is not the default (Reject any 4xx for
# fails_in=head, BodyReject for fails_in=body).
INVALID_EXPECT = {
    # gunicorn-default-limit: oxwsgi's limits are Apache's (request line 8190,
    # header line 8190, 100 fields), larger than gunicorn's 4094 line limit.
    "006": accept(why="4,112-byte request line ≤ limit-request-line 8190", check=_method_is("PUT")),
    "007": reject(431, why="8,203-byte header line > limit-request-field-size 8190"),
    "008": accept(why="8,189-byte header line ≤ 8190", check=_method_is("PUT"), body=b""),
    "009": reject(400, 431, why="103 header fields > limit-request-fields 100 (Apache: 400, DESIGN: 431)"),
    "017": accept(why="8,189-byte header line ≤ 8190"),
    "limit_header_default_01": accept(why="8,190-byte header line = limit-request-field-size (accepted, as Apache)"),
    # gunicorn-cfg-limit: only invalid under tiny gunicorn limits.
    "010": accept(why="limit_request_field_size=10 in gunicorn only"),
    "011": accept(why="limit_request_fields=2 in gunicorn only"),
    "012": accept(why="limit_request_field_size=98 in gunicorn only"),
    "013": accept(why="tiny limit in gunicorn only; obs-fold: unfold or 400", alt_codes=(400,)),
    # gunicorn-feature
    "019": accept(why="no secure-scheme-headers check in oxwsgi: headers reach the app"),
    "040": accept(why="header_map=refuse in gunicorn only; '_' names dropped (DESIGN §5)", body=b"tricked",
                  content_length="7", check=_no_underscore_te),
    "chunked_07": accept(why="header_map=refuse in gunicorn only; Transfer_Encoding dropped, chunked framing",
                         body=b"hello world", check=_no_underscore_te),
    # stricter-than-rfc: acceptance allowed if framing/routing is unaffected.
    "003c": accept(why="'-bl' is an RFC 9110 token method", check=_method_is("-bl"), alt_codes=(400, 501)),
    "041": accept(why="repeated Content-Type: accept or 400", alt_codes=(400,)),
    "obs_fold_01": accept(why="obs-fold: unfold or 400", alt_codes=(400,)),
    "rfc9112_smuggle_cl_list_form_01": accept(why="'5, 5': identical values may be accepted", body=b"hello",
                                              alt_codes=(400,)),
    "rfc9110_trailer_forbidden_cl_01": accept(why="forbidden trailer field: discard or reject", body=b"hello",
                                              check=_trailer_safe, body_reject=True),
    "rfc9110_trailer_forbidden_host_01": accept(why="forbidden trailer field: discard or reject", body=b"hello",
                                                check=_trailer_safe, body_reject=True),
    "rfc9110_trailer_forbidden_te_01": accept(why="forbidden trailer field: discard or reject", body=b"hello",
                                              check=_trailer_safe, body_reject=True),
    # DESIGN §7: conflicting Content-Length / Transfer-Encoding → 400.
    "chunked_02": reject(400, why="CL + TE: DESIGN §7 → 400"),
    "rfc9112_smuggle_cl_te_chunked_01": reject(400, why="CL + TE: DESIGN §7 → 400"),
    # RFC 9112 §3.2: more than one Host → 400.
    "042": reject(400, why="two Host fields: RFC 9112 §3.2 → 400"),
    # Transfer-Encoding where chunked is not (only once) last: RFC 9112 §6.3
    # → 400; 501 tolerated for the codings oxwsgi does not implement.
    "chunked_03": reject(400, 501, why="chunked applied twice"),
    "chunked_04": reject(400, 501, why="chunked applied twice"),
    "chunked_06": reject(400, 501, why="chunked not last"),
    "chunked_08": reject(400, 501, why="chunked not last"),
    "chunked_05": reject(400, why="Transfer-Encoding in HTTP/1.0: RFC 9112 §6.1, faulty framing"),
    # 505-acceptable
    "version_02": reject(400, 505, why="HTTP/2.0 on an HTTP/1 request line"),
}

# Cases oxwsgi does not pass yet: "kind/name" (every variant and mode),
# "kind/name/variant", or a full test id "kind/name/variant/mode".
# Each is a server bug or a deviation from DESIGN.md, seen with the build of
# this commit; remove the entry when it is fixed (strict xfail: an
# unexpected pass fails the run, so the table cannot go stale).
KNOWN_FAILURES: dict[str, str] = {
}


# ================================================================ loading
@dataclass
class Case:
    kind: str
    name: str
    data: bytes
    meta: dict

    @property
    def tags(self):
        return self.meta.get("tags", [])

    @property
    def key(self):
        return f"{self.kind}/{self.name}"


def load_cases() -> list[Case]:
    cases = []
    for kind in ("valid", "invalid"):
        for j in sorted((CORPUS / kind).glob("*.json")):
            cases.append(Case(kind, j.stem, j.with_suffix(".http").read_bytes(), json.loads(j.read_text())))
    return cases


CASES = load_cases() if CORPUS.is_dir() else []


def _has_host(headers) -> bool:
    return any(n.upper() == "HOST" for n, _ in headers)


def valid_requests(case: Case) -> list[dict]:
    if case.name == "031compat":
        other = json.loads((CORPUS / "valid" / "031compat2.json").read_text())
        return other["requests"]
    return case.meta["requests"]


def missing_host_index(case: Case):
    """Index of the first HTTP/1.1 request without Host, or None."""
    if case.kind == "valid":
        for i, r in enumerate(case.meta["requests"]):
            if r["version"] == [1, 1] and not _has_host(r["headers"]):
                return i
        return None
    head = case.data.split(b"\r\n\r\n", 1)[0]
    m = re.match(rb"[^\r\n]* HTTP/1\.1\r\n", case.data)
    if m and not re.search(rb"(?im)^host[ \t]*:", head):
        return 0
    return None


def add_host(case: Case) -> bytes:
    """The case's bytes with Host added after every request line that needs it."""
    host = f"Host: {HOST_VALUE}\r\n".encode()
    data = case.data
    if case.kind == "invalid":
        m = re.match(rb"[^\r\n]* HTTP/1\.1\r\n", data)
        return data[: m.end()] + host + data[m.end():]
    out = bytearray()
    pos = 0
    for r in valid_requests(case):
        line = f"{r['method']} {r['uri']} HTTP/{r['version'][0]}.{r['version'][1]}".encode("latin-1")
        i = data.index(line, pos)
        j = data.index(b"\n", i) + 1
        out += data[pos:j]
        if r["version"] == [1, 1] and not _has_host(r["headers"]):
            out += host
        pos = j
    out += data[pos:]
    return bytes(out)


def host_reqs(reqs: list[dict]) -> list[dict]:
    out = []
    for r in reqs:
        if r["version"] == [1, 1] and not _has_host(r["headers"]):
            r = dict(r, headers=[["HOST", HOST_VALUE]] + list(r["headers"]))
        out.append(r)
    return out


def outcomes_for(case: Case, variant: str) -> list:
    if case.kind == "valid":
        reqs = valid_requests(case)
        if variant == "host":
            reqs = host_reqs(reqs)
        build = VALID_EXPECT.get(case.name) or serve()
        if case.name == "031compat":
            build = serve_or(501, why="ordinary server passes the wire method '-blargh' (as 031compat2)")
    else:
        reqs = []
        build = INVALID_EXPECT.get(case.name)
        if build is None:
            build = reject(why="invalid head") if case.meta["fails_in"] == "head" else (
                lambda reqs: [BodyReject(why="invalid chunked body")])
    outs = build(reqs)
    if variant == "raw":
        idx = missing_host_index(case)
        if idx is not None:
            # DESIGN §7: HTTP/1.1 without Host → 400 (RFC 9112 §3.2).
            prefix = valid_requests(case)[:idx] if case.kind == "valid" else []
            new = []
            for o in outs:
                if isinstance(o, Reject):
                    new.append(Reject(o.codes | {400}, o.prefix, o.why))
                elif isinstance(o, (BodyReject, IncompleteBody)):
                    new.append(o)
                else:
                    new.append(Reject(frozenset({400}), prefix, "HTTP/1.1 without Host → 400 (DESIGN §7)"))
            outs = new
    return outs


def variants(case: Case):
    return ["raw", "host"] if missing_host_index(case) is not None else ["raw"]


# For a server without PROXY protocol support these files are incomplete
# input: one malformed line and no blank line ending a request head, so a
# server may legitimately keep waiting for the rest (hyper re-parses a
# partial head only once a blank line arrives: sent in pieces, the line can
# sit there until the header-read timeout). Half-close after sending, as the
# README says for incomplete-needs-eof: the server must then close without
# calling the app.
HALF_CLOSE = {"invalid/pp_01", "invalid/pp_02", "invalid/pp_03"}


def needs_half_close(case: Case) -> bool:
    return "incomplete-needs-eof" in case.tags or case.key in ("valid/099", *HALF_CLOSE)


# ================================================================ record matching
def expected_environ(req: dict) -> tuple[dict, set]:
    """(expected CGI variables from the headers, lenient keys) per DESIGN §5."""
    exp: dict[str, str] = {}
    lenient = set()
    te = any(n.upper() == "TRANSFER-ENCODING" for n, _ in req["headers"])
    for name, value in req["headers"]:
        if not re.fullmatch(r"[A-Za-z0-9-]+", name):
            continue  # dropped (DESIGN §5)
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        if key == "HTTP_PROXY":
            continue
        if key in exp:
            exp[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
        else:
            exp[key] = value
    if te:
        # A de-chunked body: the server may or may not pass the framing
        # header on, and may give the decoded length.
        lenient |= {"HTTP_TRANSFER_ENCODING", "CONTENT_LENGTH"}
    return exp, lenient


def _persistent(req: dict) -> bool:
    conn = ",".join(v for n, v in req["headers"] if n.upper() == "CONNECTION").lower()
    if req["version"] == [1, 0]:
        return "keep-alive" in conn
    return "close" not in conn


def match_record(rec: dict, req: dict, tags) -> list[str]:
    p = []
    body = base64.b64decode(req["body"])
    if rec["method"] != req["method"]:
        p.append(f"method {rec['method']!r} != {req['method']!r}")
    parts = req["uri_parts"]
    uri_ok = {req["uri"]}
    if "absolute-form" in tags:
        uri_ok.add(parts["path"] + ("?" + parts["query"] if parts["query"] else ""))
    if parts.get("fragment"):
        uri_ok.add(req["uri"].split("#", 1)[0])
    if rec["request_uri"] not in uri_ok:
        p.append(f"REQUEST_URI {rec['request_uri']!r} not in {sorted(uri_ok)!r}")
    want_path = unquote_to_bytes(parts["path"].encode("latin-1")).decode("latin-1")
    got_path = (rec["script_name"] or "") + (rec["path_info"] or "")
    if got_path != want_path:
        p.append(f"SCRIPT_NAME+PATH_INFO {got_path!r} != {want_path!r}")
    if rec["query_string"] != parts["query"]:
        p.append(f"QUERY_STRING {rec['query_string']!r} != {parts['query']!r}")
    proto = f"HTTP/{req['version'][0]}.{req['version'][1]}"
    if rec["protocol"] != proto:
        p.append(f"SERVER_PROTOCOL {rec['protocol']!r} != {proto!r}")
    exp, lenient = expected_environ(req)
    got = dict(rec["http"])
    if rec.get("content_type") not in (None, ""):
        got["CONTENT_TYPE"] = rec["content_type"]
    if rec.get("content_length") not in (None, ""):
        got["CONTENT_LENGTH"] = rec["content_length"]
    for k, v in exp.items():
        if k in lenient:
            continue
        if got.get(k) != v:
            p.append(f"{k}: got {got.get(k)!r}, want {v!r}")
    for k, v in got.items():
        if k in exp or k in lenient:
            if k in lenient and k == "CONTENT_LENGTH" and v not in (str(len(body)), exp.get(k)):
                p.append(f"CONTENT_LENGTH {v!r} for a {len(body)}-byte chunked body")
            if k in lenient and k == "HTTP_TRANSFER_ENCODING" and v != exp.get(k):
                p.append(f"HTTP_TRANSFER_ENCODING {v!r} != {exp.get(k)!r}")
            continue
        if k == "CONTENT_LENGTH" and v == "0" and not body:
            continue
        p.append(f"unexpected {k}={v!r}")
    got_body = base64.b64decode(rec["body_b64"])
    if rec.get("body_error"):
        p.append(f"body read failed: {rec['body_error']}")
    if got_body != body:
        p.append(f"body {got_body[:80]!r}... ({len(got_body)} B) != {body[:80]!r}... ({len(body)} B)")
    return p


# ================================================================ running a case
@dataclass
class Observed:
    responses: list
    closed: bool
    records: list
    send_error: str | None = None
    read_error: str | None = None
    extra_bytes: bytes = b""

    def summary(self):
        rs = [f"{r.status}{'' if r.complete else '(incomplete)'}" for r in self.responses]
        return (f"responses={rs} closed={self.closed} app_calls={len(self.records)}"
                f"{' send_error=' + self.send_error if self.send_error else ''}"
                f"{' read_error=' + self.read_error if self.read_error else ''}"
                f"{' extra=' + repr(self.extra_bytes[:60]) if self.extra_bytes else ''}")


def _label(o) -> str:
    if isinstance(o, Reject):
        codes = "4xx" if o.codes == FOUR_XX else ("4xx+" + ",".join(map(str, sorted(o.codes - FOUR_XX)))
                                                   if o.codes > FOUR_XX else ",".join(map(str, sorted(o.codes))))
        return f"Reject({codes})" + (f" after {len(o.prefix)} served" if o.prefix else "")
    return type(o).__name__


def calls(port, since=0):
    r = oxhttp.get(port, f"/__calls__?since={since}", timeout=30)
    assert r.status == 200, f"recording app unreachable after the case: {r!r}"
    return r.json()


def run_case(port: int, data: bytes, outs: list, mode: str, half_close: bool) -> Observed:
    n_max = max(o.n() for o in outs)
    responses = []
    send_error = read_error = None
    with oxhttp.Conn(port, timeout=RESPONSE_TIMEOUT) as c:
        try:
            if mode == "whole":
                c.send(data)
            else:
                c.send_pieces(data, PIECES)
        except OSError as e:
            send_error = f"{type(e).__name__}"
        if half_close:
            c.shutdown_write()
        while len(responses) < n_max:
            try:
                r = c.read_response(timeout=RESPONSE_TIMEOUT)
            except oxhttp.ConnectionClosed:
                break
            except oxhttp.Timeout:
                read_error = "timeout"
                break
            except (ValueError, OSError) as e:
                read_error = f"{type(e).__name__}: {e}"
                break
            responses.append(r)
            if not r.complete:
                break
        closed = c.eof
        if not closed and read_error is None:
            wait = IDLE_CHECK
            if responses and (responses[-1].status >= 400 or responses[-1].header("connection", "").lower() == "close"):
                wait = CLOSE_TIMEOUT
            elif any(isinstance(o, Serve) and o.reqs and not _persistent(o.reqs[-1]) for o in outs):
                wait = CLOSE_TIMEOUT
            closed = c.wait_closed(wait)
        extra = bytes(c.buf)
    return Observed(responses, closed, [], send_error, read_error, extra)


def check_served(obs: Observed, reqs: list, tags, start: int = 0) -> list[str]:
    p = []
    for i, req in enumerate(reqs):
        k = start + i
        if k >= len(obs.records):
            p.append(f"request {k} ({req['method']} {req['uri'][:60]}) never reached the app")
            continue
        for prob in match_record(obs.records[k], req, tags):
            p.append(f"request {k}: {prob}")
        if k >= len(obs.responses):
            p.append(f"no response for request {k}")
            continue
        r = obs.responses[k]
        if r.status != 200 or not r.complete:
            p.append(f"response {k}: {r.status} complete={r.complete}")
            continue
        try:
            if r.json()["seq"] != obs.records[k]["seq"]:
                p.append(f"response {k} belongs to another call (out of order)")
        except (ValueError, KeyError):
            p.append(f"response {k} is not the recording app's answer: {r.body[:100]!r}")
    return p


def evaluate(o, obs: Observed, tags) -> list[str]:
    """Problems of obs against outcome o ([] = matches)."""
    p = []
    if obs.extra_bytes:
        p.append(f"unexpected bytes after the last response: {obs.extra_bytes[:80]!r}")
    if isinstance(o, Serve):
        p += check_served(obs, o.reqs, tags)
        if len(obs.records) > len(o.reqs):
            p.append(f"the app was called {len(obs.records)} times, expected {len(o.reqs)}")
        if len(obs.responses) > len(o.reqs):
            p.append(f"{len(obs.responses)} responses for {len(o.reqs)} requests")
        if o.reqs and not _persistent(o.reqs[-1]) and not obs.closed:
            p.append("connection not closed after a non-persistent request")
    elif isinstance(o, Reject):
        k = len(o.prefix)
        p += check_served(obs, o.prefix, tags)
        if len(obs.records) != k:
            p.append(f"the app was called {len(obs.records)} times, expected {k}")
        if len(obs.responses) > k + 1:
            p.append(f"{len(obs.responses)} responses, expected at most {k + 1}")
        if len(obs.responses) > k:
            st = obs.responses[k].status
            if st not in o.codes:
                p.append(f"status {st}, expected one of {sorted(o.codes)}")
            if st == 400 and not obs.closed:
                p.append("400 without closing the connection (DESIGN §7)")
        elif not obs.closed:
            p.append("no response and the connection was not closed")
    elif isinstance(o, BodyReject):
        if any(200 <= r.status < 300 for r in obs.responses):
            p.append("a 2xx answer to a request with a broken body")
        if len(obs.responses) > 1:
            p.append(f"{len(obs.responses)} responses")
        if not obs.closed:
            p.append("connection not closed after a broken body")
        for rec in obs.records:
            if not rec.get("body_error"):
                p.append("the app was called and read the broken body without an error")
        if len(obs.records) > 1:
            p.append(f"the app was called {len(obs.records)} times")
    elif isinstance(o, Accept):
        if len(obs.records) != 1:
            p.append(f"the app was called {len(obs.records)} times, expected once")
        if not obs.responses or obs.responses[0].status != 200:
            p.append(f"first response {obs.responses[0].status if obs.responses else None}, expected 200")
        if len(obs.responses) > 1:
            p.append(f"{len(obs.responses)} responses, expected 1")
        if obs.records:
            rec = obs.records[0]
            if o.body is not None and base64.b64decode(rec["body_b64"]) != o.body:
                p.append(f"body {base64.b64decode(rec['body_b64'])[:60]!r} != {o.body!r}")
            if rec.get("body_error"):
                p.append(f"body error {rec['body_error']}")
            if o.content_length is not None and rec.get("content_length") != o.content_length:
                p.append(f"CONTENT_LENGTH {rec.get('content_length')!r} != {o.content_length!r}")
            if o.check:
                p += o.check(rec)
    elif isinstance(o, IncompleteBody):
        if any(200 <= r.status < 300 for r in obs.responses):
            p.append("a 2xx answer although the body was incomplete")
        for rec in obs.records:
            if not rec.get("body_error"):
                p.append("the app got a short body without an error")
    elif isinstance(o, AnswerOrServe):
        # OPTIONS *: only the method and the raw target are meaningful.
        if len(obs.records) > 1:
            p.append(f"the app was called {len(obs.records)} times")
        elif obs.records:
            rec = obs.records[0]
            if (rec["method"], rec["request_uri"]) != (o.reqs[0]["method"], o.reqs[0]["uri"]):
                p.append(f"app saw {rec['method']} {rec['request_uri']!r}")
            if not obs.responses or obs.responses[0].status != 200:
                p.append("the app was called but its answer did not come back")
        elif not obs.responses:
            p.append("no answer at all")
    return p


# ================================================================ the test
RESULTS: dict[str, dict] = {}


def _params():
    out = []
    for case in CASES:
        for variant in variants(case):
            for mode in ("whole", "pieces"):
                tid = f"{case.key}/{variant}/{mode}"
                reason = (KNOWN_FAILURES.get(tid) or KNOWN_FAILURES.get(f"{case.key}/{variant}")
                          or KNOWN_FAILURES.get(case.key))
                marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                out.append(pytest.param(case, variant, mode, id=tid, marks=marks))
    return out


@pytest.fixture(scope="module")
def corpus_server(servers):
    cfg = {
        "groups": {"rec": {"processes": 1, "threads": 4}},
        "mount": [{"path": "/", "script": str(APPS / "recorder.py"), "group": "rec"}],
    }
    srv = servers("corpus").start_run(cfg, ready=["/__health__"])
    yield srv
    out = os.environ.get("OXWSGI_CORPUS_RESULTS")
    if out:
        Path(out).write_text(json.dumps(RESULTS, indent=1, sort_keys=True))


def test_corpus_present():
    assert CORPUS.is_dir(), f"OXWSGI_CORPUS={CORPUS_ENV} is not a directory"
    n_valid = sum(c.kind == "valid" for c in CASES)
    assert n_valid == 63 and len(CASES) - n_valid == 74, (n_valid, len(CASES))


def test_expectation_tables_name_real_cases():
    names = {c.key for c in CASES}
    for n in VALID_EXPECT:
        assert f"valid/{n}" in names, n
    for n in INVALID_EXPECT:
        assert f"invalid/{n}" in names, n
    for k in KNOWN_FAILURES:
        assert "/".join(k.split("/")[:2]) in names, k
    for k in HALF_CLOSE:
        assert k in names, k


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case, variant, mode", _params())
def test_corpus_case(corpus_server, case: Case, variant: str, mode: str):
    port = corpus_server.port
    before = calls(port, 10**9)
    outs = outcomes_for(case, variant)
    data = add_host(case) if variant == "host" else case.data
    obs = run_case(port, data, outs, mode, needs_half_close(case))
    after = calls(port, before["count"])
    assert corpus_server.proc.poll() is None, "the front process died"
    assert after["pid"] == before["pid"], "the daemon process changed (crashed?) during the case"
    obs.records = after["records"]
    health = oxhttp.get(port, "/__health__", timeout=30)
    assert health.status == 200, f"server unhealthy after the case: {health!r}"

    problems = {_label(o): evaluate(o, obs, case.tags) for o in outs}
    matched = [k for k, v in problems.items() if not v]
    RESULTS[f"{case.key}/{variant}/{mode}"] = {
        "kind": case.kind, "name": case.name, "variant": variant, "mode": mode, "tags": case.tags,
        "passed": bool(matched), "matched": matched[:1], "observed": obs.summary(),
        "expected": [k for k in problems], "why": [getattr(o, "why", "") for o in outs],
    }
    if not matched:
        lines = [f"{case.key} [{variant}, {mode}]: {obs.summary()}"]
        for k, v in problems.items():
            lines.append(f"  not {k}: " + "; ".join(v[:6]))
        if obs.records:
            lines.append("  app saw: " + json.dumps(obs.records)[:1500])
        pytest.fail("\n".join(lines), pytrace=False)


def test_server_survived_corpus(corpus_server):
    assert corpus_server.proc.poll() is None
    r = oxhttp.get(corpus_server.port, "/after/corpus?x=1")
    assert r.status == 200 and r.json()["path_info"] == "/after/corpus"
    with socket.create_connection(("127.0.0.1", corpus_server.port), timeout=5):
        pass
