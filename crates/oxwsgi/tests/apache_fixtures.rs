//! The Apache files in tests/fixtures/apache/ — shaped like those found in
//! the wild — each read into the `Site` it should give, with the warnings
//! that matter; and each converted to TOML and read back to the same
//! `Site` (parse → convert → parse).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oxwsgi::config::apache::load_with_env;
use oxwsgi::config::convert::to_toml;
use oxwsgi::config::model::{
    AppSource, Group, HostAddr, Mount, PythonChoice, Site, StaticAlias, VirtualHost,
};
use oxwsgi::config::{Warning, WarningKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/apache")
        .join(name)
}

/// Loads a fixture with an empty environment (so `${APACHE_LOG_DIR}` is
/// undefined whatever the machine), and checks the TOML round trip.
fn load(name: &str) -> (Site, Vec<Warning>) {
    let path = fixture(name);
    let (site, warnings) = load_with_env(&path, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let text = to_toml(&site, &path).unwrap();
    // Read back from another folder: every path must be absolute.
    let elsewhere = tempfile::tempdir().unwrap();
    let back = oxwsgi::config::toml::parse(&text, Path::new("converted.toml"), elsewhere.path())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back, site, "convert round trip of {name}:\n{text}");
    (site, warnings)
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

fn group(name: &str, processes: usize, threads: usize) -> Group {
    let mut g = Group::new(name);
    g.processes = processes;
    g.threads = threads;
    g
}

fn titled(mut g: Group) -> Group {
    g.display_name = Some(format!("(wsgi:{})", g.name));
    g
}

fn mount(path: &str, script: &str, group: &str) -> Mount {
    Mount {
        host: None,
        path: path.into(),
        app: AppSource::Script(PathBuf::from(script)),
        callable: "application".into(),
        group: group.into(),
        application_group: "%{GLOBAL}".into(),
        pass_authorization: true,
        limit_request_body: None,
        environ: Vec::new(),
        preload: false,
    }
}

fn alias(path: &str, dir: &str) -> StaticAlias {
    StaticAlias {
        host: None,
        path: path.into(),
        dir: PathBuf::from(dir),
    }
}

/// (kind, line, start of message) of every warning, for compact asserts.
fn has(warnings: &[Warning], kind: WarningKind, line: Option<usize>, start: &str) -> bool {
    warnings
        .iter()
        .any(|w| w.kind == kind && w.line == line && w.message.starts_with(start))
}

fn count(warnings: &[Warning], kind: WarningKind) -> usize {
    warnings.iter().filter(|w| w.kind == kind).count()
}

#[test]
fn the_missions_two_app_file() {
    let (site, warnings) = load("two-apps.conf");
    assert_eq!(
        site,
        Site {
            listen: addrs(&["127.0.0.1:8000"]),
            groups: vec![
                titled(group("app_one", 2, 15)),
                titled(group("app_two", 2, 15))
            ],
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
            ..Site::default()
        }
    );
    // Only Authorization differs from mod_wsgi's defaults here: the file
    // sets the process and application groups.
    assert_eq!(count(&warnings, WarningKind::Default), 2, "{warnings:#?}");
    assert!(has(
        &warnings,
        WarningKind::Default,
        Some(15),
        "mount /api/wsgi/one: no WSGIPassAuthorization"
    ));
    assert!(has(
        &warnings,
        WarningKind::Ignored,
        Some(29),
        "`Require` ignored"
    ));
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
}

#[test]
fn mod_wsgi_quick_configuration_guide() {
    let (site, warnings) = load("modwsgi-quick-configuration.conf");
    assert_eq!(
        site,
        Site {
            listen: addrs(&["0.0.0.0:80"]),
            groups: vec![titled(group("example.com", 2, 15))],
            mounts: vec![mount(
                "/",
                "/usr/local/www/wsgi-scripts/myapp.wsgi",
                "example.com"
            )],
            statics: vec![
                alias("/robots.txt", "/usr/local/www/documents/robots.txt"),
                alias("/favicon.ico", "/usr/local/www/documents/favicon.ico"),
                alias("/media", "/usr/local/www/documents/media"),
            ],
            ..Site::default()
        }
    );
    assert!(has(
        &warnings,
        WarningKind::Default,
        Some(32),
        "mount /: no WSGIApplicationGroup; mod_wsgi would run it in a sub-interpreter"
    ));
    assert!(has(
        &warnings,
        WarningKind::Behaviour,
        Some(12),
        "`DocumentRoot` ignored: oxwsgi serves no DocumentRoot"
    ));
    // <IfVersion < 2.4> is false: its Order/Allow are never read.
    assert!(
        !warnings.iter().any(|w| w.message.contains("Order")),
        "{warnings:#?}"
    );
    assert!(has(
        &warnings,
        WarningKind::Ignored,
        Some(25),
        "`Require` ignored (also line 40)"
    ));
}

#[test]
fn django_basic_configuration_embedded() {
    let (site, warnings) = load("django-embedded.conf");
    let mut root = group("root", 1, 15);
    root.python = PythonChoice::Home("/path/to/venv".into());
    root.python_path = vec!["/path/to/mysite.com".into()];
    assert_eq!(
        site,
        Site {
            groups: vec![root],
            mounts: vec![mount("/", "/path/to/mysite.com/mysite/wsgi.py", "root")],
            ..Site::default()
        }
    );
    assert!(has(&warnings, WarningKind::Default, Some(5), "mount /: no WSGIProcessGroup; mod_wsgi would run it embedded in Apache's own processes, oxwsgi runs it in a daemon group of its own, `root` (1 process × 15 threads)"));
    assert_eq!(count(&warnings, WarningKind::Default), 3);
    assert!(has(
        &warnings,
        WarningKind::Behaviour,
        None,
        "no Listen and no <VirtualHost address:port>: oxwsgi listens on 127.0.0.1:8000"
    ));
}

#[test]
fn django_daemon_mode_with_static_files() {
    let (site, warnings) = load("django-daemon.conf");
    let mut g = group("example.com", 1, 15);
    g.python = PythonChoice::Home("/path/to/venv".into());
    g.python_path = vec!["/path/to/mysite.com".into()];
    assert_eq!(
        site,
        Site {
            groups: vec![g],
            mounts: vec![mount(
                "/",
                "/path/to/mysite.com/mysite/wsgi.py",
                "example.com"
            )],
            statics: vec![
                alias("/robots.txt", "/path/to/mysite.com/static/robots.txt"),
                alias("/favicon.ico", "/path/to/mysite.com/static/favicon.ico"),
                alias("/media", "/path/to/mysite.com/media"),
                alias("/static", "/path/to/mysite.com/static"),
            ],
            ..Site::default()
        }
    );
    assert!(!warnings
        .iter()
        .any(|w| w.message.contains("no WSGIProcessGroup")));
}

#[test]
fn a_debian_default_site_with_an_application_added() {
    let (site, warnings) = load("debian-default.conf");
    let mut g = titled(group("inventory", 1, 5));
    g.user = Some("www-data".into());
    g.unix_group = Some("www-data".into());
    g.python = PythonChoice::Home("/srv/inventory/venv".into());
    g.home = Some("/srv/inventory".into());
    g.lang = Some("en_US.UTF-8".into());
    g.locale = Some("en_US.UTF-8".into());
    g.maximum_requests = Some(10000);
    g.timeouts.queue = Some(Duration::from_secs(45));
    g.timeouts.request = Some(Duration::from_secs(60));
    g.timeouts.startup = Some(Duration::from_secs(15));
    g.timeouts.graceful = Some(Duration::from_secs(15));
    g.timeouts.shutdown = Some(Duration::from_secs(5));
    g.timeouts.deadlock = Some(Duration::from_secs(60));
    let mut m = mount("/inventory", "/srv/inventory/inventory.wsgi", "inventory");
    m.limit_request_body = Some(10 << 20);
    assert_eq!(
        site,
        Site {
            listen: addrs(&["0.0.0.0:80"]),
            groups: vec![g],
            mounts: vec![m],
            statics: vec![alias("/inventory/static", "/srv/inventory/static")],
            ..Site::default()
        }
    );
    // WSGIPassAuthorization On and the groups are all set: no defaults differ.
    assert_eq!(count(&warnings, WarningKind::Default), 0, "{warnings:#?}");
    assert!(has(
        &warnings,
        WarningKind::Ignored,
        Some(42),
        "WSGIDaemonProcess inventory: option `socket-timeout` is not needed"
    ));
    assert!(has(&warnings, WarningKind::Behaviour, Some(78), "<IfModule mod_ssl.c> is false (oxwsgi does not provide mod_ssl and no LoadModule loads it): <VirtualHost> (line 79), WSGIProcessGroup (line 87), WSGIScriptAlias (line 88) inside it are not read"));
    assert!(has(
        &warnings,
        WarningKind::Behaviour,
        Some(71),
        "`RewriteRule` ignored: Apache answers some URLs through it"
    ));
    assert!(has(
        &warnings,
        WarningKind::Behaviour,
        Some(25),
        "${APACHE_LOG_DIR} is not defined"
    ));
    for directive in [
        "ServerAdmin",
        "ErrorLog",
        "CustomLog",
        "Options",
        "AllowOverride",
        "ExpiresActive",
        "ExpiresDefault",
        "RewriteEngine",
    ] {
        let listed = warnings
            .iter()
            .filter(|w| w.message.starts_with(&format!("`{directive}` ignored")))
            .count();
        assert_eq!(listed, 1, "{directive}: {warnings:#?}");
    }
    // mod_headers is not provided: the Header inside <IfModule> is not read.
    assert!(!warnings.iter().any(|w| w.message.contains("`Header`")));
}

#[test]
fn virtual_hosts_on_two_ports() {
    let (site, warnings) = load("two-ports.conf");
    let mut backoffice = titled(group("backoffice", 1, 4));
    backoffice.maximum_requests = Some(500);
    let mut admin = mount("/backoffice", "/srv/backoffice/wsgi.py", "backoffice");
    admin.callable = "app".into();
    admin.host = Some(1);
    let mut shop = mount("/", "/srv/shop/shop/wsgi.py", "shop");
    shop.host = Some(0);
    let mut statics = alias("/static", "/srv/shop/static");
    statics.host = Some(0);
    // Each port answers its own host's mounts only: /backoffice is not on
    // 8081, the shop is not on 8082.
    let host = |name: &str, port: u16, line: usize| VirtualHost {
        names: vec![name.into()],
        addrs: vec![HostAddr {
            ip: Some("127.0.0.1".parse().unwrap()),
            port: Some(port),
        }],
        default: true,
        tls: None,
        defined_at: format!("two-ports.conf:{line}"),
    };
    assert_eq!(
        site,
        Site {
            listen: addrs(&["127.0.0.1:8081", "127.0.0.1:8082"]),
            groups: vec![titled(group("shop", 4, 8)), backoffice],
            mounts: vec![shop, admin],
            statics: vec![statics],
            hosts: vec![
                host("shop.example.com", 8081, 11),
                host("admin.shop.example.com", 8082, 22)
            ],
            ..Site::default()
        }
    );
    assert!(!warnings.iter().any(|w| w.message.contains("virtual hosts")));
    assert!(has(
        &warnings,
        WarningKind::Behaviour,
        Some(29),
        "`AuthType` ignored: access control is not enforced by oxwsgi"
    ));
    assert!(has(
        &warnings,
        WarningKind::Behaviour,
        Some(32),
        "`Require` ignored: access control is not enforced by oxwsgi"
    ));
    assert!(has(
        &warnings,
        WarningKind::Ignored,
        Some(18),
        "`Require` ignored"
    ));
    assert_eq!(count(&warnings, WarningKind::Default), 1, "{warnings:#?}");
}

#[test]
fn a_conf_d_folder_included_with_a_wildcard() {
    let (site, warnings) = load("conf-d/site.conf");
    let mut portal = titled(group("portal", 2, 15));
    portal.python = PythonChoice::Home("/srv/portal/venv".into());
    let mut reports = group("reports", 1, 10);
    reports.python = PythonChoice::Home("/srv/portal/venv".into());
    let mut sales = mount(
        "/reports/sales",
        "/srv/portal/reports/sales.wsgi",
        "reports",
    );
    sales.application_group = "sales".into();
    let mut stock = mount(
        "/reports/stock",
        "/srv/portal/reports/stock.wsgi",
        "reports",
    );
    stock.application_group = "stock".into();
    assert_eq!(
        site,
        Site {
            listen: addrs(&["127.0.0.1:8090"]),
            groups: vec![portal, reports],
            mounts: vec![
                sales,
                stock,
                mount("/", "/srv/portal/portal/wsgi.py", "portal")
            ],
            statics: vec![alias("/assets", "/srv/portal/assets")],
            ..Site::default()
        }
    );
    // Warnings name the included file, as the user would find it.
    let w = warnings
        .iter()
        .find(|w| {
            w.message
                .starts_with("mount /reports/sales: no WSGIPassAuthorization")
        })
        .unwrap();
    assert_eq!(
        w.file.as_deref(),
        Some(fixture("conf-d/conf.d/20-apps.conf").as_path())
    );
    assert_eq!(w.line, Some(4));
    // Specific mounts come before / in the file: Apache finds them too.
    assert!(
        !warnings
            .iter()
            .any(|w| w.message.starts_with("Apache answers")),
        "{warnings:#?}"
    );
}
