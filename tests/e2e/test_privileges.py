"""Privileges (issue 17 item 3): the front drops root to the top-level
`user` after binding, daemons switch with initgroups + supplementary-groups,
unknown accounts are config errors at file:line, and applications refuse to
run as root unless the config says so.

Runs as root only (CI does): it creates throw-away system users and groups
and removes them afterwards.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

import oxhttp
from oxserver import binary, free_port

HERE = Path(__file__).resolve().parent
INFO_APP = HERE / "apps" / "info.py"

# The daemons run as the throw-away user: they need an interpreter it can
# execute (the test venv's may live under /root, which is 0700).
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None or not os.path.exists(SYSTEM_PYTHON),
    reason="needs root, useradd and /usr/bin/python3 to run apps as throw-away accounts",
)

TAG = uuid.uuid4().hex[:6]
USER = f"oxe2e{TAG}"
OTHER_USER = f"oxe2f{TAG}"
MEMBER_GROUP = f"oxe2m{TAG}"  # USER is a member: initgroups brings it
EXTRA_GROUP = f"oxe2x{TAG}"  # USER is not: only supplementary-groups brings it


def run(*argv):
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def accounts():
    run("groupadd", "--system", MEMBER_GROUP)
    run("groupadd", "--system", EXTRA_GROUP)
    run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "-G", MEMBER_GROUP, USER)
    run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER)
    try:
        yield {
            "uid": pwd.getpwnam(USER).pw_uid,
            "gid": pwd.getpwnam(USER).pw_gid,
            "member": grp.getgrnam(MEMBER_GROUP).gr_gid,
            "extra": grp.getgrnam(EXTRA_GROUP).gr_gid,
        }
    finally:
        for user in (USER, OTHER_USER):
            subprocess.run(["userdel", user], capture_output=True, timeout=60)
        for group in (MEMBER_GROUP, EXTRA_GROUP):
            subprocess.run(["groupdel", group], capture_output=True, timeout=60)


@pytest.fixture
def app_dir():
    """A folder any user can read (pytest's own temp folders are 0700)."""
    d = Path(tempfile.mkdtemp(prefix="oxwsgi-priv-", dir="/tmp"))
    d.chmod(0o755)
    shutil.copy(INFO_APP, d / "info.py")
    (d / "info.py").chmod(0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def proc_ids(pid: int) -> dict:
    """Real uid, gid and supplementary groups of a process."""
    ids = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid"):
            ids[key.lower()] = [int(v) for v in value.split()]
        elif key == "Groups":
            ids["groups"] = sorted(int(v) for v in value.split())
    return ids


def site(app_dir: Path, extra_top: str = "", extra_group: str = "") -> str:
    return (
        f"{extra_top}\n"
        f"[groups.g]\nprocesses = 1\nthreads = 2\nhome = \"{app_dir}\"\npython = \"{SYSTEM_PYTHON}\"\n{extra_group}\n"
        f"[[mount]]\npath = \"/\"\nscript = \"{app_dir / 'info.py'}\"\ngroup = \"g\"\n"
    )


def get_json(srv, path="/"):
    r = oxhttp.get(srv.port, path)
    assert r.status == 200, r
    return r.json()


def serve(server, text: str, env=None):
    port = free_port()
    return server().start_run(f'listen = ["127.0.0.1:{port}"]\n' + text, port=port, env=env)


def test_the_front_drops_to_the_top_level_user_and_daemons_follow(server, app_dir, accounts):
    srv = serve(server, site(app_dir, extra_top=f'user = "{USER}"'))
    front = proc_ids(srv.proc.pid)
    assert front["uid"] == [accounts["uid"]] * 4, front
    assert front["gid"] == [accounts["gid"]] * 4, front
    assert accounts["member"] in front["groups"], front
    assert 0 not in front["groups"], front
    info = get_json(srv)
    daemon = proc_ids(info["pid"])
    assert daemon["uid"] == [accounts["uid"]] * 4, daemon
    assert accounts["member"] in daemon["groups"], daemon
    # The front still answers on the port it bound as root, and stops cleanly.
    assert get_json(srv)["pid"] == info["pid"]
    assert srv.stop() == 0


def test_daemons_get_initgroups_and_supplementary_groups(server, app_dir, accounts):
    srv = serve(
        server,
        site(app_dir, extra_group=f'user = "{USER}"\nsupplementary-groups = ["{EXTRA_GROUP}"]')
    )
    # The front keeps root (no top-level user); the daemon switched.
    assert proc_ids(srv.proc.pid)["uid"][0] == 0
    daemon = proc_ids(get_json(srv)["pid"])
    assert daemon["uid"] == [accounts["uid"]] * 4, daemon
    assert daemon["gid"][0] == accounts["gid"], daemon
    want = {accounts["gid"], accounts["member"], accounts["extra"]}
    assert want <= set(daemon["groups"]), daemon
    assert 0 not in daemon["groups"], daemon


def start_fails(tmp_path: Path, text: str, env_extra=None) -> str:
    cfg = tmp_path / "site.toml"
    cfg.write_text(text)
    env = dict(os.environ)
    env.update(env_extra or {})
    r = subprocess.run([binary(), "run", str(cfg)], capture_output=True, timeout=60, env=env)
    assert r.returncode != 0, r
    return r.stderr.decode()


def test_a_group_as_another_user_than_the_dropped_front_is_refused(tmp_path, app_dir, accounts):
    text = f'listen = ["127.0.0.1:{free_port()}"]\n' + site(
        app_dir, extra_top=f'user = "{USER}"', extra_group=f'user = "{OTHER_USER}"'
    )
    err = start_fails(tmp_path, text)
    assert "cannot start daemons as anyone else" in err, err


def test_unknown_accounts_are_config_errors_with_file_and_line(tmp_path, app_dir):
    err = start_fails(tmp_path, 'listen = ["127.0.0.1:1"]\nuser = "no-such-user-oxwsgi"\n')
    assert "site.toml:2" in err and "no-such-user-oxwsgi" in err, err
    err = start_fails(
        tmp_path, site(app_dir, extra_group='supplementary-groups = ["no-such-group-oxwsgi"]')
    )
    assert "site.toml:" in err and "no-such-group-oxwsgi" in err, err
    conf = tmp_path / "site.conf"
    conf.write_text(f"\nUser no-such-user-oxwsgi\nWSGIScriptAlias / {app_dir / 'info.py'}\n")
    r = subprocess.run([binary(), "check", str(conf)], capture_output=True, timeout=60)
    assert r.returncode != 0 and "site.conf:2" in r.stderr.decode(), r


def test_applications_do_not_run_as_root_unless_the_config_says_so(server, tmp_path, app_dir):
    err = start_fails(tmp_path, f'listen = ["127.0.0.1:{free_port()}"]\n' + site(app_dir), {"OXWSGI_ALLOW_ROOT": ""})
    assert "would run its applications as root" in err, err
    env = dict(os.environ, OXWSGI_ALLOW_ROOT="")
    r = subprocess.run([binary(), "check", str(tmp_path / "site.toml")], capture_output=True, timeout=60, env=env)
    shown = (r.stdout + r.stderr).decode()
    assert "would run its applications as root" in shown and "`run` refuses" in shown, shown
    srv = serve(server, site(app_dir, extra_top='user = "root"'), env={"OXWSGI_ALLOW_ROOT": ""})
    assert proc_ids(get_json(srv)["pid"])["uid"][0] == 0
