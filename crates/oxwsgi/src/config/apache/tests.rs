//! Tests of the Apache reader as a whole: files in a temporary folder →
//! `Site` and warnings. The precedence cases mirror what Apache 2.4 with
//! mod_wsgi answers for the same files.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::load_with_env;
use crate::config::model::{AppSource, Group, HostAddr, PythonChoice, Site};
use crate::config::warning::{Warning, WarningKind};

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    /// Writes site.conf and loads it, with `APP_ROOT=/srv/env` the only
    /// environment variable.
    fn load(&self, text: &str) -> (Site, Vec<Warning>) {
        let path = self.write("site.conf", text);
        load_with_env(&path, &env).unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(&self, text: &str) -> String {
        let path = self.write("site.conf", text);
        match load_with_env(&path, &env) {
            Ok((site, _)) => panic!("loaded: {site:?}"),
            Err(e) => e
                .to_string()
                .replace(&self.dir.path().display().to_string(), "DIR"),
        }
    }
}

fn env(name: &str) -> Option<String> {
    (name == "APP_ROOT").then(|| "/srv/env".to_string())
}

/// The warnings of one kind, messages only.
fn of_kind(warnings: &[Warning], kind: WarningKind) -> Vec<String> {
    warnings
        .iter()
        .filter(|w| w.kind == kind)
        .map(|w| w.message.clone())
        .collect()
}

fn has(warnings: &[Warning], needle: &str) -> bool {
    warnings.iter().any(|w| w.message.contains(needle))
}

fn script(site: &Site, path: &str) -> PathBuf {
    match &site.mount(path).app {
        AppSource::Script(p) => p.clone(),
        other => panic!("{other:?}"),
    }
}

trait MountAt {
    fn mount(&self, path: &str) -> &crate::config::model::Mount;
}

impl MountAt for Site {
    fn mount(&self, path: &str) -> &crate::config::model::Mount {
        self.mounts
            .iter()
            .find(|m| m.path == path)
            .unwrap_or_else(|| panic!("no mount at {path}: {:?}", self.mounts))
    }
}

#[test]
fn precedence_alias_options_then_location_then_directory_then_host_then_server() {
    let f = Files::new();
    let (site, warnings) = f.load(
        "WSGIDaemonProcess a threads=2\n\
         WSGIDaemonProcess b threads=2\n\
         WSGIDaemonProcess c threads=2\n\
         WSGIProcessGroup c\n\
         WSGIScriptAlias /x /srv/apx/app.py process-group=a application-group=opt\n\
         <Location /x>\n  WSGIProcessGroup b\n  WSGIApplicationGroup loc\n</Location>\n\
         WSGIScriptAlias /y /srv/apx/app2.py\n\
         <Directory /srv/apx>\n  WSGIProcessGroup a\n  WSGIApplicationGroup dir\n</Directory>\n\
         <Location /y>\n  WSGIProcessGroup b\n</Location>\n\
         WSGIScriptAlias /z /srv/other/app.py\n\
         <Location /y/sub>\n  WSGIProcessGroup c\n</Location>\n",
    );
    let x = site.mount("/x");
    assert_eq!(
        (x.group.as_str(), x.application_group.as_str()),
        ("a", "opt")
    );
    let y = site.mount("/y");
    assert_eq!(
        (y.group.as_str(), y.application_group.as_str()),
        ("b", "dir")
    );
    let z = site.mount("/z");
    assert_eq!(
        (z.group.as_str(), z.application_group.as_str()),
        ("c", "%{GLOBAL}")
    );
    // <Location /y/sub> covers part of /y only: reported, not applied.
    let partial: Vec<&Warning> = warnings
        .iter()
        .filter(|w| w.message.contains("applies to part of mount /y only"))
        .collect();
    assert_eq!(partial.len(), 1, "{warnings:#?}");
    assert_eq!(partial[0].line, Some(20));
    assert_eq!(partial[0].kind, WarningKind::Behaviour);
}

#[test]
fn set_env_and_pass_env_reach_the_mounts_environ() {
    std::env::set_var("OXWSGI_TEST_PASSED", "from-front");
    let f = Files::new();
    let (site, _) = f.load(
        "SetEnv SITE main\nPassEnv OXWSGI_TEST_PASSED OXWSGI_TEST_UNSET\n\
         WSGIScriptAlias /a /srv/a.wsgi\n\
         <Location /a>\n  SetEnv DJANGO_SETTINGS_MODULE a.settings\n  SetEnv SITE a\n</Location>\n\
         WSGIScriptAlias /b /srv/b.wsgi\n",
    );
    let pairs = |path: &str| -> Vec<(String, String)> { site.mount(path).environ.clone() };
    let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
    assert_eq!(
        pairs("/a"),
        vec![
            pair("OXWSGI_TEST_PASSED", "from-front"),
            pair("SITE", "a"),
            pair("DJANGO_SETTINGS_MODULE", "a.settings"),
        ]
    );
    assert_eq!(
        pairs("/b"),
        vec![
            pair("OXWSGI_TEST_PASSED", "from-front"),
            pair("SITE", "main")
        ]
    );
    assert!(f.error("SetEnv\n").contains("takes a variable name"));
    assert!(f.error("PassEnv\n").contains("one or more variable names"));
}

#[test]
fn virtual_host_settings_override_the_main_servers_and_set_env_feeds_env() {
    let f = Files::new();
    let (site, warnings) = f.load(
        "WSGIDaemonProcess a\nWSGIDaemonProcess b\nWSGIDaemonProcess c\n\
         WSGIProcessGroup c\n\
         <VirtualHost 127.0.0.1:8001>\n\
           WSGIProcessGroup a\n\
           WSGIScriptAlias /q /srv/apx/app2.py\n\
           <LocationMatch \"^/q/admin\">\n    WSGIProcessGroup b\n  </LocationMatch>\n\
           <Directory /srv/apx>\n    <Files app2.py>\n      WSGIApplicationGroup %{ENV:APPG}\n    </Files>\n  </Directory>\n\
           SetEnv APPG fromenv\n\
           SetEnv PG b\n\
           WSGIScriptAlias /r /srv/apx/app.py\n\
           <Location /r>\n    WSGIProcessGroup %{ENV:PG}\n    WSGIPassAuthorization Off\n    WSGICallableObject app\n  </Location>\n\
         </VirtualHost>\n\
         WSGIScriptAlias /main /srv/apx/main.py\n",
    );
    let q = site.mount("/q");
    assert_eq!(q.group, "a");
    // The application group is kept as written: the worker expands it.
    assert_eq!(q.application_group, "%{ENV:APPG}");
    assert!(
        has(&warnings, "applies to part of mount /q only"),
        "{warnings:#?}"
    );
    let r = site.mount("/r");
    assert_eq!((r.group.as_str(), r.callable.as_str()), ("b", "app"));
    assert!(!r.pass_authorization);
    assert_eq!(site.mount("/main").group, "c");
    // One virtual host and the main server: Apache serves the main
    // server's mounts in every host too.
    assert!(!has(&warnings, "mounts come from"));
    assert_eq!(site.listen, vec!["127.0.0.1:8001".parse().unwrap()]);
}

#[test]
fn oxwsgi_defaults_where_mod_wsgi_differs_are_reported_per_mount() {
    let f = Files::new();
    let (site, warnings) = f.load(
        "WSGIDaemonProcess api processes=2\n\
         WSGIRestrictEmbedded On\n\
         WSGIScriptAlias /api /srv/a.wsgi\n\
         WSGIScriptAlias / /srv/root.wsgi process-group=%{GLOBAL} pass-authorization=On\n",
    );
    // /api names no group, and `api` is taken by a WSGIDaemonProcess: the
    // mount's own group is api_2.
    assert_eq!(
        site.groups
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>(),
        ["api", "api_2", "root"]
    );
    assert_eq!(site.mount("/api").group, "api_2");
    assert_eq!(site.mount("/").group, "root");
    for m in &site.mounts {
        assert_eq!(m.application_group, "%{GLOBAL}");
    }
    assert!(site.mount("/api").pass_authorization);
    let defaults = of_kind(&warnings, WarningKind::Default);
    assert_eq!(
        defaults,
        [
            "mount /api: no WSGIProcessGroup; mod_wsgi would run it embedded in Apache's own processes (refused there with a 500, since WSGIRestrictEmbedded is On), oxwsgi runs it in a daemon group of its own, `api_2` (1 process × 15 threads)",
            "mount /api: no WSGIApplicationGroup; mod_wsgi would run it in a sub-interpreter of its own (%{RESOURCE}: `SERVER|/api`), oxwsgi runs it in the main interpreter (%{GLOBAL})",
            "mount /api: no WSGIPassAuthorization; mod_wsgi would hide the Authorization header from the application, oxwsgi passes it as HTTP_AUTHORIZATION (WSGIPassAuthorization Off hides it)",
            "mount /: WSGIProcessGroup %{GLOBAL} is embedded mode in mod_wsgi (Apache's own processes (refused there with a 500, since WSGIRestrictEmbedded is On)); oxwsgi has no embedded mode and runs it in a daemon group of its own, `root` (1 process × 15 threads)",
            "mount /: no WSGIApplicationGroup; mod_wsgi would run it in a sub-interpreter of its own (%{RESOURCE}: `SERVER|`), oxwsgi runs it in the main interpreter (%{GLOBAL})",
        ]
    );
    // /api comes before / in config order: Apache finds it first too.
    assert!(!has(&warnings, "Apache answers /api"), "{warnings:#?}");
}

#[test]
fn a_root_mount_first_in_config_order_hides_the_others_in_apache() {
    let f = Files::new();
    let (site, warnings) =
        f.load("WSGIScriptAlias / /srv/root.wsgi\nWSGIScriptAlias /api /srv/api.wsgi\n");
    assert_eq!(site.mounts.len(), 2);
    let w: Vec<&Warning> = warnings
        .iter()
        .filter(|w| w.message.starts_with("Apache answers /api"))
        .collect();
    assert_eq!(w.len(), 1, "{warnings:#?}");
    assert_eq!(w[0].line, Some(2));
    assert!(
        w[0].message.contains("with `WSGIScriptAlias /` ("),
        "{}",
        w[0]
    );
    assert!(w[0].message.ends_with("Apache takes the first match in config order; oxwsgi routes by longest prefix and answers it here"), "{}", w[0]);
}

#[test]
fn application_groups_are_kept_as_written() {
    let f = Files::new();
    let mut conf = String::from("WSGIDaemonProcess g\nWSGIProcessGroup g\n");
    let values = [
        "%{GLOBAL}",
        "%{SERVER}",
        "%{RESOURCE}",
        "%{ENV:APP}",
        "django_a",
        "\"\"",
    ];
    for (i, v) in values.iter().enumerate() {
        conf.push_str(&format!(
            "WSGIScriptAlias /m{i} /srv/{i}.wsgi\n<Location /m{i}>\nWSGIApplicationGroup {v}\n</Location>\n"
        ));
    }
    let (site, _) = f.load(&conf);
    let got: Vec<&str> = site
        .mounts
        .iter()
        .map(|m| m.application_group.as_str())
        .collect();
    assert_eq!(
        got,
        [
            "%{GLOBAL}",
            "%{SERVER}",
            "%{RESOURCE}",
            "%{ENV:APP}",
            "django_a",
            "%{GLOBAL}"
        ]
    );
}

#[test]
fn daemon_process_options() {
    let f = Files::new();
    let (site, warnings) = f.load(
        "wsgidaemonprocess example.com user=#1000 group=www-data processes=3 threads=4 \\\n\
             display-name='%{GROUP}' python-home=venv python-path=\"/srv/a b:lib\" home=/srv \\\n\
             umask=0027 lang=en_US.UTF-8 locale=C.UTF-8 maximum-requests=1000 \\\n\
             memory-limit=512M listen-backlog=50 request-timeout=2.5 graceful-timeout=0 \\\n\
             inactivity-timeout=0 queue-timeout=45 socket-timeout=60 procesess=2 blah cpu-priority=5\n\
         WSGIScriptAlias / /srv/x.wsgi process-group=example.com\n",
    );
    let g = &site.groups[0];
    let dir = f.dir.path();
    let mut want = Group::new("example.com");
    want.user = Some("1000".into());
    want.unix_group = Some("www-data".into());
    want.processes = 3;
    want.threads = 4;
    want.display_name = Some("(wsgi:example.com)".into());
    want.python = PythonChoice::Home(dir.join("venv"));
    want.python_path = vec![PathBuf::from("/srv/a b"), dir.join("lib")];
    want.home = Some(PathBuf::from("/srv"));
    want.umask = Some(0o027);
    want.lang = Some("en_US.UTF-8".into());
    want.locale = Some("C.UTF-8".into());
    want.maximum_requests = Some(1000);
    want.memory_limit = Some(512 << 20);
    want.listen_backlog = Some(50);
    want.timeouts.request = Some(Duration::from_millis(2500));
    want.timeouts.graceful = Some(Duration::ZERO);
    want.timeouts.queue = Some(Duration::from_secs(45));
    want.cpu_priority = Some(5);
    assert_eq!(*g, want);
    let ignored: Vec<&Warning> = warnings
        .iter()
        .filter(|w| w.kind == WarningKind::Ignored)
        .collect();
    let messages: Vec<&str> = ignored.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "WSGIDaemonProcess example.com: option `socket-timeout` is not needed: the front holds one connected socket per daemon thread; ignored",
            "WSGIDaemonProcess example.com: unknown option `procesess`; did you mean `processes`? (ignored)",
            "WSGIDaemonProcess example.com: `blah` is not an option=value pair; ignored",
        ]
    );
    assert!(ignored.iter().all(|w| w.line == Some(1)));
}

#[test]
fn daemon_process_values_mod_wsgi_refuses_are_errors() {
    let f = Files::new();
    assert_eq!(
        f.error("\nWSGIDaemonProcess g processes=0\n"),
        "DIR/site.conf:2: WSGIDaemonProcess g: processes=\"0\" is not a whole number of at least 1"
    );
    assert!(f
        .error("WSGIDaemonProcess g threads=0\n")
        .contains("managed-process mode"));
    assert_eq!(
        f.error("WSGIDaemonProcess g\n<VirtualHost *:80>\nWSGIDaemonProcess g\n</VirtualHost>\n"),
        "DIR/site.conf:3: WSGIDaemonProcess g: the name is already used at DIR/site.conf:1 (group names are unique across the whole server, as in mod_wsgi)"
    );
    assert_eq!(
        f.error("WSGIDaemonProcess app_one\nWSGIScriptAlias / /srv/x.wsgi\nWSGIProcessGroup app_on\n"),
        "DIR/site.conf:3: mount / runs in process group `app_on`, which no WSGIDaemonProcess defines (defined: app_one); did you mean `app_one`?"
    );
}

#[test]
fn ssl_virtual_hosts_make_tls_listeners() {
    let f = Files::new();
    let (site, _) = f.load(
        "Listen 80\nListen 443\n<VirtualHost *:80>\n</VirtualHost>\n<VirtualHost *:443>\nSSLEngine on\nSSLCertificateFile certs/site.pem\nSSLCertificateKeyFile /etc/ssl/site.key\n</VirtualHost>\n",
    );
    assert_eq!(site.edge.listeners.len(), 1);
    let tls = &site.edge.listeners[0];
    assert_eq!(tls.addr, "0.0.0.0:443".parse().unwrap());
    let files = tls.tls.as_ref().unwrap();
    assert_eq!(files.cert, f.path("certs/site.pem"));
    assert_eq!(files.key, PathBuf::from("/etc/ssl/site.key"));
    // The key may be in the certificate file.
    let (site, _) = f.load("<VirtualHost *:8443>\nSSLCertificateFile /c.pem\n</VirtualHost>\n");
    let files = site.edge.listeners[0].tls.as_ref().unwrap();
    assert_eq!(files.key, PathBuf::from("/c.pem"));
    // Outside a virtual host it is ignored (with the other SSL directives).
    let (site, _) = f.load("Listen 443\nSSLCertificateFile /c.pem\n");
    assert!(site.edge.listeners.is_empty());
}

#[test]
fn listeners() {
    let f = Files::new();
    let (site, _) = f.load("Listen 80\nListen 127.0.0.1:8080\n<VirtualHost *:80>\n</VirtualHost>\n<VirtualHost *:8443 127.0.0.1:9000>\n</VirtualHost>\n<VirtualHost *>\n</VirtualHost>\n");
    let listen: Vec<String> = site.listen.iter().map(ToString::to_string).collect();
    assert_eq!(
        listen,
        [
            "0.0.0.0:80",
            "127.0.0.1:8080",
            "0.0.0.0:8443",
            "127.0.0.1:9000"
        ]
    );
    let (site, warnings) = f.load("WSGIScriptAlias / /srv/x.wsgi\n");
    assert_eq!(site.listen, vec!["127.0.0.1:8000".parse().unwrap()]);
    assert!(has(&warnings, "oxwsgi listens on 127.0.0.1:8000"));
    let (site, _) = f.load("Listen 80\nListen 127.0.0.1:80\n");
    assert_eq!(site.listen, vec!["0.0.0.0:80".parse().unwrap()]);
    assert_eq!(
        f.error("<VirtualHost *:80>\nListen 81\n</VirtualHost>\n"),
        "DIR/site.conf:2: Listen is only allowed in the main server config, not inside <VirtualHost> (Apache refuses it too)"
    );
    assert!(f
        .error("Listen nope\n")
        .starts_with("DIR/site.conf:1: Listen nope: "));
}

#[test]
fn includes_defines_and_conditions() {
    let f = Files::new();
    f.write(
        "conf.d/10-one.conf",
        "WSGIDaemonProcess one\nWSGIScriptAlias /one ${ROOT}/one.wsgi process-group=one\n",
    );
    f.write(
        "conf.d/20-two.conf",
        "WSGIScriptAlias /two ${APP_ROOT}/two.wsgi\n",
    );
    f.write(
        "conf.d/README",
        "this file is not included: the pattern is *.conf\n",
    );
    f.write("more/sub/x.conf", "Alias /x /srv/x\n");
    let (site, warnings) = f.load(
        "Define ROOT /srv/site\n\
         Include conf.d/*.conf\n\
         IncludeOptional nothing/*.conf\n\
         IncludeOptional missing.conf\n\
         include more\n\
         <IfDefine ROOT>\n  WSGIScriptAlias /defined /srv/d.wsgi\n</IfDefine>\n\
         <IfDefine !ROOT>\n  WSGIScriptAlias /undefined /srv/u.wsgi\n</IfDefine>\n\
         <IfModule mod_wsgi.c>\n  WSGIScriptAlias /wsgi ${UNSET}/w.wsgi\n</IfModule>\n\
         <IfModule !wsgi_module>\n  WSGIScriptAlias /nowsgi /srv/n.wsgi\n</IfModule>\n\
         <IfModule mod_ssl.c>\n  <VirtualHost *:443>\n    WSGIScriptAlias /tls /srv/t.wsgi\n  </VirtualHost>\n</IfModule>\n\
         <IfVersion >= 2.4>\n  WSGIScriptAlias /v24 /srv/v.wsgi\n</IfVersion>\n\
         <IfVersion < 2.4>\n  WSGIScriptAlias /v22 /srv/v.wsgi\n</IfVersion>\n\
         UnDefine ROOT\n\
         <IfDefine ROOT>\n  WSGIScriptAlias /late /srv/l.wsgi\n</IfDefine>\n",
    );
    let paths: Vec<&str> = site.mounts.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(paths, ["/one", "/two", "/defined", "/wsgi", "/v24"]);
    assert_eq!(script(&site, "/one"), Path::new("/srv/site/one.wsgi"));
    assert_eq!(script(&site, "/two"), Path::new("/srv/env/two.wsgi"));
    assert_eq!(script(&site, "/wsgi"), f.path("${UNSET}/w.wsgi"));
    assert_eq!(site.mount("/one").group, "one");
    assert_eq!(site.statics[0].path, "/x");
    assert!(has(&warnings, "${UNSET} is not defined"), "{warnings:#?}");
    let skipped: Vec<&Warning> = warnings
        .iter()
        .filter(|w| w.message.starts_with("<IfModule mod_ssl.c> is false"))
        .collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(
        skipped[0].message,
        "<IfModule mod_ssl.c> is false (oxwsgi does not provide mod_ssl and no LoadModule loads it): <VirtualHost> (line 19), WSGIScriptAlias (line 20) inside it are not read"
    );
    // A LoadModule makes <IfModule> true.
    let (site, _) = f.load("LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so\n<IfModule ssl_module>\nWSGIScriptAlias / /srv/x.wsgi\n</IfModule>\n");
    assert_eq!(site.mounts.len(), 1);
}

#[test]
fn include_errors_name_the_file_and_line() {
    let f = Files::new();
    f.write("bad.conf", "\n<Location /x>\nWSGIProcessGroup g\n");
    assert_eq!(
        f.error("Listen 80\nInclude bad.conf\n"),
        "DIR/bad.conf:2: <Location> is never closed (no </Location>)"
    );
    assert_eq!(
        f.error("Include conf.d/*.conf\n"),
        "DIR/site.conf:1: Include conf.d/*.conf: no file matches (use IncludeOptional to allow that)"
    );
    assert_eq!(
        f.error("\nInclude missing.conf\n"),
        "DIR/site.conf:2: Include missing.conf: DIR/missing.conf does not exist"
    );
    f.write("loop.conf", "Include site.conf\n");
    assert_eq!(
        f.error("Include loop.conf\n"),
        "DIR/loop.conf:1: includes DIR/site.conf, which is already being read (an include cycle)"
    );
}

#[test]
fn sections_and_contexts_apache_refuses_are_errors() {
    let f = Files::new();
    assert_eq!(
        f.error("<Location /a>\nWSGIScriptAlias / /srv/x.wsgi\n</Location>\n"),
        "DIR/site.conf:2: WSGIScriptAlias is not allowed inside <Location /a> (Apache refuses it too)"
    );
    assert_eq!(
        f.error("<Directory /srv>\n<Location /a>\n</Location>\n</Directory>\n"),
        "DIR/site.conf:2: <Location> cannot occur within <Directory /srv> (Apache refuses it too)"
    );
    assert_eq!(
        f.error("<VirtualHost *:80>\n<VirtualHost *:81>\n</VirtualHost>\n</VirtualHost>\n"),
        "DIR/site.conf:2: <VirtualHost> cannot occur within <VirtualHost>"
    );
    assert_eq!(
        f.error("WSGIPassAuthorization maybe\n"),
        "DIR/site.conf:1: WSGIPassAuthorization maybe: expected On or Off"
    );
}

#[test]
fn script_alias_match() {
    let f = Files::new();
    let (site, warnings) = f.load(
        "WSGIScriptAliasMatch ^/app(?=/|$) /srv/app.wsgi\n\
         WSGIScriptAliasMatch ^/exact$ /srv/exact.wsgi\n\
         WSGIScriptAliasMatch \"^/pre\" /srv/pre.wsgi\n",
    );
    let paths: Vec<&str> = site.mounts.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(paths, ["/app", "/exact", "/pre"]);
    assert!(has(
        &warnings,
        "mounted at /exact, which also answers the URLs under /exact/"
    ));
    assert!(has(
        &warnings,
        "mounted at /pre, matched on whole path segments"
    ));
    let err = f.error("\nWSGIScriptAliasMatch ^/wsgi/([^/]+) /srv/scripts/$1.wsgi\n");
    assert!(err.starts_with("DIR/site.conf:2: WSGIScriptAliasMatch ^/wsgi/([^/]+) /srv/scripts/$1.wsgi: the script file depends on the URL"), "{err}");
    let err = f.error("WSGIScriptAliasMatch ^/(admin|files) /srv/handler.py\n");
    assert!(
        err.contains("oxwsgi routes by path prefix (whole segments)"),
        "{err}"
    );
}

#[test]
fn script_alias_targets() {
    let f = Files::new();
    f.write("app.wsgi", "");
    let (site, warnings) = f.load("WSGIScriptAlias /api app.wsgi/api\n");
    assert_eq!(script(&site, "/api"), f.path("app.wsgi"));
    assert!(
        has(&warnings, "Apache passes `/api` at the start of PATH_INFO"),
        "{warnings:#?}"
    );
    assert!(f
        .error("WSGIScriptAlias /wsgi/ /srv/scripts/\n")
        .contains("maps a folder of scripts (one application per file)"));
}

#[test]
fn virtual_hosts_that_make_no_difference_fold_into_the_main_server() {
    let f = Files::new();
    let (site, warnings) = f.load(
        "WSGIDaemonProcess site\n\
         <VirtualHost *:8001>\n  ServerName a.example\n  WSGIProcessGroup site\n  WSGIScriptAlias / /srv/site.wsgi\n</VirtualHost>\n\
         <VirtualHost *:8002>\n  ServerName a.example\n  WSGIProcessGroup site\n  WSGIScriptAlias / /srv/site.wsgi\n</VirtualHost>\n",
    );
    assert_eq!(site.mounts.len(), 1, "{site:#?}");
    assert!(site.hosts.is_empty());
    assert_eq!(site.listen.len(), 2);
    assert!(!has(&warnings, "two mounts"), "{warnings:#?}");
    // The same twins without a group share the group of their own.
    let (site, _) = f.load(
        "<VirtualHost *:8001>\n  ServerName a.example\n  WSGIScriptAlias / /srv/site.wsgi\n</VirtualHost>\n\
         <VirtualHost *:8002>\n  ServerName a.example\n  WSGIScriptAlias / /srv/site.wsgi\n</VirtualHost>\n",
    );
    assert_eq!(site.mounts.len(), 1, "{site:#?}");
    let groups: Vec<&str> = site.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(groups, ["a_example"]);
}

#[test]
fn virtual_hosts_on_one_address_route_by_name() {
    let f = Files::new();
    let (site, warnings) = f.load(
        "WSGIDaemonProcess shared\n\
         WSGIScriptAlias /health /srv/health.wsgi process-group=shared\n\
         <VirtualHost *:8001>\n  ServerName A.example:8001\n  ServerAlias www.a.example *.a.test\n  WSGIDaemonProcess a\n  WSGIScriptAlias / /srv/a.wsgi process-group=a\n</VirtualHost>\n\
         <VirtualHost *:8001>\n  ServerName b.example\n  ServerAlias www.a.example\n  WSGIScriptAlias / /srv/b.wsgi\n  Alias /static /srv/b-static\n</VirtualHost>\n\
         <VirtualHost *:8443>\n  ServerName a.example\n  WSGIScriptAlias / /srv/a.wsgi process-group=a\n  SSLCertificateFile /a.pem\n</VirtualHost>\n\
         <VirtualHost *:8443>\n  ServerName b.example\n  WSGIScriptAlias / /srv/b.wsgi\n  SSLCertificateFile /b.pem\n</VirtualHost>\n",
    );
    assert_eq!(site.hosts.len(), 4, "{site:#?}");
    let a = &site.hosts[0];
    assert_eq!(a.names, ["a.example", "www.a.example", "*.a.test"]);
    assert_eq!(
        a.addrs,
        [HostAddr {
            ip: None,
            port: Some(8001)
        }]
    );
    assert!(a.default && a.tls.is_none());
    assert_eq!(
        site.hosts[3].tls.as_ref().unwrap().cert,
        PathBuf::from("/b.pem")
    );
    // The :8443 listener's default certificate is the first host's there.
    let tls: Vec<_> = site
        .edge
        .listeners
        .iter()
        .map(|l| (l.addr.port(), l.tls.as_ref().unwrap().cert.clone()))
        .collect();
    assert_eq!(tls, [(8443, PathBuf::from("/a.pem"))]);
    let of = |host: Option<usize>| -> Vec<(&str, &str)> {
        site.mounts
            .iter()
            .filter(|m| m.host == host)
            .map(|m| (m.path.as_str(), m.group.as_str()))
            .collect()
    };
    assert_eq!(of(None), [("/health", "shared")]);
    assert_eq!(of(Some(0)), [("/", "a")]);
    assert_eq!(of(Some(1)), [("/", "b_example")]);
    assert_eq!(of(Some(2)), [("/", "a")]);
    // b's twins share one group of their own.
    assert_eq!(of(Some(3)), [("/", "b_example")]);
    assert_eq!(site.statics[0].host, Some(1));
    assert!(
        has(
            &warnings,
            "the name www.a.example is also in the virtual host at"
        ),
        "{warnings:#?}"
    );
    assert!(!has(&warnings, "SNI"), "{warnings:#?}");

    // A group defined in a virtual host serves its ServerName only.
    let err = f.error(
        "<VirtualHost *:8001>\n  ServerName a.example\n  WSGIDaemonProcess a\n</VirtualHost>\n\
         <VirtualHost *:8001>\n  ServerName b.example\n  WSGIScriptAlias / /srv/b.wsgi process-group=a\n</VirtualHost>\n",
    );
    assert!(err.starts_with("DIR/site.conf:7: mount / runs in process group `a`, which is defined in the virtual host at DIR/site.conf:1 with another ServerName"), "{err}");
    // Two applications at one path of one host are still an error.
    let err = f.error(
        "<VirtualHost *:8001>\n  WSGIScriptAlias / /srv/one.wsgi\n  WSGIScriptAlias / /srv/two.wsgi\n</VirtualHost>\n",
    );
    assert!(
        err.contains("one path of a virtual host holds one application"),
        "{err}"
    );
}

#[test]
fn aliases_and_routing_order() {
    let f = Files::new();
    let (site, warnings) = f.load(
        "WSGIScriptAlias /a /srv/a.wsgi\n\
         Alias /a/static /srv/static\n\
         Alias /b /srv/b\n\
         WSGIScriptAlias /b/app /srv/b.wsgi\n\
         Alias /robots.txt /srv/static/robots.txt\n\
         Alias /c /srv/c\n\
         WSGIScriptAlias /c /srv/c.wsgi\n",
    );
    let statics: Vec<(&str, &Path)> = site
        .statics
        .iter()
        .map(|s| (s.path.as_str(), s.dir.as_path()))
        .collect();
    assert_eq!(
        statics,
        [
            ("/a/static", Path::new("/srv/static")),
            ("/b", Path::new("/srv/b")),
            ("/robots.txt", Path::new("/srv/static/robots.txt")),
            ("/c", Path::new("/srv/c")),
        ]
    );
    let paths: Vec<&str> = site.mounts.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(paths, ["/a", "/b/app"]);
    assert!(
        has(
            &warnings,
            "Apache answers /b/app with `Alias /b` (DIR/site.conf:3"
                .replace("DIR", &f.dir.path().display().to_string())
                .as_str()
        ),
        "{warnings:#?}"
    );
    assert!(has(&warnings, "WSGIScriptAlias /c is hidden by Alias /c"));
    // /a/static after /a: Aliases come first in Apache too, no warning.
    assert!(!has(&warnings, "Apache answers /a/static"));
    // In two virtual hosts, an Alias and a mount at one path each answer
    // in their own host.
    let (site, warnings) = f.load(
        "<VirtualHost *:8001>\nAlias /x /srv/x\n</VirtualHost>\n<VirtualHost *:8002>\nWSGIScriptAlias /x /srv/x.wsgi\n</VirtualHost>\n",
    );
    assert_eq!(
        (site.statics[0].host, site.mounts[0].host),
        (Some(0), Some(1))
    );
    assert!(!has(&warnings, "hidden"), "{warnings:#?}");
}

#[test]
fn alias_inside_a_location_and_files_apache_reads_leniently() {
    let f = Files::new();
    let path = f.write(
        "site.conf",
        "\u{feff}# caf\u{e9}\n<Location /media>\n  Alias /srv/media\n</Location>\n",
    );
    // A latin-1 byte in a comment does not stop the reader either.
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(b"# \xe9t\xe9\nAlias /static /srv/static\n");
    fs::write(&path, bytes).unwrap();
    let (site, _) = load_with_env(&path, &env).unwrap();
    let statics: Vec<(&str, &Path)> = site
        .statics
        .iter()
        .map(|s| (s.path.as_str(), s.dir.as_path()))
        .collect();
    assert_eq!(
        statics,
        [
            ("/media", Path::new("/srv/media")),
            ("/static", Path::new("/srv/static"))
        ]
    );
}

#[test]
fn python_home_and_path() {
    let f = Files::new();
    let (site, _) = f.load(
        "WSGIPythonHome /srv/venv:/srv/venv-exec\n\
         WSGIPythonPath /srv/site:/srv/lib\n\
         WSGIDaemonProcess own python-home=/srv/own\n\
         WSGIDaemonProcess inherits python-path=/srv/x\n\
         WSGIScriptAlias /own /srv/own.wsgi process-group=own\n\
         WSGIScriptAlias /inherits /srv/i.wsgi process-group=inherits\n\
         WSGIScriptAlias /embedded /srv/e.wsgi\n",
    );
    let g = |name: &str| site.group(name).unwrap();
    assert_eq!(g("own").python, PythonChoice::Home("/srv/own".into()));
    assert_eq!(g("inherits").python, PythonChoice::Home("/srv/venv".into()));
    assert_eq!(g("inherits").python_path, vec![PathBuf::from("/srv/x")]);
    // WSGIPythonPath is embedded mode's sys.path: the groups oxwsgi makes.
    assert_eq!(g("embedded").python, PythonChoice::Home("/srv/venv".into()));
    assert_eq!(
        g("embedded").python_path,
        vec![PathBuf::from("/srv/site"), PathBuf::from("/srv/lib")]
    );
}

#[test]
fn ignored_directives_are_listed_once_with_their_lines() {
    let f = Files::new();
    let (_, warnings) = f.load(
        "ServerAdmin webmaster@localhost\nErrorLog /var/log/e.log\n\
         <VirtualHost *:80>\nErrorLog /var/log/v.log\nRequire all granted\nRequire valid-user\nDocumentRoot /var/www/html\n\
         <If \"%{HTTPS} == 'on'\">\nWSGIProcessGroup g\nHeader set X y\n</If>\n</VirtualHost>\n",
    );
    let ignored = of_kind(&warnings, WarningKind::Ignored);
    assert_eq!(
        ignored,
        [
            "`ServerAdmin` ignored",
            "`ErrorLog` ignored (also line 4)",
            "`Require` ignored",
        ]
    );
    assert!(has(
        &warnings,
        "`Require` ignored: access control is not enforced by oxwsgi"
    ));
    assert!(has(
        &warnings,
        "`DocumentRoot` ignored: oxwsgi serves no DocumentRoot"
    ));
    assert!(has(
        &warnings,
        "`Header` ignored: oxwsgi does not add or change headers"
    ));
    let opaque: Vec<&Warning> = warnings
        .iter()
        .filter(|w| w.message.starts_with("WSGIProcessGroup inside <If"))
        .collect();
    assert_eq!(opaque.len(), 1);
    assert_eq!(opaque[0].line, Some(9));
}

#[test]
fn limits() {
    let f = Files::new();
    let (site, _) = f.load(
        "LimitRequestBody 1048576\nLimitRequestLine 4096\nLimitRequestFields 0\n\
         WSGIScriptAlias /up /srv/up.wsgi\n<Location /up>\nLimitRequestBody 0\n</Location>\n\
         WSGIScriptAlias /x /srv/x.wsgi\n",
    );
    assert_eq!(site.limits.request_body, 1 << 20);
    assert_eq!(site.limits.request_line, 4096);
    assert_eq!(site.limits.request_fields, usize::MAX);
    assert_eq!(site.mount("/up").limit_request_body, Some(u64::MAX));
    assert_eq!(site.mount("/x").limit_request_body, None);
}

#[test]
fn request_read_timeout_sets_the_header_and_body_timeouts() {
    let f = Files::new();
    let (site, warnings) = f.load(
        "RequestReadTimeout header=20-40,MinRate=500 body=10-60,MinRate=1000\n\
         WSGIScriptAlias /x /srv/x.wsgi\n",
    );
    assert_eq!(site.edge.header_timeout, Duration::from_secs(40));
    assert_eq!(site.edge.body_read.timeout, Duration::from_secs(10));
    assert_eq!(site.edge.body_read.max, Some(Duration::from_secs(60)));
    assert_eq!(site.edge.body_read.min_rate, 1000);
    assert!(warnings
        .iter()
        .any(|w| w.message.contains("without a minimum rate")));
    let (site, _) = f.load("RequestReadTimeout body=0\nWSGIScriptAlias /x /srv/x.wsgi\n");
    assert!(site.edge.body_read.timeout.is_zero());
    assert_eq!(
        f.error("RequestReadTimeout body=20-10,MinRate=5\n"),
        "DIR/site.conf:1: RequestReadTimeout: body=20-10,MinRate=5: the maximum 10 is less than the timeout 20"
    );
    assert!(f
        .error("RequestReadTimeout body\n")
        .contains("expected STAGE=SECONDS"));
    assert!(f
        .error("RequestReadTimeout legs=5\n")
        .contains("expected handshake, header or body"));
}

#[test]
fn quoting_case_and_continuations() {
    let f = Files::new();
    let (site, _) = f.load(
        "  wsgidaemonprocess  web \\\n    processes=2\n\
         WSGISCRIPTALIAS \"/my-app\" \"/srv/my site/wsgi.py\" PROCESS-GROUP=web\n\
         <location \"/my-app\">\n  wsgicallableobject app\n</LOCATION>\n",
    );
    assert_eq!(site.groups[0].processes, 2);
    let m = site.mount("/my-app");
    assert_eq!(m.group, "web");
    assert_eq!(m.callable, "app");
    assert_eq!(script(&site, "/my-app"), Path::new("/srv/my site/wsgi.py"));
    assert_eq!(
        f.error("WSGIDaemonProcess \"my group\"\n"),
        "DIR/site.conf:1: group name \"my group\" must not contain ' '"
    );
}

#[test]
fn import_script_of_a_mounted_script_preloads_it() {
    let f = Files::new();
    let (site, warnings) = f.load(
        "WSGIDaemonProcess a threads=2\n\
         WSGIScriptAlias /x /srv/apx/app.py process-group=a application-group=named\n\
         WSGIScriptAlias /y /srv/apx/other.py process-group=a application-group=%{GLOBAL}\n\
         WSGIImportScript /srv/apx/app.py process-group=a application-group=named\n",
    );
    assert!(site.mount("/x").preload);
    assert!(!site.mount("/y").preload);
    assert!(
        !warnings
            .iter()
            .any(|w| w.message.contains("WSGIImportScript")),
        "{warnings:?}"
    );
}

#[test]
fn trusted_proxies_and_headers() {
    use crate::config::model::ProxyHeader;
    let f = Files::new();
    let (site, warnings) = f.load(
        "WSGITrustedProxies 10.0.0.5 192.168.0.0/16\nWSGITrustedProxies ::1\n\
         WSGITrustedProxyHeaders X-Forwarded-For x-forwarded-proto\n\
         WSGITrustedProxyHeaders X-Forwarded-Host\n\
         WSGIScriptAlias / /srv/app.wsgi\n",
    );
    let nets: Vec<String> = site
        .edge
        .trusted_proxies
        .iter()
        .map(crate::front::proxy_headers::net_text)
        .collect();
    assert_eq!(nets, ["10.0.0.5", "192.168.0.0/16", "::1"]);
    assert_eq!(
        site.edge.trusted_proxy_headers,
        [
            ProxyHeader::XForwardedFor,
            ProxyHeader::XForwardedProto,
            ProxyHeader::XForwardedHost
        ]
    );
    assert!(of_kind(&warnings, WarningKind::Behaviour)
        .iter()
        .all(|w| !w.contains("Trusted")));
}

#[test]
fn trusted_proxies_alone_do_nothing_as_in_mod_wsgi() {
    let f = Files::new();
    let (site, warnings) = f.load("WSGITrustedProxies 10.0.0.5\nWSGIScriptAlias / /srv/app.wsgi\n");
    assert_eq!(site.edge.trusted_proxies.len(), 1);
    assert!(site.edge.trusted_proxy_headers.is_empty());
    let warning = warnings
        .iter()
        .find(|w| {
            w.message
                .contains("without WSGITrustedProxyHeaders has no effect")
        })
        .unwrap_or_else(|| panic!("{warnings:?}"));
    assert_eq!(
        (warning.kind, warning.line),
        (WarningKind::Behaviour, Some(1))
    );
}

#[test]
fn trusted_headers_alone_trust_every_peer_as_in_mod_wsgi() {
    let f = Files::new();
    let (site, warnings) = f.load(
        "WSGITrustedProxyHeaders X-Forwarded-For X-Real-IP\nWSGIScriptAlias / /srv/app.wsgi\n",
    );
    let nets: Vec<String> = site
        .edge
        .trusted_proxies
        .iter()
        .map(crate::front::proxy_headers::net_text)
        .collect();
    assert_eq!(nets, ["0.0.0.0/0", "::/0"]);
    assert_eq!(site.edge.trusted_proxy_headers.len(), 1);
    let behaviour = of_kind(&warnings, WarningKind::Behaviour);
    assert!(
        behaviour
            .iter()
            .any(|w| w.contains("believed from every client")),
        "{behaviour:?}"
    );
    assert!(
        behaviour
            .iter()
            .any(|w| w.contains("X-Real-IP: not implemented")),
        "{behaviour:?}"
    );
}

#[test]
fn trusted_proxy_errors_name_the_line() {
    let f = Files::new();
    let e = f.error("WSGIScriptAlias / /srv/app.wsgi\nWSGITrustedProxies 10.0.0.300\n");
    assert!(e.contains("site.conf:2") && e.contains("10.0.0.300"), "{e}");
    let e = f.error("WSGITrustedProxyHeaders X-Forwarded-Fro\n");
    assert!(
        e.contains("site.conf:1") && e.contains("X-Forwarded-Fro"),
        "{e}"
    );
}

#[test]
fn user_and_group_name_apaches_account_and_supplementary_groups_are_read() {
    let f = Files::new();
    let (site, _) = f.load(
        "User daemon\nGroup #4\n\
         WSGIDaemonProcess g user=nobody group=nogroup supplementary-groups=adm,#1\n\
         WSGIScriptAlias / /srv/a.wsgi process-group=g\n",
    );
    assert_eq!(site.user.as_deref(), Some("daemon"));
    assert_eq!(site.unix_group.as_deref(), Some("4"));
    let group = &site.groups[0];
    assert_eq!(group.user.as_deref(), Some("nobody"));
    assert_eq!(group.unix_group.as_deref(), Some("nogroup"));
    assert_eq!(group.supplementary_groups, vec!["adm", "1"]);

    assert_eq!(
        f.error("User no-such-user-oxwsgi\n"),
        "DIR/site.conf:1: User no-such-user-oxwsgi: user `no-such-user-oxwsgi` does not exist"
    );
    assert_eq!(
        f.error("\nWSGIDaemonProcess g supplementary-groups=adm,no-such-group-oxwsgi\n"),
        "DIR/site.conf:2: WSGIDaemonProcess g: \
         supplementary-groups=\"adm,no-such-group-oxwsgi\" cannot be used: \
         Unix group `no-such-group-oxwsgi` does not exist"
    );
    assert!(f
        .error("<VirtualHost *:80>\nUser daemon\n</VirtualHost>\n")
        .contains("site.conf:2"));
}
