"""The daemons' process title (DESIGN §1, docs/design.md "Process titles"):
`display-name` when the group has one, else `(wsgi:GROUP)` — never the
interpreter's `python -c <bootstrap source>` (issue 15, item 7)."""

from __future__ import annotations

import subprocess

from oxserver import APPS, cmdline


def test_a_group_without_display_name_is_titled_wsgi_group(server):
    cfg = {
        "groups": {
            "plain": {"processes": 2, "threads": 1},
            "named": {"processes": 1, "threads": 1, "display-name": "web-%{GROUP}"},
        },
        "mount": [
            {"path": "/", "script": str(APPS / "recorder.py"), "group": "plain"},
            {"path": "/n", "script": str(APPS / "recorder.py"), "group": "named"},
        ],
    }
    srv = server("title").start_run(cfg, ready=["/__health__", "/n/__health__"])
    titles = {}
    for pid in srv.daemon_pids():
        raw = cmdline(pid)
        titles[pid] = raw.rstrip(b"\0").rstrip(b" ")
        ps = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=True)
        assert ps.stdout.strip() == titles[pid].decode(), (pid, raw, ps.stdout)
    assert sorted(titles.values()) == [b"(wsgi:plain)", b"(wsgi:plain)", b"web-(wsgi:named)"], titles
