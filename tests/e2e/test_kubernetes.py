"""The Kubernetes recipe (issue 18, docs/kubernetes.md) checked against the
config it ships: deploy/kubernetes/*.yaml, examples/kubernetes/ and the
Containerfile.

The manifests are parsed (PyYAML), never applied: probe ports and paths,
the container ports, the Service, the Prometheus annotations and the HPA's
metric names are compared with the ConfigMap's site TOML (parsed with
tomllib and given to `oxwsgi check`), with the admin server's and the
metrics module's sources, and with a real server running that same TOML on
127.0.0.1. The termination grace period must cover the configured stop.
The image itself is not built here (no container daemon in the test
environment): the Containerfile is parsed and every file it copies must
exist in the build context."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the suite's venv is 3.11+
    tomllib = pytest.importorskip("tomli")
yaml = pytest.importorskip("yaml")

import oxhttp  # noqa: E402
from oxserver import REPO, binary, free_port, wait_for  # noqa: E402

DEPLOY = REPO / "deploy" / "kubernetes"
EXAMPLE = REPO / "examples" / "kubernetes"
CONTAINERFILE = REPO / "Containerfile"
# The server's own default (crates/oxwsgi/src/supervisor/process.rs).
DEFAULT_SHUTDOWN_TIMEOUT = 10.0


# ---------------------------------------------------------------- loading
def load_docs() -> dict[str, dict]:
    """Every manifest under deploy/kubernetes/ (not extras/), by kind."""
    docs: dict[str, dict] = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            kind = doc["kind"]
            assert kind not in docs, f"two {kind} manifests ({path.name})"
            doc["_file"] = path.name
            docs[kind] = doc
    return docs


@pytest.fixture(scope="module")
def docs() -> dict[str, dict]:
    return load_docs()


@pytest.fixture(scope="module")
def site_text(docs) -> str:
    return docs["ConfigMap"]["data"]["site.toml"]


@pytest.fixture(scope="module")
def site(site_text) -> dict:
    return tomllib.loads(site_text)


def container(docs) -> dict:
    containers = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, containers
    return containers[0]


def port_of(addr: str) -> int:
    host, _, port = addr.rpartition(":")
    assert host, addr
    return int(port)


def named_port(c: dict, port) -> int:
    """A probe's or Service's port (a number or a container port name) as a number."""
    if isinstance(port, int):
        return port
    by_name = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert port in by_name, f"port name {port!r} is none of the container's {sorted(by_name)}"
    return by_name[port]


def admin_paths() -> set[str]:
    """The paths the admin server answers, from its source."""
    src = (REPO / "crates" / "oxwsgi" / "src" / "admin" / "mod.rs").read_text()
    paths = set(re.findall(r'^\s*"(/[a-z]+)" =>', src, re.M))
    assert {"/healthz", "/status", "/metrics"} <= paths, paths
    return paths


def metric_names() -> set[str]:
    """The metric families the metrics module registers (counters get
    `_total`, histograms `_bucket`/`_sum`/`_count` on the wire)."""
    src = (REPO / "crates" / "oxwsgi" / "src" / "admin" / "metrics.rs").read_text()
    names = set(re.findall(r'registry\.register\(\s*"(oxwsgi_[a-z_]+)"', src))
    assert "oxwsgi_busy_threads" in names and "oxwsgi_queue_depth" in names, names
    return names


def stop_budget(site: dict) -> float:
    """What a stop may take: drain-grace, then the connections' graceful stop
    (the longest shutdown-timeout), then the daemons' own (the same bound)."""
    shutdown = max(
        (float(g.get("shutdown-timeout", DEFAULT_SHUTDOWN_TIMEOUT)) for g in site.get("groups", {}).values()),
        default=DEFAULT_SHUTDOWN_TIMEOUT,
    )
    return float(site.get("drain-grace", 0)) + 2 * shutdown


# ---------------------------------------------------------------- manifests
def test_the_kustomization_lists_the_manifests(docs):
    kust = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = set(kust["resources"])
    for name in listed:
        assert (DEPLOY / name).is_file(), name
    files = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    # The HPA is opt-in (it needs the Prometheus adapter); everything else is applied.
    assert files - listed == {"hpa.yaml"}, files - listed
    assert {d["kind"] for d in docs.values()} >= {
        "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy",
    }


def test_the_configmap_is_the_image_config(site_text):
    assert site_text == (EXAMPLE / "site.toml").read_text(), (
        "deploy/kubernetes/configmap.yaml and examples/kubernetes/site.toml differ"
    )


def test_ports_and_probes_match_the_site(docs, site):
    c = container(docs)
    listen = site["listen"]
    assert len(listen) == 1
    http_port, admin_port = port_of(listen[0]), port_of(site["admin"])
    assert http_port != admin_port
    # The kubelet and Prometheus reach the pod IP: the listeners are not on
    # loopback (in the pod's own network namespace 0.0.0.0 is lo + pod IP).
    assert listen[0].startswith("0.0.0.0:") and site["admin"].startswith("0.0.0.0:")
    assert named_port(c, "http") == http_port
    assert named_port(c, "admin") == admin_port

    paths = admin_paths()
    ready, live = c["readinessProbe"]["httpGet"], c["livenessProbe"]["httpGet"]
    assert ready["path"] == "/healthz"
    assert named_port(c, ready["port"]) == admin_port
    # Liveness must not be /healthz (503 while starting, a daemon is being
    # replaced, or the pod drains) and must be on the admin listener, which
    # the front answers itself however busy the daemon threads are.
    assert live["path"] in paths and live["path"] != "/healthz", live
    assert named_port(c, live["port"]) == admin_port
    assert "startupProbe" not in c or c["startupProbe"]["httpGet"]["path"] != "/healthz"

    args = c["args"]
    assert args[:1] == ["run"] and len(args) == 2
    mounted = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    config_dir = str(Path(args[1]).parent)
    assert config_dir in mounted
    volumes = {v["name"]: v for v in docs["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounted[config_dir]]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    assert Path(args[1]).name in docs["ConfigMap"]["data"]


def test_the_grace_period_covers_the_configured_stop(docs, site):
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    c = container(docs)
    pre_stop = 0.0
    hook = c.get("lifecycle", {}).get("preStop")
    if hook:  # a preStop sleep runs before SIGTERM, inside the same period
        pre_stop = float(hook.get("sleep", {}).get("seconds", 0))
    assert float(site.get("drain-grace", 0)) > 0, "the shipped site must drain before it stops"
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + stop_budget(site), (
        pod["terminationGracePeriodSeconds"], stop_budget(site)
    )
    # A request in flight at SIGTERM ends (504 at worst) before the stop gives up on it.
    for name, group in site["groups"].items():
        if "request-timeout" in group:
            assert group["request-timeout"] < group.get("shutdown-timeout", DEFAULT_SHUTDOWN_TIMEOUT), name
    # A rolling update never takes capacity away before the new pod is ready.
    assert docs["Deployment"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_service_exposes_only_http(docs, site):
    c = container(docs)
    svc = docs["Service"]["spec"]
    admin_port = port_of(site["admin"])
    targets = [named_port(c, p.get("targetPort", p["port"])) for p in svc["ports"]]
    assert targets == [port_of(site["listen"][0])], targets
    assert admin_port not in targets and admin_port not in [p["port"] for p in svc["ports"]]
    assert svc.get("type", "ClusterIP") == "ClusterIP"
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        selector = docs[kind]["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert selector.items() <= labels.items(), (kind, selector)
    # The NetworkPolicy lets the admin port in only from a namespace named
    # explicitly (the kubelet's probes come from the node: always allowed).
    rules = docs["NetworkPolicy"]["spec"]["ingress"]
    admin_rules = [r for r in rules if any(named_port(c, p["port"]) == admin_port for p in r.get("ports", []))]
    assert admin_rules and all(r.get("from") for r in admin_rules), rules


def test_prometheus_annotations_and_hpa_metrics(docs, site):
    notes = docs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert int(notes["prometheus.io/port"]) == port_of(site["admin"])
    assert notes["prometheus.io/path"] == "/metrics"

    known = metric_names()
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == docs["Deployment"]["metadata"]["name"]
    used = {m["pods"]["metric"]["name"]: m["pods"]["target"] for m in hpa["metrics"] if m["type"] == "Pods"}
    assert set(used) == {"oxwsgi_busy_threads", "oxwsgi_queue_depth"}, used
    assert set(used) <= known
    threads = sum(g.get("processes", 1) * g.get("threads", 15) for g in site["groups"].values())
    assert 0 < float(used["oxwsgi_busy_threads"]["averageValue"]) < threads
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]

    adapter = yaml.safe_load((DEPLOY / "extras" / "prometheus-adapter-values.yaml").read_text())
    for rule in adapter["rules"]["custom"]:
        series = re.match(r"(oxwsgi_[a-z_]+)\{", rule["seriesQuery"]).group(1)
        assert series in known, series
        assert rule["name"]["as"] in used


def test_oxwsgi_check_accepts_the_configmap(tmp_path, site_text):
    path = tmp_path / "site.toml"
    path.write_text(site_text)
    r = subprocess.run([binary(), "check", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "listen: 0.0.0.0:8080" in r.stdout and "admin: 0.0.0.0:9100" in r.stdout, r.stdout
    assert "drain-grace: 5s" in r.stdout, r.stdout
    # The only warning on this machine: the image's /srv/app is not here.
    warnings = [line for line in r.stdout.splitlines() if line.startswith("    ")]
    assert all("/srv/app/wsgi.py does not exist" in w for w in warnings), r.stdout


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_renders_offline():
    r = subprocess.run(["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(r.stdout) if d}
    assert kinds == {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"}, kinds


# ---------------------------------------------------------------- the real thing
def test_the_shipped_site_serves_probes_and_metrics_and_stops_in_time(server, docs, site_text, site):
    """The ConfigMap's TOML, run for real on 127.0.0.1 with the example app:
    the probe paths answer on the admin port, liveness (and readiness) hold
    with every thread busy and requests queued, the HPA's series are in
    /metrics, and SIGTERM drains and exits 0 within the grace period."""
    c = container(docs)
    http_port, admin_port = free_port(), free_port()
    text = site_text
    for old, new in (
        ('"0.0.0.0:8080"', f'"127.0.0.1:{http_port}"'),
        ('"0.0.0.0:9100"', f'"127.0.0.1:{admin_port}"'),
        ('"/srv/app/wsgi.py"', f'"{EXAMPLE / "wsgi.py"}"'),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    srv = server("k8s-site")
    srv.port = http_port
    srv.start_run(text, ready=("/",))
    r = oxhttp.get(http_port, "/")
    assert r.status == 200 and r.body.startswith(b"Hello from "), r

    ready = c["readinessProbe"]["httpGet"]["path"]
    live = c["livenessProbe"]["httpGet"]["path"]
    assert wait_for(lambda: oxhttp.get(admin_port, ready).status == 200, timeout=30)
    assert oxhttp.get(admin_port, live).status == 200
    # The admin port is not the site's: the probes are not answered there.
    assert oxhttp.get(http_port, ready).body != b"ok\n"

    exposed = oxhttp.get(admin_port, "/metrics").body.decode()
    hpa = docs["HorizontalPodAutoscaler"]["spec"]["metrics"]
    for m in hpa:
        name = m["pods"]["metric"]["name"]
        assert re.search(rf'^{name}\{{group="app"\}} \d+$', exposed, re.M), (name, exposed)

    # Every thread busy and requests queued: the liveness path still
    # answers within the probe's timeout, and the pod stays ready (busy is
    # not unhealthy).
    threads = sum(g["processes"] * g["threads"] for g in site["groups"].values())
    load = [
        threading.Thread(target=oxhttp.get, args=(http_port, "/sleep?3"), kwargs={"timeout": 60})
        for _ in range(threads + 2)
    ]
    for t in load:
        t.start()
    try:
        def saturated():
            text = oxhttp.get(admin_port, "/metrics").body.decode()
            busy = re.search(r'^oxwsgi_busy_threads\{group="app"\} (\d+)$', text, re.M)
            queue = re.search(r'^oxwsgi_queue_depth\{group="app"\} (\d+)$', text, re.M)
            return busy and queue and int(busy.group(1)) == threads and int(queue.group(1)) >= 1

        assert wait_for(saturated, timeout=30, every=0.05), "the load never filled every thread"
        probe = c["livenessProbe"]
        started = time.monotonic()
        assert oxhttp.get(admin_port, live, timeout=probe["timeoutSeconds"]).status == 200
        assert time.monotonic() - started < probe["timeoutSeconds"]
        assert oxhttp.get(admin_port, ready, timeout=10).status == 200
    finally:
        for t in load:
            t.join(60)
    assert wait_for(
        lambda: re.search(r'^oxwsgi_busy_threads\{group="app"\} 0$', oxhttp.get(admin_port, "/metrics").body.decode(), re.M),
        timeout=30,
    )

    # A slow request in flight when the pod is told to stop.
    slow = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys; sys.path.insert(0, %r); import oxhttp; "
            "r = oxhttp.get(%d, '/sleep?2', timeout=60); print(r.status)"
        ) % (str(Path(__file__).parent), http_port)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert wait_for(
            lambda: re.search(r'^oxwsgi_busy_threads\{group="app"\} 1$',
                              oxhttp.get(admin_port, "/metrics").body.decode(), re.M),
            timeout=30, every=0.05,
        ), "the slow request never reached a thread"
        srv.signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        assert wait_for(lambda: oxhttp.get(admin_port, ready).status == 503, timeout=5, every=0.02)
        assert oxhttp.get(admin_port, live).status == 200, "liveness must hold while the pod drains"
        assert oxhttp.get(http_port, "/").status == 200, "new connections are served during drain-grace"
        grace = docs["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert srv.wait(grace + 30) == 0
        took = time.monotonic() - stopped_at
        assert float(site["drain-grace"]) <= took < grace, took
        out, _ = slow.communicate(timeout=60)
        assert out.strip() == "200", out
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait(10)


# ---------------------------------------------------------------- Containerfile
def containerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined, comments dropped."""
    out, pending = [], ""
    for line in CONTAINERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        pending += " " + stripped.rstrip("\\").strip()
        if stripped.endswith("\\"):
            continue
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def dockerignored(rel: str) -> bool:
    """Whether .dockerignore keeps `rel` out of the build context (the
    patterns this repository uses: names, folders, `!` exceptions)."""
    import fnmatch

    excluded = False
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").replace("**/", "")
        parts = Path(rel).parts
        hit = any(
            fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) or fnmatch.fnmatch(parts[i], pattern)
            for i in range(len(parts))
        )
        if hit:
            excluded = not negate
    return excluded


def test_the_containerfile_stages_and_copies(docs, site):
    steps = containerfile_instructions()
    args: dict[str, str] = {}
    stages = []
    for word, rest in steps:
        if word == "ARG" and "=" in rest:
            k, _, v = rest.partition("=")
            args.setdefault(k, v)
        elif word == "FROM":
            image, _, name = rest.partition(" AS ")
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
            stages.append((name.strip(), image))
    assert [s for s, _ in stages] == ["build", "oxwsgi", "app"], stages
    assert stages[1][1] == "docker.io/library/python:3.11-slim-bookworm", stages
    assert stages[0][1].endswith("-slim-bookworm"), "build and runtime on one Debian release"
    assert stages[2][1] == "oxwsgi"

    def expand(text: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], text)

    copies = []
    for word, rest in steps:
        if word != "COPY":
            continue
        parts = rest.split()
        if any(p.startswith("--from") for p in parts):
            continue
        *sources, _dest = [expand(p) for p in parts if not p.startswith("--")]
        copies += sources
    for src in copies:
        path = REPO / src
        assert path.exists(), f"Containerfile copies {src}, which does not exist"
        assert not dockerignored(src.rstrip("/")), f"{src} is excluded by .dockerignore"
    # What the wheel needs (pyproject) is copied; the app layer comes after
    # its requirements.
    assert {"Cargo.toml", "Cargo.lock", "pyproject.toml", "crates", "python"} <= set(copies)
    assert copies.index("examples/kubernetes/requirements.txt") < copies.index("examples/kubernetes/")
    assert dockerignored("target") and dockerignored(".venv") and not dockerignored("docs/packaging.md")

    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert "pip wheel" in runs and "pip install -r /srv/app/requirements.txt" in runs
    # The image's user is the Deployment's, and not root.
    users = [rest for word, rest in steps if word == "USER"]
    uid = int(users[-1].split(":")[0])
    pod_security = docs["Deployment"]["spec"]["template"]["spec"]["securityContext"]
    assert uid == pod_security["runAsUser"] != 0 and pod_security["runAsNonRoot"] is True
    # The image's command runs the file the ConfigMap is mounted as, and
    # exposes the site's two ports.
    cmd = [rest for word, rest in steps if word == "CMD"][-1]
    assert cmd == '["run", "/etc/oxwsgi/site.toml"]' and container(docs)["args"] == ["run", "/etc/oxwsgi/site.toml"]
    exposed = {int(p) for word, rest in steps if word == "EXPOSE" for p in rest.split()}
    assert exposed == {port_of(site["listen"][0]), port_of(site["admin"])}
