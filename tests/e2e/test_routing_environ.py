"""Routing (DESIGN §3: whole-segment prefixes, longest prefix wins, 404) and
the WSGI environ contract (DESIGN §5)."""

from __future__ import annotations

import time

import pytest

import oxhttp
from oxserver import APPS

INFO = str(APPS / "info.py")


@pytest.fixture(scope="module")
def routing(servers):
    cfg = {
        "groups": {
            "g1": {"processes": 1, "threads": 4},
            "g2": {"processes": 1, "threads": 2},
        },
        "mount": [
            {"path": "/api/wsgi/one", "script": INFO, "group": "g1"},
            {"path": "/api/wsgi/one/deeper", "script": INFO, "group": "g2"},
            {"path": "/api/wsgi/two/", "script": INFO, "group": "g1"},  # trailing "/" normalised
        ],
    }
    return servers("routing").start_run(cfg, ready=["/api/wsgi/one", "/api/wsgi/one/deeper", "/api/wsgi/two"])


@pytest.fixture(scope="module")
def envsrv(servers):
    cfg = {
        "groups": {"envgrp": {"processes": 2, "threads": 3}},
        "mount": [
            {"path": "/", "script": INFO, "group": "envgrp"},
            {"path": "/noauth", "script": INFO, "group": "envgrp", "pass-authorization": False},
        ],
    }
    return servers("environ").start_run(cfg, ready=["/", "/noauth"])


def env_of(port, target, headers=None, method="GET", body=b"", **kw):
    with oxhttp.Conn(port) as c:
        c.send(oxhttp.build_request(method, target, list(headers or []) + [("Connection", "close")], body, **kw))
        r = c.read_response(method)
        assert r.status == 200, r
        j = r.json()
        j["_client_port"] = c.local_port
        return j


# ---------------------------------------------------------------- routing
@pytest.mark.parametrize(
    "target, script_name, path_info, group",
    [
        ("/api/wsgi/one", "/api/wsgi/one", "", "g1"),
        ("/api/wsgi/one/", "/api/wsgi/one", "/", "g1"),
        ("/api/wsgi/one/x/y", "/api/wsgi/one", "/x/y", "g1"),
        ("/api/wsgi/one/deeper", "/api/wsgi/one/deeper", "", "g2"),
        ("/api/wsgi/one/deeper/", "/api/wsgi/one/deeper", "/", "g2"),
        ("/api/wsgi/one/deeper/z", "/api/wsgi/one/deeper", "/z", "g2"),
        ("/api/wsgi/one/deeperx", "/api/wsgi/one", "/deeperx", "g1"),
        ("/api/wsgi/one/x/deeper", "/api/wsgi/one", "/x/deeper", "g1"),
        ("/api/wsgi/two", "/api/wsgi/two", "", "g1"),
        ("/api/wsgi/two/a", "/api/wsgi/two", "/a", "g1"),
    ],
)
def test_longest_whole_segment_prefix(routing, target, script_name, path_info, group):
    j = env_of(routing.port, target)
    e = j["environ"]
    assert (e["SCRIPT_NAME"], e["PATH_INFO"], e["mod_wsgi.process_group"]) == (script_name, path_info, group)
    assert e["REQUEST_URI"] == target


@pytest.mark.parametrize(
    "target",
    ["/", "/api", "/api/wsgi", "/api/wsgi/", "/api/wsgi/onex", "/api/wsgi/onex/y", "/api/wsgi/tw",
     "/api/wsgi/twox", "/API/wsgi/one", "/nothing/here", "/api/wsgi/one.json"],
)
def test_unmatched_is_404(routing, target):
    r = oxhttp.get(routing.port, target)
    assert r.status == 404, r


def test_percent_decoded_path_info_raw_query_and_request_uri(routing):
    target = "/api/wsgi/one/a%20b/%C3%A9/%25x?x=1&y=%20&z=%2F"
    e = env_of(routing.port, target)["environ"]
    assert e["SCRIPT_NAME"] == "/api/wsgi/one"
    # UTF-8 bytes C3 A9 arrive as two latin-1 characters (PEP 3333).
    assert e["PATH_INFO"] == "/a b/\u00c3\u00a9/%x"
    assert e["QUERY_STRING"] == "x=1&y=%20&z=%2F"
    assert e["REQUEST_URI"] == target


@pytest.mark.parametrize("target, qs", [("/api/wsgi/two", ""), ("/api/wsgi/two?", ""), ("/api/wsgi/two?a=b&c", "a=b&c"),
                                        ("/api/wsgi/two/p?a=%41+b", "a=%41+b")])
def test_query_string(routing, target, qs):
    e = env_of(routing.port, target)["environ"]
    assert e["QUERY_STRING"] == qs
    assert e["REQUEST_URI"] == target


def test_multiprocess_false_with_one_process(routing):
    e = env_of(routing.port, "/api/wsgi/one")["environ"]
    assert e["wsgi.multiprocess"] is False
    assert e["wsgi.multithread"] is True


# ---------------------------------------------------------------- environ
def test_environ_contract(envsrv):
    port = envsrv.port
    t0 = time.time()
    j = env_of(
        port,
        "/some/path?q=1",
        method="POST",
        body=b"hello",
        host=f"127.0.0.1:{port}",
        headers=[
            ("Content-Type", "text/plain"),
            ("X-Multi", "a"),
            ("X-Multi", "b"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
            ("X_Forwarded_For", "evil"),
            ("X-Forwarded-For", "good"),
            ("Proxy", "http://evil.example:1/"),
            ("Authorization", "Basic dXNlcjpwYXNz"),
            ("X.Dot", "dropped"),
            ("X-1", "digits"),
        ],
    )
    t1 = time.time()
    e, types = j["environ"], j["types"]
    assert j["key_types"] == ["str"]

    expect_str = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/some/path",
        "QUERY_STRING": "q=1",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "5",
        "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_URI": "/some/path?q=1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": str(j["_client_port"]),
        "wsgi.url_scheme": "http",
        "mod_wsgi.process_group": "envgrp",
        "mod_wsgi.application_group": "",
        "HTTP_HOST": f"127.0.0.1:{port}",
        "HTTP_X_MULTI": "a, b",
        "HTTP_COOKIE": "a=1; b=2",
        "HTTP_X_FORWARDED_FOR": "good",
        "HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz",
        "HTTP_X_1": "digits",
    }
    for k, v in expect_str.items():
        assert k in e, f"{k} missing from environ"
        assert (e[k], types[k]) == (v, "str"), k
    assert e["SERVER_NAME"] in ("127.0.0.1", "localhost") and types["SERVER_NAME"] == "str"
    assert types["SCRIPT_FILENAME"] == "str" and e["SCRIPT_FILENAME"].endswith("/info.py")

    assert (e["wsgi.version"], types["wsgi.version"]) == ([1, 0], "tuple")
    for k, v in {"wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
                 "wsgi.input_terminated": True}.items():
        assert (e.get(k), types.get(k)) == (v, "bool"), k
    assert set(j["input_methods"]) == {"read", "readline", "readlines", "__iter__"}
    assert set(j["errors_methods"]) == {"write", "writelines", "flush"}
    assert j["file_wrapper_callable"]
    assert types["mod_wsgi.request_start"] == "float" and types["mod_wsgi.queue_start"] == "float"
    rs, qs = e["mod_wsgi.request_start"], e["mod_wsgi.queue_start"]
    assert t0 - 1 <= rs <= qs <= j["time"] <= t1 + 1, (t0, rs, qs, j["time"], t1)

    # Not there: httpoxy, spoofable underscore headers, bad names, HTTPS on http,
    # framing headers under HTTP_ names.
    for k in ("HTTP_PROXY", "HTTPS", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
        assert k not in e, k
    assert not [k for k in e if "DOT" in k.upper() and k.startswith("HTTP_")]
    # Every CGI variable is a native str (PEP 3333).
    for k, t in types.items():
        if "." not in k:
            assert t == "str", (k, t)
    assert j["body_len"] == 5


def test_underscore_header_alone_is_dropped(envsrv):
    e = env_of(envsrv.port, "/", headers=[("X_Forwarded_For", "1.2.3.4"), ("X_Custom", "x")])["environ"]
    assert "HTTP_X_FORWARDED_FOR" not in e
    assert "HTTP_X_CUSTOM" not in e


def test_proxy_header_never_becomes_http_proxy(envsrv):
    e = env_of(envsrv.port, "/", headers=[("Proxy", "http://evil.example:1/")])["environ"]
    assert "HTTP_PROXY" not in e


def test_pass_authorization_false_hides_it(envsrv):
    e = env_of(envsrv.port, "/noauth/x", headers=[("Authorization", "Bearer t0k3n"), ("X-Other", "y")])["environ"]
    assert e["SCRIPT_NAME"] == "/noauth" and e["PATH_INFO"] == "/x"
    assert "HTTP_AUTHORIZATION" not in e
    assert e["HTTP_X_OTHER"] == "y"
    e = env_of(envsrv.port, "/x", headers=[("Authorization", "Bearer t0k3n")])["environ"]
    assert e["HTTP_AUTHORIZATION"] == "Bearer t0k3n"


def test_root_mount_path_info(envsrv):
    e = env_of(envsrv.port, "/")["environ"]
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("", "/")


def test_http10_protocol(envsrv):
    e = env_of(envsrv.port, "/v", version="HTTP/1.0")["environ"]
    assert e["SERVER_PROTOCOL"] == "HTTP/1.0"
