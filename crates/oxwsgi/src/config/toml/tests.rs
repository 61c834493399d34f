//! Tests of the native TOML reader: the mission config, defaults, every key,
//! and every error message (file, line, key, suggestion).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::parse;
use crate::config::error::ConfigError;
use crate::config::model::{
    AccessLog, AppSource, Group, GroupTimeouts, Limits, Mount, PythonChoice, Site, StaticAlias,
    GLOBAL_APPLICATION_GROUP,
};

const BASE: &str = "/srv/site";

fn load(src: &str) -> Result<Site, ConfigError> {
    parse(src, Path::new("site.toml"), Path::new(BASE))
}

fn ok(src: &str) -> Site {
    load(src).unwrap_or_else(|e| panic!("unexpected error: {e}"))
}

fn err(src: &str) -> String {
    match load(src) {
        Ok(site) => panic!("expected an error, got {site:#?}"),
        Err(e) => e.to_string(),
    }
}

/// (line, key) of the error.
fn place(src: &str) -> (Option<usize>, Option<String>) {
    let e = load(src).unwrap_err();
    (e.line(), e.key().map(str::to_string))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn base(rel: &str) -> PathBuf {
    Path::new(BASE).join(rel)
}

const MISSION: &str = r#"listen = ["127.0.0.1:8080"]
admin = "127.0.0.1:9100"
access-log = "-"

[groups.app_one]
processes = 2
threads = 15
display-name = "%{GROUP}"

[groups.app_two]
processes = 2
threads = 15

[[mount]]
path = "/api/wsgi/one"
script = "/var/www/mysite/api/one/wsgi.py"
callable = "application"
group = "app_one"
application-group = "%{GLOBAL}"

[[mount]]
path = "/api/wsgi/two"
script = "/var/www/mysite/api/two/wsgi.py"
group = "app_two"

[[static]]
path = "/static"
dir = "/var/www/mysite/static"
"#;

#[test]
fn the_mission_config() {
    let site = ok(MISSION);
    let mut app_one = Group::new("app_one");
    app_one.processes = 2;
    app_one.display_name = Some("(wsgi:app_one)".into());
    let mut app_two = Group::new("app_two");
    app_two.processes = 2;
    let mount = |path: &str, script: &str, group: &str| Mount {
        host: None,
        path: path.into(),
        app: AppSource::Script(script.into()),
        callable: "application".into(),
        group: group.into(),
        application_group: "%{GLOBAL}".into(),
        pass_authorization: true,
        limit_request_body: None,
        environ: Vec::new(),
        preload: false,
    };
    assert_eq!(
        site,
        Site {
            hosts: Vec::new(),
            reload_include: Vec::new(),
            reload_exclude: Vec::new(),
            listen: vec![addr("127.0.0.1:8080")],
            admin: Some(addr("127.0.0.1:9100")),
            access_log: AccessLog::Stdout,
            error_log: None,
            error_log_json: false,
            user: None,
            unix_group: None,
            unix_listen: Vec::new(),
            script_reloading: true,
            limits: Limits::default(),
            groups: vec![app_one, app_two],
            mounts: vec![
                mount(
                    "/api/wsgi/one",
                    "/var/www/mysite/api/one/wsgi.py",
                    "app_one"
                ),
                mount(
                    "/api/wsgi/two",
                    "/var/www/mysite/api/two/wsgi.py",
                    "app_two"
                ),
            ],
            statics: vec![StaticAlias {
                host: None,
                path: "/static".into(),
                dir: "/var/www/mysite/static".into(),
            }],
            reload: false,
            edge: Default::default(),
        }
    );
}

#[test]
fn an_empty_file_is_the_default_site() {
    let site = ok("");
    assert_eq!(site, Site::default());
    assert_eq!(site.listen, vec![addr("127.0.0.1:8000")]);
    assert_eq!(site.access_log, AccessLog::Stdout);
    assert_eq!(site.limits.request_body, 1 << 30);
    assert_eq!(ok("# only a comment\n"), Site::default());
}

#[test]
fn listen_forms() {
    assert_eq!(
        ok(r#"listen = "0.0.0.0:80""#).listen,
        vec![addr("0.0.0.0:80")]
    );
    assert_eq!(
        ok(r#"listen = ["127.0.0.1:80", "[::1]:80", "*:81"]"#).listen,
        vec![addr("127.0.0.1:80"), addr("[::1]:80"), addr("0.0.0.0:81")]
    );
    assert_eq!(
        err("listen = []"),
        "site.toml:1: `listen` must name at least one address"
    );
    assert_eq!(
        err("\nlisten = 8000"),
        "site.toml:2: `listen` must be a \"HOST:PORT\" or \"unix:/path\" string, or an array of them and of { addr = ... } tables, got 8000"
    );
    let unix = ok("listen = [\"127.0.0.1:80\", \"unix:/run/ox/site.sock\"]\nsocket-mode = \"0600\"\nsocket-group = \"www-data\"");
    assert_eq!(unix.listen, vec![addr("127.0.0.1:80")]);
    assert_eq!(unix.unix_listen.len(), 1);
    assert_eq!(
        unix.unix_listen[0].path,
        std::path::PathBuf::from("/run/ox/site.sock")
    );
    assert_eq!(unix.unix_listen[0].mode, 0o600);
    assert_eq!(unix.unix_listen[0].group.as_deref(), Some("www-data"));
    assert!(ok("listen = \"unix:/tmp/a.sock\"").listen.is_empty());
    assert!(err("listen = [\"unix:\"]").contains("names no socket path"));
    assert!(err("socket-mode = \"0600\"").contains("`listen` names none"));
    assert!(err("listen = \"unix:/a.sock\"\nsocket-mode = \"999\"").contains("an octal mode"));
    assert!(err("listen = [\"unix:/a.sock\", \"unix:/a.sock\"]").contains("twice"));
    assert_eq!(
        err("listen = [\n  \"127.0.0.1:80\",\n  \"8000\",\n]"),
        "site.toml:3: `listen` is invalid: expected HOST:PORT (e.g. 127.0.0.1:8000, [::1]:8000, *:8000), got `8000`"
    );
    assert_eq!(
        err(r#"listen = ["127.0.0.1:80", "127.0.0.1:80"]"#),
        "site.toml:1: `listen` lists 127.0.0.1:80 twice"
    );
    assert_eq!(place("listen = [1]"), (Some(1), Some("listen".into())));
}

#[test]
fn admin_needs_its_own_address() {
    assert_eq!(
        ok(r#"admin = "localhost:9100""#).admin,
        Some(addr("127.0.0.1:9100"))
    );
    assert_eq!(
        err("listen = \"127.0.0.1:80\"\nadmin = \"127.0.0.1:80\""),
        "site.toml:2: `admin` 127.0.0.1:80 is also in `listen`: the admin endpoints need an address of their own"
    );
    assert_eq!(
        err("admin = 9100"),
        "site.toml:1: `admin` must be HOST:PORT (e.g. 127.0.0.1:8000, [::1]:8000, *:8000), got 9100"
    );
}

#[test]
fn logs() {
    assert_eq!(ok(r#"access-log = "-""#).access_log, AccessLog::Stdout);
    assert_eq!(ok("access-log = false").access_log, AccessLog::Off);
    assert_eq!(
        ok(r#"access-log = "logs/access.log""#).access_log,
        AccessLog::File(base("logs/access.log"))
    );
    assert_eq!(
        ok(r#"access-log = "/var/log/a.log""#).access_log,
        AccessLog::File("/var/log/a.log".into())
    );
    assert_eq!(
        err("access-log = true"),
        "site.toml:1: `access-log` must be \"-\" (stdout), a file path, or false, got true"
    );
    assert_eq!(ok(r#"error-log = "-""#).error_log, None);
    assert_eq!(
        ok(r#"error-log = "./logs/error.log""#).error_log,
        Some(base("logs/error.log"))
    );
    assert_eq!(
        err("error-log = false"),
        "site.toml:1: `error-log` must be a file path, or \"-\" (stderr), got false"
    );
}

#[test]
fn front_limits() {
    let site = ok(r#"
limit-request-line = 4096
limit-request-fields = 50
limit-request-field-size = "16K"
limit-request-body = "10M"
"#);
    assert_eq!(
        site.limits,
        Limits {
            request_line: 4096,
            request_fields: 50,
            request_field_size: 16 << 10,
            request_body: 10 << 20,
        }
    );
    // 0: no limit, as in Apache.
    let site = ok("limit-request-body = 0\nlimit-request-fields = 0");
    assert_eq!(site.limits.request_body, u64::MAX);
    assert_eq!(site.limits.request_fields, usize::MAX);
    assert_eq!(ok("limit-request-body = 1_000").limits.request_body, 1000);
    assert_eq!(
        err("limit-request-line = 0"),
        "site.toml:1: `limit-request-line` must be at least 1"
    );
    assert_eq!(
        err("limit-request-body = \"lots\""),
        "site.toml:1: `limit-request-body` expected a size in bytes, or with a K, M or G suffix (e.g. 1048576, 512K, 10M), got `lots`"
    );
    assert_eq!(
        err("limit-request-body = -1"),
        "site.toml:1: `limit-request-body` must be a size in bytes, or with a K, M or G suffix (e.g. 1048576, 512K, 10M), got -1"
    );
    assert_eq!(
        err("limit-request-fields = 1.5"),
        "site.toml:1: `limit-request-fields` must be an integer ≥ 0, got 1.5"
    );
}

#[test]
fn every_group_key() {
    let site = ok(r#"
[groups.web]
processes = 4
threads = 8
display-name = "web-%{GROUP}"
python-home = "venv"
python-path = ["src", "/opt/lib"]
home = "."
user = "www-data"
group = 33
umask = "0027"
lang = "en_US.UTF-8"
locale = "C.UTF-8"
maximum-requests = 1000
maximum-requests-jitter = 50
memory-limit = "512M"
listen-backlog = 100
request-timeout = 60
graceful-timeout = 15
shutdown-timeout = 5.5
startup-timeout = 30
inactivity-timeout = 600
queue-timeout = 10
restart-interval = 86400
deadlock-timeout = 300
interrupt-timeout = 0
"#);
    let s = Duration::from_secs;
    let g = &site.groups[0];
    assert_eq!(
        *g,
        Group {
            name: "web".into(),
            processes: 4,
            threads: 8,
            display_name: Some("web-(wsgi:web)".into()),
            python: PythonChoice::Home(base("venv")),
            python_path: vec![base("src"), "/opt/lib".into()],
            home: Some(BASE.into()),
            timeouts: GroupTimeouts {
                request: Some(s(60)),
                graceful: Some(s(15)),
                shutdown: Some(Duration::from_millis(5500)),
                startup: Some(s(30)),
                inactivity: Some(s(600)),
                queue: Some(s(10)),
                restart_interval: Some(s(86400)),
                deadlock: Some(s(300)),
                interrupt: Some(Duration::ZERO),
            },
            maximum_requests: Some(1000),
            memory_limit: Some(512 << 20),
            cpu_time_limit: None,
            virtual_memory_limit: None,
            stack_size: None,
            listen_backlog: Some(100),
            maximum_requests_jitter: Some(50),
            user: Some("www-data".into()),
            unix_group: Some("33".into()),
            supplementary_groups: Vec::new(),
            umask: Some(0o027),
            lang: Some("en_US.UTF-8".into()),
            locale: Some("C.UTF-8".into()),
            env: Vec::new(),
            interpreter_gil: None,
            cpu_policy: None,
            cpu_priority: None,
            read_ahead: None,
            scaling: None,
        }
    );
}

#[test]
fn group_defaults_and_zero_means_off() {
    let site = ok("[groups.g]\n");
    assert_eq!(site.groups, vec![Group::new("g")]);
    assert_eq!((site.groups[0].processes, site.groups[0].threads), (1, 15));
    let site = ok(r#"
[groups.g]
maximum-requests = 0
memory-limit = 0
request-timeout = 0
queue-timeout = 0.0
display-name = ""
"#);
    let g = &site.groups[0];
    assert_eq!(g.maximum_requests, None);
    assert_eq!(g.memory_limit, None);
    assert_eq!(g.timeouts, GroupTimeouts::default());
    assert_eq!(g.display_name, None);
}

#[test]
fn groups_keep_config_order() {
    let site = ok("[groups.zeta]\n[groups.alpha]\n[groups.mid]\n");
    let names: Vec<&str> = site.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
}

#[test]
fn python_choices() {
    let g = |src: &str| ok(src).groups.remove(0);
    assert_eq!(g("[groups.a]\n").python, PythonChoice::Default);
    assert_eq!(
        g("[groups.a]\npython = \"venv/bin/python\"").python,
        PythonChoice::Interpreter(base("venv/bin/python"))
    );
    assert_eq!(
        g("[groups.a]\npython = \"/usr/bin/python3\"").python,
        PythonChoice::Interpreter("/usr/bin/python3".into())
    );
    // A bare name is looked up on PATH when the daemon starts.
    assert_eq!(
        g("[groups.a]\npython = \"python3.12\"").python,
        PythonChoice::Interpreter("python3.12".into())
    );
    assert_eq!(
        g("[groups.a]\npython-home = \"../venv\"").python,
        PythonChoice::Home(base("../venv"))
    );
    assert_eq!(
        err("[groups.a]\npython = \"/usr/bin/python3\"\npython-home = \"/venv\""),
        "site.toml:3: `python-home` in [groups.a] cannot be set together with `python`: set the interpreter (`python`) or the virtualenv (`python-home`), not both"
    );
    assert_eq!(
        err("[groups.a]\npython = \"\""),
        "site.toml:2: `python` in [groups.a] must not be empty"
    );
}

#[test]
fn python_path_as_list_or_string() {
    let pp = |src: &str| ok(src).groups.remove(0).python_path;
    assert_eq!(
        pp("[groups.a]\npython-path = [\"lib\", \"/abs\"]"),
        vec![base("lib"), PathBuf::from("/abs")]
    );
    assert_eq!(
        pp("[groups.a]\npython-path = \"lib:/abs::./x\""),
        vec![base("lib"), PathBuf::from("/abs"), base("x")]
    );
    assert_eq!(pp("[groups.a]\npython-path = []"), Vec::<PathBuf>::new());
    assert_eq!(
        err("[groups.a]\npython-path = 3"),
        "site.toml:2: `python-path` in [groups.a] must be an array of paths or a \"dir1:dir2\" string, got 3"
    );
    assert_eq!(
        err("[groups.a]\npython-path = [\n\"ok\",\n1]"),
        "site.toml:4: `python-path` in [groups.a] must be a string, got 1"
    );
}

#[test]
fn processes_and_threads_must_be_positive() {
    let src = "[groups.app_one]\nprocesses = 0\n";
    assert_eq!(
        err(src),
        "site.toml:2: `processes` in [groups.app_one] must be an integer ≥ 1, got 0"
    );
    assert_eq!(place(src), (Some(2), Some("processes".into())));
    assert_eq!(
        err("[groups.app_one]\nthreads = \"4\"\n"),
        "site.toml:2: `threads` in [groups.app_one] must be an integer ≥ 1, got \"4\""
    );
    assert_eq!(
        err("[groups.app_one]\nthreads = -2\n"),
        "site.toml:2: `threads` in [groups.app_one] must be an integer ≥ 1, got -2"
    );
    assert_eq!(
        err("[groups.app_one]\nthreads = 99999999999999999999\n"),
        "site.toml:2: `threads` in [groups.app_one] is too large: 99999999999999999999"
    );
}

#[test]
fn durations_and_sizes_in_groups() {
    assert_eq!(
        err("[groups.a]\nrequest-timeout = \"30s\""),
        "site.toml:2: `request-timeout` in [groups.a] must be a number of seconds (e.g. 30 or 2.5), got \"30s\""
    );
    assert_eq!(
        err("[groups.a]\nrequest-timeout = -1"),
        "site.toml:2: `request-timeout` in [groups.a] must be a number of seconds (e.g. 30 or 2.5), got -1"
    );
    assert_eq!(
        err("[groups.a]\nqueue-timeout = -0.5"),
        "site.toml:2: `queue-timeout` in [groups.a] must be a number of seconds (e.g. 30 or 2.5), got -0.5"
    );
    assert_eq!(
        err("[groups.a]\nqueue-timeout = inf"),
        "site.toml:2: `queue-timeout` in [groups.a] is invalid: expected a number of seconds (e.g. 30 or 2.5), got inf"
    );
    let g = ok("[groups.a]\nmemory-limit = 1073741824\nrequest-timeout = 0.25")
        .groups
        .remove(0);
    assert_eq!(g.memory_limit, Some(1 << 30));
    assert_eq!(g.timeouts.request, Some(Duration::from_millis(250)));
    assert_eq!(
        err("[groups.a]\nmemory-limit = \"1X\""),
        "site.toml:2: `memory-limit` in [groups.a] expected a size in bytes, or with a K, M or G suffix (e.g. 1048576, 512K, 10M), got `1X`"
    );
    assert_eq!(
        err("[groups.a]\nmaximum-requests = -5"),
        "site.toml:2: `maximum-requests` in [groups.a] must be a non-negative integer, got -5"
    );
}

#[test]
fn umask_forms() {
    let umask =
        |v: &str| load(&format!("[groups.a]\numask = {v}")).map(|mut s| s.groups.remove(0).umask);
    assert_eq!(umask("\"0022\"").unwrap(), Some(0o022));
    assert_eq!(umask("\"022\"").unwrap(), Some(0o022));
    assert_eq!(umask("\"0o007\"").unwrap(), Some(0o007));
    assert_eq!(umask("0o027").unwrap(), Some(0o027));
    assert_eq!(umask("0").unwrap(), Some(0));
    for bad in ["22", "\"0089\"", "\"\"", "0o1777", "true"] {
        let e = umask(bad).unwrap_err().to_string();
        assert!(
            e.starts_with("site.toml:2: `umask` in [groups.a] must be an octal string like \"0022\" or an octal integer like 0o022, got "),
            "{bad}: {e}"
        );
    }
}

#[test]
fn user_and_group_names_or_ids() {
    let g = ok("[groups.a]\nuser = 1000\ngroup = \"staff\"")
        .groups
        .remove(0);
    assert_eq!(g.user.as_deref(), Some("1000"));
    assert_eq!(g.unix_group.as_deref(), Some("staff"));
    assert_eq!(
        err("[groups.a]\nuser = \"\""),
        "site.toml:2: `user` in [groups.a] must be a name or a numeric id, got \"\""
    );
}

#[test]
fn unknown_group_key_suggests_the_nearest() {
    let src = "[groups.app_one]\nprocesses = 2\nprocesess = 2\n";
    assert_eq!(
        err(src),
        "site.toml:3: unknown key `procesess` in [groups.app_one]; did you mean `processes`?"
    );
    assert_eq!(place(src), (Some(3), Some("procesess".into())));
    assert_eq!(
        err("[groups.a]\ndisplay_name = \"x\""),
        "site.toml:2: unknown key `display_name` in [groups.a]; did you mean `display-name`?"
    );
    assert_eq!(
        err("[groups.a]\ncolour = \"blue\""),
        "site.toml:2: unknown key `colour` in [groups.a]"
    );
    assert_eq!(
        err("[groups.a]\nscript = \"wsgi.py\""),
        "site.toml:2: unknown key `script` in [groups.a]: it belongs in a [[mount]] table"
    );
    assert_eq!(
        err("[groups.a]\nlisten = \"127.0.0.1:1\""),
        "site.toml:2: unknown key `listen` in [groups.a]: it belongs at the top level, before any [table]"
    );
    // A sub-table is an unknown key too.
    assert_eq!(
        err("[groups.a.extra]\nx = 1"),
        "site.toml:1: unknown key `extra` in [groups.a]"
    );
}

#[test]
fn unknown_top_level_keys() {
    assert_eq!(
        err("lisen = \"127.0.0.1:80\""),
        "site.toml:1: unknown key `lisen` at the top level; did you mean `listen`?"
    );
    assert_eq!(
        err("\n\n[group.app]\nprocesses = 1"),
        "site.toml:3: `group` is the Unix group the front runs as (a name or an id); daemon groups are `[groups.NAME]`"
    );
    assert_eq!(
        err("[[mounts]]\npath = \"/\""),
        "site.toml:1: unknown key `mounts` at the top level; did you mean `mount`?"
    );
    assert_eq!(
        err("processes = 4"),
        "site.toml:1: unknown key `processes` at the top level: it belongs in a [groups.NAME] table"
    );
    assert_eq!(
        err("script = \"wsgi.py\""),
        "site.toml:1: unknown key `script` at the top level: it belongs in a [[mount]] table"
    );
    assert_eq!(
        err("dir = \"static\""),
        "site.toml:1: unknown key `dir` at the top level: it belongs in a [[static]] table"
    );
    assert_eq!(
        err("limit-request-bdy = 5"),
        "site.toml:1: unknown key `limit-request-bdy` at the top level; did you mean `limit-request-body`?"
    );
}

#[test]
fn unknown_mount_and_static_keys() {
    assert_eq!(
        err("[[mount]]\npath = \"/\"\nscript = \"w.py\"\nscirpt = \"x\""),
        "site.toml:4: unknown key `scirpt` in [[mount]]; did you mean `script`?"
    );
    assert_eq!(
        err("[[mount]]\npath = \"/\"\nscript = \"w.py\"\nprocesses = 2"),
        "site.toml:4: unknown key `processes` in [[mount]]: it belongs in the mount's [groups.NAME] table (name the group here with `group = \"NAME\"`)"
    );
    assert_eq!(
        err("[[mount]]\npath = \"/\"\nscript = \"w.py\"\ndir = \"s\""),
        "site.toml:4: unknown key `dir` in [[mount]]: it belongs in a [[static]] table"
    );
    assert_eq!(
        err("[[static]]\npath = \"/s\"\ndirectory = \"s\""),
        "site.toml:3: unknown key `directory` in [[static]]"
    );
    assert_eq!(
        err("[[static]]\npath = \"/s\"\ndri = \"s\""),
        "site.toml:3: unknown key `dri` in [[static]]; did you mean `dir`?"
    );
    assert_eq!(
        err("[[static]]\npath = \"/s\"\nscript = \"s\""),
        "site.toml:3: unknown key `script` in [[static]]: it belongs in a [[mount]] table"
    );
}

#[test]
fn mount_and_static_must_be_arrays_of_tables() {
    assert_eq!(
        err("[mount]\npath = \"/\""),
        "site.toml:1: `mount` must be an array of tables: write [[mount]], not [mount], got a table"
    );
    assert_eq!(
        err("static = \"/s\""),
        "site.toml:1: `static` must be an array of tables: write [[static]], not [static], got \"/s\""
    );
    assert_eq!(
        err("mount = [1]"),
        "site.toml:1: `mount` must be an array of tables: write [[mount]], not [mount], got 1"
    );
    assert_eq!(
        err("groups = 1"),
        "site.toml:1: `groups` must be a table of groups ([groups.NAME]), got 1"
    );
    assert_eq!(
        err("[groups]\napp = 1"),
        "site.toml:2: `groups.app` must be a table ([groups.NAME] with the group's settings), got 1"
    );
}

#[test]
fn inline_tables_work_too() {
    let site = ok(r#"
groups = { a = { processes = 3 } }
mount = [{ path = "/x", module = "m:app", group = "a" }]
"#);
    assert_eq!(site.groups[0].processes, 3);
    assert_eq!(site.mounts[0].group, "a");
}

#[test]
fn bad_group_names() {
    assert_eq!(
        err("[groups.\"a b\"]\n"),
        "site.toml:1: group name \"a b\" must not contain ' '"
    );
    assert_eq!(place("\n[groups.\"\"]\n"), (Some(2), Some("".into())));
    // Names TOML must quote are quoted back in messages.
    assert_eq!(
        err("[groups.\"example.com\"]\nthreds = 1"),
        "site.toml:2: unknown key `threds` in [groups.\"example.com\"]; did you mean `threads`?"
    );
}

#[test]
fn mount_sources_and_callables() {
    let site = ok(r#"
[[mount]]
path = "/a"
module = "pkg.wsgi:app"

[[mount]]
path = "/b"
module = "pkg.other"
callable = "make"

[[mount]]
path = "/c"
script = "c/wsgi.py"

[[mount]]
path = "/d"
module = "pkg.d:app"
callable = "app"
"#);
    let m = &site.mounts;
    assert_eq!(m[0].app, AppSource::Module("pkg.wsgi".into()));
    assert_eq!(m[0].callable, "app");
    assert_eq!(m[1].app, AppSource::Module("pkg.other".into()));
    assert_eq!(m[1].callable, "make");
    assert_eq!(m[2].app, AppSource::Script(base("c/wsgi.py")));
    assert_eq!(m[2].callable, "application");
    assert_eq!(m[3].callable, "app");
}

#[test]
fn mount_source_errors() {
    assert_eq!(
        err("[[mount]]\npath = \"/a\"\nscript = \"a.py\"\nmodule = \"a\""),
        "site.toml:4: `module` in [[mount]] cannot be set together with `script`: a mount runs one or the other"
    );
    assert_eq!(
        err("\n[[mount]]\npath = \"/a\""),
        "site.toml:2: mount \"/a\" needs `script = \"path/to/wsgi.py\"` or `module = \"package.module:callable\"`"
    );
    assert_eq!(
        err("[[mount]]\nscript = \"a.py\""),
        "site.toml:1: [[mount]] has no `path` (the URL prefix)"
    );
    assert_eq!(
        place("[[mount]]\nscript = \"a.py\""),
        (Some(1), Some("path".into()))
    );
    assert_eq!(
        err("[[mount]]\npath = \"/a\"\nmodule = \"pkg.wsgi:a\"\ncallable = \"b\""),
        "site.toml:4: `callable` in [[mount]] says \"b\" but `module` names the callable \"a\": keep one"
    );
    assert_eq!(
        err("[[mount]]\npath = \"/a\"\nmodule = \"pkg/wsgi.py\""),
        "site.toml:3: `module` in [[mount]] \"pkg/wsgi.py\" is not a Python module reference: expected package.module or package.module:callable"
    );
    assert_eq!(
        err("[[mount]]\npath = \"/a\"\nscript = \"a.py\"\ncallable = \"app(1)\""),
        "site.toml:4: `callable` in [[mount]] \"app(1)\": an application factory is called without arguments, as name()"
    );
    assert_eq!(
        err("[[mount]]\npath = \"/a\"\nscript = \"\""),
        "site.toml:3: `script` in [[mount]] must not be empty"
    );
}

#[test]
fn mount_paths_are_normalised() {
    let site = ok(r#"
[[mount]]
path = "api/one/"
module = "a"

[[mount]]
path = "/"
module = "b"
"#);
    assert_eq!(site.mounts[0].path, "/api/one");
    assert_eq!(site.mounts[1].path, "/");
    assert_eq!(
        err("[[mount]]\npath = \"/a//b\"\nmodule = \"a\""),
        "site.toml:2: `path` in [[mount]] \"/a//b\" has an empty path segment (`//`)"
    );
    assert_eq!(
        err("[[mount]]\npath = 1\nmodule = \"a\""),
        "site.toml:2: `path` in [[mount]] must be a string, got 1"
    );
}

#[test]
fn mount_options() {
    let site = ok(r#"
[[mount]]
path = "/a"
module = "a"
application-group = "isolated"
pass-authorization = false
limit-request-body = "1M"

[[mount]]
path = "/b"
module = "b"
application-group = ""
limit-request-body = 0
"#);
    let (a, b) = (&site.mounts[0], &site.mounts[1]);
    assert_eq!(a.application_group, "isolated");
    assert!(!a.pass_authorization);
    assert_eq!(a.limit_request_body, Some(1 << 20));
    // "" is the main interpreter, as WSGIApplicationGroup "" is.
    assert_eq!(b.application_group, "%{GLOBAL}");
    assert!(b.pass_authorization);
    assert_eq!(b.limit_request_body, Some(u64::MAX));
    assert_eq!(
        err("[[mount]]\npath = \"/a\"\nmodule = \"a\"\npass-authorization = \"yes\""),
        "site.toml:4: `pass-authorization` in [[mount]] must be true or false, got \"yes\""
    );
}

#[test]
fn mounts_without_a_group_get_one_of_their_own() {
    let site = ok(r#"
[groups.shared]
threads = 4

[[mount]]
path = "/api/wsgi/one"
module = "one"

[[mount]]
path = "/"
module = "root"

[[mount]]
path = "/api/wsgi-one"
module = "dash"

[[mount]]
path = "/x"
module = "x"
group = "shared"
"#);
    let groups: Vec<&str> = site.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(groups, ["shared", "api_wsgi_one", "root", "api_wsgi_one_2"]);
    let mounts: Vec<&str> = site.mounts.iter().map(|m| m.group.as_str()).collect();
    assert_eq!(mounts, ["api_wsgi_one", "root", "api_wsgi_one_2", "shared"]);
    assert_eq!(site.groups[1], Group::new("api_wsgi_one"));
    assert_eq!(site.groups[1].display_name, None);
}

#[test]
fn own_group_name_clashing_with_a_defined_group() {
    let src = "[groups.api]\nthreads = 2\n\n[[mount]]\npath = \"/api\"\nmodule = \"a\"\n";
    assert_eq!(
        err(src),
        "site.toml:4: mount \"/api\" names no group, and the group of its own would be `api`, which [groups.api] (line 1) already defines: add `group = \"api\"` to run it there"
    );
}

#[test]
fn undefined_group() {
    let src = r#"[groups.app_one]
[groups.app_two]

[[mount]]
path = "/api"
module = "a"
group = "app_thre"
"#;
    assert_eq!(
        err(src),
        "site.toml:7: mount \"/api\" names undefined group `app_thre` (defined: app_one, app_two)"
    );
    assert_eq!(place(src), (Some(7), Some("group".into())));
    assert_eq!(
        err("[groups.app_one]\n[groups.app_three]\n[[mount]]\npath = \"/api\"\nmodule = \"a\"\ngroup = \"app_thre\""),
        "site.toml:6: mount \"/api\" names undefined group `app_thre` (defined: app_one, app_three); did you mean `app_three`?"
    );
    assert_eq!(
        err("[[mount]]\npath = \"/api\"\nmodule = \"a\"\ngroup = \"web\""),
        "site.toml:4: mount \"/api\" names undefined group `web` (no [groups.NAME] table is defined)"
    );
}

#[test]
fn duplicate_prefixes() {
    assert_eq!(
        err("[[mount]]\npath = \"/api\"\nmodule = \"a\"\n[[mount]]\npath = \"/api/\"\nmodule = \"b\""),
        "site.toml:5: two mounts at \"/api\" (the other one is at line 2)"
    );
    assert_eq!(
        err("[[mount]]\npath = \"/s\"\nmodule = \"a\"\n[[static]]\npath = \"/s\"\ndir = \"s\""),
        "site.toml:5: \"/s\" is both a mount and a static path (the mount is at line 2)"
    );
    assert_eq!(
        err("[[static]]\npath = \"/s\"\ndir = \"a\"\n[[static]]\npath = \"s\"\ndir = \"b\""),
        "site.toml:5: two statics at \"/s\" (the other one is at line 2)"
    );
}

#[test]
fn statics() {
    let site = ok("[[static]]\npath = \"/static/\"\ndir = \"static\"\n[[static]]\npath = \"/m\"\ndir = \"/srv/m\"");
    assert_eq!(
        site.statics,
        vec![
            StaticAlias {
                host: None,
                path: "/static".into(),
                dir: base("static")
            },
            StaticAlias {
                host: None,
                path: "/m".into(),
                dir: "/srv/m".into()
            },
        ]
    );
    assert_eq!(
        err("[[static]]\npath = \"/s\""),
        "site.toml:1: static \"/s\" has no `dir` (the folder it serves)"
    );
    assert_eq!(
        err("[[static]]\ndir = \"s\""),
        "site.toml:1: [[static]] has no `path` (the URL prefix)"
    );
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let site = ok(r#"
access-log = "logs/access.log"
error-log = "logs/error.log"

[groups.g]
python = "./venv/bin/python"
python-path = "lib"
home = "app"

[[mount]]
path = "/"
script = "app/wsgi.py"
group = "g"

[[static]]
path = "/static"
dir = "../shared/static"
"#);
    assert_eq!(site.access_log, AccessLog::File(base("logs/access.log")));
    assert_eq!(site.error_log, Some(base("logs/error.log")));
    let g = &site.groups[0];
    assert_eq!(g.python, PythonChoice::Interpreter(base("venv/bin/python")));
    assert_eq!(g.python_path, vec![base("lib")]);
    assert_eq!(g.home, Some(base("app")));
    assert_eq!(site.mounts[0].app, AppSource::Script(base("app/wsgi.py")));
    assert_eq!(site.statics[0].dir, base("../shared/static"));
}

#[test]
fn toml_syntax_errors_are_one_line_with_the_line() {
    let e = err("listen = [\"127.0.0.1:80\"]\n[groups.x]\nprocesses = \n");
    assert!(e.starts_with("site.toml:3: TOML syntax error: "), "{e}");
    assert!(!e.contains('\n'), "{e}");
    assert_eq!(
        err("a = 1\nlisten = \"127.0.0.1:1\"\nlisten = \"127.0.0.1:2\""),
        "site.toml:3: TOML syntax error: duplicate key"
    );
}

#[test]
fn wrong_types_name_what_was_given() {
    assert_eq!(
        err("[groups.a]\nthreads = [1]"),
        "site.toml:2: `threads` in [groups.a] must be an integer ≥ 1, got an array"
    );
    assert_eq!(
        err("[groups.a]\nthreads = { n = 1 }"),
        "site.toml:2: `threads` in [groups.a] must be an integer ≥ 1, got a table"
    );
    assert_eq!(
        err("[groups.a]\nlang = 1979-05-27"),
        "site.toml:2: `lang` in [groups.a] must be a string, got 1979-05-27"
    );
    assert_eq!(
        err("[groups.a]\nthreads = 0x10\nprocesses = 0b0"),
        "site.toml:3: `processes` in [groups.a] must be an integer ≥ 1, got 0b0"
    );
    assert_eq!(ok("[groups.a]\nthreads = 0x10").groups[0].threads, 16);
}

#[test]
fn the_two_apps_example_file() {
    let src = include_str!("../../../../../examples/two-apps/oxwsgi.toml");
    let site = ok(src);
    let names: Vec<&str> = site.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["app_one", "app_two"]);
    for g in &site.groups {
        assert_eq!((g.processes, g.threads), (2, 15));
        assert_eq!(g.display_name, Some(format!("(wsgi:{})", g.name)));
    }
    assert_eq!(
        site.mounts[0].app,
        AppSource::Script(base("api/one/wsgi.py"))
    );
    assert_eq!(
        site.mounts[1].app,
        AppSource::Script(base("api/two/wsgi.py"))
    );
    assert_eq!(site.mounts[1].application_group, GLOBAL_APPLICATION_GROUP);
}

#[test]
fn preload_and_interpreter_gil() {
    let site = ok(r#"
[groups.g]
interpreter-gil = "own"

[[mount]]
path = "/a"
module = "a"
group = "g"
application-group = "isolated"
preload = true

[[mount]]
path = "/b"
module = "b"
"#);
    assert!(site.mounts[0].preload);
    assert!(!site.mounts[1].preload);
    let g = site.groups.iter().find(|g| g.name == "g").unwrap();
    assert_eq!(
        g.interpreter_gil,
        Some(crate::config::model::InterpreterGil::Own)
    );
    let e = err("[groups.g]\ninterpreter-gil = \"mine\"");
    assert!(e.contains("interpreter-gil"), "{e}");
    assert!(e.contains("\"shared\" or \"own\""), "{e}");
}

#[test]
fn cpu_policy_and_priority() {
    let site = ok("[groups.g]\ncpu-policy = \"normal\"\ncpu-priority = 5\n\n[[mount]]\npath = \"/\"\nmodule = \"a\"\ngroup = \"g\"\n");
    let g = site.groups.iter().find(|g| g.name == "g").unwrap();
    assert_eq!(g.cpu_policy, Some(crate::config::model::CpuPolicy::Normal));
    assert_eq!(g.cpu_priority, Some(5));
    let e = err("[groups.g]\ncpu-policy = \"fifo\"");
    assert!(
        e.contains("cpu-policy") && e.contains("\"batch\" or \"normal\""),
        "{e}"
    );
    let e = err("[groups.g]\ncpu-priority = 20");
    assert!(e.contains("cpu-priority") && e.contains("-20 to 19"), "{e}");
}

#[test]
fn edge_keys() {
    let site = ok(r#"
header-timeout = 7
keep-alive-timeout = 3
max-connections = 50
front-threads = 3
drain-grace = 7.5
trusted-proxies = ["10.0.0.0/8", "127.0.0.1"]
trusted-proxy-headers = ["X-Forwarded-For", "x-forwarded-proto"]
access-log-format = "%h %>s %{group}x"

[[listen]]
addr = "127.0.0.1:8443"
tls-cert = "/etc/cert.pem"
tls-key = "/etc/key.pem"

[[listen]]
addr = "127.0.0.1:8080"
h2c = true

[[static]]
path = "/static"
dir = "/srv/static"
follow-symlinks = true
"#);
    assert_eq!(
        site.listen,
        vec![addr("127.0.0.1:8443"), addr("127.0.0.1:8080")]
    );
    let edge = &site.edge;
    assert_eq!(edge.header_timeout, std::time::Duration::from_secs(7));
    assert_eq!(edge.keep_alive_timeout, std::time::Duration::from_secs(3));
    assert_eq!(edge.max_connections, 50);
    assert_eq!(edge.front_threads(), 3);
    assert_eq!(edge.drain_grace, std::time::Duration::from_millis(7500));
    assert_eq!(Site::default().edge.drain_grace, std::time::Duration::ZERO);
    assert_eq!(edge.trusted_proxies.len(), 2);
    assert_eq!(edge.trusted_proxy_headers.len(), 2);
    assert_eq!(edge.access_log_format, "%h %>s %{group}x");
    let tls = edge.listener(addr("127.0.0.1:8443")).tls.unwrap();
    assert_eq!(tls.cert, std::path::PathBuf::from("/etc/cert.pem"));
    assert!(edge.listener(addr("127.0.0.1:8080")).h2c);
    assert!(edge.follows_symlinks("/static"));
}

#[test]
fn body_and_response_buffer_keys() {
    let edge = Site::default().edge;
    assert_eq!(edge.body_read.timeout, std::time::Duration::from_secs(20));
    assert_eq!(edge.body_read.min_rate, 500);
    assert_eq!(edge.body_buffer, 1 << 20);
    let site = ok(r#"
body-timeout = 5
body-timeout-max = 30
body-min-rate = "1K"
body-buffer-size = "4M"
response-buffer-size = "8M"
response-buffer-total = "1G"
"#);
    let edge = &site.edge;
    assert_eq!(edge.body_read.timeout, std::time::Duration::from_secs(5));
    assert_eq!(edge.body_read.max, Some(std::time::Duration::from_secs(30)));
    assert_eq!(edge.body_read.min_rate, 1024);
    assert_eq!(edge.body_buffer, 4 << 20);
    assert_eq!(edge.response_buffer, 8 << 20);
    assert_eq!(edge.response_buffer_total, 1 << 30);
    assert!(ok("body-timeout = 0").edge.body_read.timeout.is_zero());
}

#[test]
fn edge_key_errors() {
    assert_eq!(
        err("listen = [{ addr = \"127.0.0.1:1\", tls-cert = \"/c.pem\" }]"),
        "site.toml:1: `tls-cert` in [[listen]] needs `tls-key` beside it"
    );
    assert!(
        err("trusted-proxies = [\"10.0.0.0/33\"]").starts_with("site.toml:1: `trusted-proxies`")
    );
    assert!(err("access-log-format = \"%Z\"").contains("`%Z` is not a supported log code"));
    assert!(err("trusted-proxy-headers = [\"X-Forwarded-Fro\"]")
        .contains("not a proxy header oxwsgi knows"));
    assert!(err("header-timeout = 0").contains("must be more than 0 seconds"));
    assert!(err("front-threads = 0").contains("front-threads"));
    assert!(err("body-timeout = 30\nbody-timeout-max = 10")
        .starts_with("site.toml:2: `body-timeout-max` is less than body-timeout"));
    assert!(err("body-buffer-size = \"lots\"").starts_with("site.toml:1: `body-buffer-size`"));
    assert!(Site::default().edge.front_threads() >= 1);
}

#[test]
fn group_env_env_file_and_mount_set_env() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.env"),
        "# secrets\nSECRET='s3cr$t'\nMODE=file\n",
    )
    .unwrap();
    let src = r#"
[groups.g]
env-file = "app.env"
env = { MODE = "table", DJANGO_SETTINGS_MODULE = "site.settings" }

[[mount]]
path = "/"
module = "m:app"
group = "g"
set-env = { TENANT = "one" }
"#;
    let site = super::parse(src, std::path::Path::new("site.toml"), dir.path()).unwrap();
    let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
    assert_eq!(
        site.groups[0].env,
        vec![
            pair("SECRET", "s3cr$t"),
            pair("MODE", "table"),
            pair("DJANGO_SETTINGS_MODULE", "site.settings"),
        ]
    );
    assert_eq!(site.mounts[0].environ, vec![pair("TENANT", "one")]);
    assert!(err("[groups.g]\nenv = { \"1X\" = \"v\" }")
        .starts_with("site.toml:2: `env.1X` in [groups.g] `1X` is not a variable name"));
    assert!(err("[groups.g]\nenv = { A = 1 }").contains("must be a string"));
    assert!(err("[groups.g]\nenv = \"A=1\"").contains("a table of NAME"));
    assert!(err("[groups.g]\nenv = { OXWSGI_WORKER_LIB = \"x\" }").contains("oxwsgi's own"));
    let e = err("[groups.g]\nenv-file = \"/nonexistent/app.env\"");
    assert!(e.contains("cannot read the environment file"), "{e}");
}

#[test]
fn virtual_hosts() {
    let site = ok(r#"
listen = ["127.0.0.1:8080", { addr = "0.0.0.0:8443", tls-cert = "/c.pem", tls-key = "/c.key" }]

[[mount]]
path = "/health"
module = "health"

[[host]]
names = ["A.example.", "*.a.test"]
default = true
listen = ["127.0.0.1:8080", "*:8443"]
tls-cert = "/a.pem"
tls-key = "/a.key"

[[host.mount]]
path = "/"
script = "a.py"

[[host.static]]
path = "/static"
dir = "static"

[[host]]
names = ["b.example"]
listen = ["10.0.0.1:8443"]

[[host.mount]]
path = "/api"
module = "b"
"#);
    assert_eq!(site.hosts.len(), 2);
    let a = &site.hosts[0];
    assert_eq!(a.names, ["a.example", "*.a.test"]);
    assert!(a.default);
    assert_eq!(a.addrs.len(), 2);
    assert_eq!(a.addrs[1].to_string(), "*:8443");
    assert_eq!(a.tls.as_ref().unwrap().cert, PathBuf::from("/a.pem"));
    assert_eq!(site.hosts[1].addrs[0].to_string(), "10.0.0.1:8443");
    let mounts: Vec<(&str, Option<usize>, &str)> = site
        .mounts
        .iter()
        .map(|m| (m.path.as_str(), m.host, m.group.as_str()))
        .collect();
    assert_eq!(
        mounts,
        [
            ("/health", None, "health"),
            ("/", Some(0), "a_example"),
            ("/api", Some(1), "b_example_api")
        ]
    );
    assert_eq!(site.statics[0].host, Some(0));
    assert_eq!(site.statics[0].dir, base("static"));
    // One path twice in one host is an error; in two hosts it is not.
    ok(r#"
[[host]]
names = ["a"]
[[host.mount]]
path = "/"
module = "a"
[[host]]
names = ["b"]
[[host.mount]]
path = "/"
module = "b"
"#);
}

#[test]
fn virtual_host_errors() {
    let host = |body: &str| format!("listen = [\"127.0.0.1:8080\"]\n\n[[host]]\n{body}\n");
    assert_eq!(
        err(&host("names = [\"a.example:80\"]")),
        "site.toml:4: `names` in [[host]] \"a.example:80\" is not a host name: it contains ':' (a host name has no port: `listen` says which listeners the host is on)"
    );
    assert!(err(&host("default = false")).contains("a [[host]] needs `names"));
    assert!(err(&host("names = [\"a\"]\nlisten = [\"127.0.0.1:9999\"]"))
        .contains("names 127.0.0.1:9999, which none of the top-level `listen` addresses covers"));
    assert!(
        err(&host("names = [\"a\"]\ntls-cert = \"/a.pem\"")).contains("needs `tls-key` beside it")
    );
    assert!(err(&host(
        "names = [\"a\"]\ntls-cert = \"/a.pem\"\ntls-key = \"/a.key\""
    ))
    .contains("no listener serves TLS"));
    assert!(err(&host("names = [\"a\"]\npath = \"/\""))
        .contains("it belongs in a [[host.mount]] table below the [[host]]"));
    let twice = host("names = [\"a\", \"b\"]\n\n[[host]]\nnames = [\"B\"]");
    assert_eq!(place(&twice), (Some(7), Some("names".into())));
    assert!(err(&twice).contains("\"b\" is also a name of the [[host]] at line 4"));
    let defaults =
        host("names = [\"a\"]\ndefault = true\n\n[[host]]\nnames = [\"b\"]\ndefault = true");
    assert!(err(&defaults).contains("a second default host on the same listener"));
    // On other addresses, both may be defaults.
    ok(r#"
listen = ["127.0.0.1:8080", "127.0.0.1:8081"]
[[host]]
names = ["a"]
default = true
listen = ["127.0.0.1:8080"]
[[host]]
names = ["b"]
default = true
listen = ["127.0.0.1:8081"]
"#);
    let dup = "[[host]]\nnames = [\"a\"]\n[[host.mount]]\npath = \"/\"\nmodule = \"a\"\n[[host.mount]]\npath = \"/\"\nmodule = \"b\"\n";
    assert_eq!(place(dup), (Some(7), Some("path".into())));
    assert!(err(dup).contains("two mounts at \"/\" (the other one is at line 4)"));
}

#[test]
fn reload_globs() {
    let site = ok("reload = true\nreload-include = [\"*.html\", \"templates/**\"]\nreload-exclude = \"tests/**\"\n");
    assert!(site.reload);
    assert_eq!(site.reload_include, ["*.html", "templates/**"]);
    assert_eq!(site.reload_exclude, ["tests/**"]);
    assert_eq!(
        err("reload-include = [\"*.html\", \"[oops\"]\n"),
        "site.toml:1: `reload-include` \"[oops\" is not a glob pattern: Pattern syntax error near position 0: invalid range pattern"
    );
}

#[test]
fn accounts_are_looked_up_when_read() {
    let site = ok(
        "user = \"daemon\"\ngroup = 4\n[groups.g]\nuser = \"nobody\"\n\
                   supplementary-groups = [\"adm\", \"1\"]\n",
    );
    assert_eq!(site.user.as_deref(), Some("daemon"));
    assert_eq!(site.unix_group.as_deref(), Some("4"));
    assert_eq!(site.groups[0].supplementary_groups, vec!["adm", "1"]);
    assert_eq!(
        ok("[groups.g]\nsupplementary-groups = \"adm\"\n").groups[0].supplementary_groups,
        vec!["adm"]
    );
    assert_eq!(
        err("\nuser = \"no-such-user-oxwsgi\""),
        "site.toml:2: `user` is not usable: user `no-such-user-oxwsgi` does not exist"
    );
    assert_eq!(
        err("[groups.g]\ngroup = \"no-such-group-oxwsgi\""),
        "site.toml:2: `group` in [groups.g] is not usable: Unix group `no-such-group-oxwsgi` does not exist"
    );
    assert_eq!(
        place("[groups.g]\nsupplementary-groups = [\"adm\",\n  \"no-such-group-oxwsgi\"]"),
        (Some(3), Some("supplementary-groups".into()))
    );
}

#[test]
fn elastic_group_keys() {
    let site = ok(
        "[groups.g]\nthreads = 4\nmax-processes = 6\nprocesses = 2\nspare-threads = 3\n\
         scale-up-delay = 0.25\nscale-down-delay = 5\nscale-cooldown = 1\n",
    );
    let g = &site.groups[0];
    assert_eq!(g.processes, 2, "processes = the number it starts with");
    assert_eq!(g.max_processes(), 6);
    let scaling = g.scaling.as_ref().unwrap();
    assert_eq!((scaling.min, scaling.max, scaling.spare_threads), (1, 6, 3));
    assert_eq!(scaling.up_delay, Duration::from_millis(250));
    assert_eq!(scaling.down_delay, Duration::from_secs(5));
    assert_eq!(scaling.cooldown, Duration::from_secs(1));
    let fixed = ok("[groups.g]\nprocesses = 3\n");
    assert_eq!(
        (fixed.groups[0].processes, fixed.groups[0].scaling.as_ref()),
        (3, None)
    );
    assert_eq!(
        place("[groups.g]\nmin-processes = 2\n"),
        (Some(2), Some("min-processes".into()))
    );
    assert!(err("[groups.g]\nmin-processes = 2\n")
        .starts_with("site.toml:2: `min-processes` in [groups.g] needs `max-processes`"));
    assert_eq!(
        place("[groups.g]\nmax-processes = 2\nmin-processes = 3\n"),
        (Some(3), Some("min-processes".into()))
    );
    assert_eq!(
        place("[groups.g]\nprocesses = 9\nmax-processes = 4\n"),
        (Some(2), Some("processes".into()))
    );
    assert_eq!(
        place("[groups.g]\nprocesses = 2\nscale-cooldown = 3\n"),
        (Some(3), Some("scale-cooldown".into()))
    );
    assert!(err("[groups.g]\nmax-processes = 0\n").starts_with("site.toml:2: `max-processes`"));
    assert!(err("[groups.g]\nmax-processes = 2000\n").contains("over oxwsgi's limit of 1000"));
    assert!(
        err("[groups.g]\nmax-processes = 2\nscale-down-delay = -1\n")
            .starts_with("site.toml:3: `scale-down-delay`")
    );
}
