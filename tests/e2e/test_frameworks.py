"""Real frameworks served through oxwsgi: a Flask app (mounted by module
name) and a minimal Django project (mounted by WSGI script file), each in a
group of its own with python-path, in the main interpreter."""

from __future__ import annotations

import pytest
import requests

import oxhttp
from oxserver import APPS, daemon_python


@pytest.fixture(scope="module")
def fw(servers):
    cfg = {
        "groups": {
            "flask": {"processes": 1, "threads": 4, "python": daemon_python(),
                      "python-path": [str(APPS / "flask_app")]},
            "django": {"processes": 1, "threads": 4, "python": daemon_python(),
                       "python-path": [str(APPS / "djsite")]},
        },
        "mount": [
            {"path": "/flask", "module": "flask_e2e:app", "group": "flask"},
            {"path": "/django", "script": str(APPS / "djsite" / "djsite_e2e" / "wsgi.py"), "group": "django"},
        ],
    }
    return servers("frameworks").start_run(cfg, ready=["/flask/", "/django/hello/"])


def url(srv, path):
    return srv.url(path)


# ---------------------------------------------------------------- Flask
def test_flask_index(fw):
    r = requests.get(url(fw, "/flask/"), timeout=30)
    assert (r.status_code, r.text) == (200, "flask index")


def test_flask_json_and_script_root(fw):
    r = requests.get(url(fw, "/flask/json?a=1&a=2&b=%C3%A9"), timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    j = r.json()
    assert j["args"] == {"a": ["1", "2"], "b": ["\u00e9"]}
    assert j["path"] == "/json"
    assert j["script_root"] == "/flask"
    assert j["url_for_form"] == "/flask/form"
    assert j["url_for_page"] == "/flask/page/x%20y"


def test_flask_form_post(fw):
    r = requests.post(url(fw, "/flask/form"), data={"name": "Zoë", "tags": ["a", "b"]}, timeout=30)
    assert r.status_code == 200
    assert r.json()["form"] == {"name": ["Zoë"], "tags": ["a", "b"]}


def test_flask_multipart_upload(fw):
    r = requests.post(url(fw, "/flask/form"), data={"k": "v"}, files={"upload": ("notes.txt", b"file body\n")},
                      timeout=30)
    assert r.status_code == 200
    j = r.json()
    assert j["form"] == {"k": ["v"]}
    assert j["upload"] == {"filename": "notes.txt", "data": "file body\n"}


def test_flask_template(fw):
    r = requests.get(url(fw, "/flask/page/World"), timeout=30)
    assert r.status_code == 200
    assert "<h1>Hello World!</h1>" in r.text
    assert "<li>one</li><li>two</li><li>three</li>" in r.text
    assert 'href="/flask/json"' in r.text


def test_flask_streaming_response(fw):
    with oxhttp.Conn(fw.port) as c:
        c.send(oxhttp.build_request("GET", "/flask/stream?n=50&tag=t", [("Connection", "close")]))
        r = c.read_response()
    assert r.status == 200 and r.complete, r
    # Chunked, or a Content-Length if the front had the whole body already.
    assert r.framing in ("chunked", "length"), r
    assert r.body.decode() == "".join(f"part {i} of t\n" for i in range(50))


def test_flask_404_and_500(fw):
    mark = fw.stderr_mark()
    assert requests.get(url(fw, "/flask/nope"), timeout=30).status_code == 404
    r = requests.get(url(fw, "/flask/boom"), timeout=30)
    assert r.status_code == 500  # Flask's own error page
    fw.wait_stderr("flask view failed on purpose", mark)
    assert requests.get(url(fw, "/flask/"), timeout=30).status_code == 200


# ---------------------------------------------------------------- Django
def test_django_view(fw):
    r = requests.get(url(fw, "/django/hello/?x=1&x=2"), timeout=30)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j == {
        "method": "GET",
        "path": "/django/hello/",
        "path_info": "/hello/",
        "script_name": "/django",
        "reverse": "/django/hello/",
        "get": {"x": ["1", "2"]},
        "settings": "djsite_e2e.settings",
        "process_group": "django",
    }


def test_django_append_slash_redirect_keeps_prefix(fw):
    r = requests.get(url(fw, "/django/hello"), allow_redirects=False, timeout=30)
    assert r.status_code == 301
    assert r.headers["Location"] == "/django/hello/"


def test_django_post_form(fw):
    r = requests.post(url(fw, "/django/form/"), data={"a": "1", "b": ["x", "y"]}, timeout=30)
    assert r.status_code == 200
    assert r.json() == {"post": {"a": ["1"], "b": ["x", "y"]}, "method": "POST"}


def test_django_template(fw):
    r = requests.get(url(fw, "/django/page/bob/"), timeout=30)
    assert r.status_code == 200
    assert r.text.strip() == "<p>Django says hello to bob at /django/page/bob/</p>"


def test_django_404_and_disallowed_host(fw):
    assert requests.get(url(fw, "/django/missing/"), timeout=30).status_code == 404
    r = requests.get(url(fw, "/django/hello/"), headers={"Host": "evil.example"}, timeout=30)
    assert r.status_code == 400  # ALLOWED_HOSTS: the Host header reaches Django intact
