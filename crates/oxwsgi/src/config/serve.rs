//! `oxwsgi serve TARGET [options]` → [`Site`]: one mount, in one daemon
//! group of its own, plus any `--static` aliases.
//!
//! `TARGET` is a WSGI script when it ends in `.py` or names an existing
//! file (made absolute against the working directory), otherwise a
//! `package.module[:callable]` reference. Relative paths in options are
//! taken from the working directory, as a shell user expects.

use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::group_keys;
use super::model::{
    expand_display_name, AccessLog, AppSource, Edge, Group, Mount, PythonChoice, Site, StaticAlias,
    UnixListen, DEFAULT_CALLABLE, DEFAULT_SOCKET_MODE, GLOBAL_APPLICATION_GROUP,
};
use super::names;
use crate::cli::{ListenArg, ServeArgs};

/// Builds the site `serve` runs. The group is `--group`, else named after
/// the mount prefix (`/` → `root`), as a config's mount without `group`.
pub fn from_serve_args(args: &ServeArgs) -> Result<Site, ConfigError> {
    let cwd = std::env::current_dir().map_err(|e| {
        ConfigError::arg("serve", format!("cannot read the working directory: {e}"))
    })?;
    build(args, &cwd)
}

/// [`from_serve_args`] with an explicit working directory (for tests).
fn build(args: &ServeArgs, cwd: &Path) -> Result<Site, ConfigError> {
    let absolute = |p: &Path| -> PathBuf { cwd.join(p).components().collect() };
    let (app, callable) = target(&args.target, cwd)?;
    let callable = match (callable, &args.callable) {
        (Some(from_target), Some(flag)) if &from_target != flag => {
            return Err(ConfigError::arg(
                "--callable",
                format!("says {flag:?} but TARGET names the callable {from_target:?}: keep one"),
            ))
        }
        (_, Some(flag)) => {
            names::check_callable(flag).map_err(|e| ConfigError::arg("--callable", e))?;
            flag.clone()
        }
        (Some(from_target), None) => from_target,
        (None, None) => DEFAULT_CALLABLE.to_string(),
    };

    let group_name = match &args.group {
        Some(name) => {
            names::check_group_name(name).map_err(|e| ConfigError::arg("--group", e))?;
            name.clone()
        }
        None => names::group_name_for_prefix(&args.mount),
    };
    let mut group = Group::new(group_name.clone());
    let sc = &args.scaling;
    let keys = group_keys::ScalingKeys {
        processes: args.processes,
        min: sc.min_processes,
        max: sc.max_processes,
        spare_threads: sc.spare_threads,
        up_delay: sc.scale_up_delay,
        down_delay: sc.scale_down_delay,
        cooldown: sc.scale_cooldown,
    };
    let (processes, scaling) = group_keys::scaling(&keys)
        .map_err(|(key, message)| ConfigError::arg(format!("--{key}"), message))?;
    group.processes = processes.unwrap_or(group.processes);
    group.scaling = scaling;
    group.threads = args.threads;
    group.display_name = args
        .display_name
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(|d| expand_display_name(d, &group_name));
    group.python = match (&args.python, &args.python_home) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::arg(
                "--python-home",
                "cannot be given together with --python: give the interpreter or the virtualenv, not both",
            ))
        }
        (Some(python), None) if python.components().count() > 1 || python.is_absolute() => {
            PythonChoice::Interpreter(absolute(python))
        }
        // A bare name (`python3.12`) is looked up on PATH.
        (Some(python), None) => PythonChoice::Interpreter(python.clone()),
        (None, Some(home)) => PythonChoice::Home(absolute(home)),
        (None, None) => PythonChoice::Default,
    };
    group.python_path = args
        .python_path
        .iter()
        .flat_map(|p| p.split(':'))
        .filter(|p| !p.is_empty())
        .map(|p| absolute(Path::new(p)))
        .collect();
    group.home = args.home.as_deref().map(absolute);
    if let Some(file) = &args.env_file {
        group.env = super::dotenv::read(&absolute(file))?;
    }
    for (name, value) in &args.env {
        group.env.retain(|(n, _)| n != name);
        group.env.push((name.clone(), value.clone()));
    }
    let limits = &args.limits;
    for (key, value) in limits.timeouts() {
        if let Some(value) = value {
            group_keys::set_timeout(&mut group.timeouts, key, value);
        }
    }
    group.maximum_requests = limits.maximum_requests.and_then(group_keys::off_if_zero);
    group.maximum_requests_jitter = limits
        .maximum_requests_jitter
        .and_then(group_keys::off_if_zero);
    group.memory_limit = limits.memory_limit.and_then(group_keys::off_if_zero);
    group.listen_backlog = limits.listen_backlog;

    let mut statics: Vec<StaticAlias> = Vec::new();
    for s in &args.statics {
        if s.prefix == args.mount {
            return Err(ConfigError::arg(
                "--static",
                format!("{:?} is also the application's --mount prefix", s.prefix),
            ));
        }
        if statics.iter().any(|other| other.path == s.prefix) {
            return Err(ConfigError::arg(
                "--static",
                format!("{:?} is given twice", s.prefix),
            ));
        }
        statics.push(StaticAlias {
            path: s.prefix.clone(),
            dir: absolute(&s.dir),
            host: None,
        });
    }

    let access_log = match args.access_log.as_str() {
        "-" => AccessLog::Stdout,
        "" => {
            return Err(ConfigError::arg(
                "--access-log",
                "expected a file path or -",
            ))
        }
        path => AccessLog::File(absolute(Path::new(path))),
    };

    let mut listen = Vec::new();
    let mut unix_listen = Vec::new();
    for arg in &args.listen {
        match arg {
            ListenArg::Tcp(addr) => listen.push(*addr),
            ListenArg::Unix(path) => unix_listen.push(UnixListen {
                path: absolute(path),
                mode: DEFAULT_SOCKET_MODE,
                owner: None,
                group: None,
            }),
        }
    }
    if let Some(admin) = args.admin.filter(|admin| listen.contains(admin)) {
        return Err(ConfigError::arg(
            "--admin",
            format!("{admin} is also a --listen address: the admin endpoints need an address of their own"),
        ));
    }
    Ok(Site {
        listen,
        unix_listen,
        admin: args.admin,
        access_log,
        groups: vec![group],
        mounts: vec![Mount {
            path: args.mount.clone(),
            app,
            callable,
            group: group_name,
            application_group: GLOBAL_APPLICATION_GROUP.to_string(),
            pass_authorization: true,
            limit_request_body: None,
            environ: Vec::new(),
            preload: false,
            host: None,
        }],
        statics,
        reload: args.reload,
        reload_include: args.reload_include.clone(),
        reload_exclude: args.reload_exclude.clone(),
        edge: Edge {
            front_threads: args.front_threads,
            drain_grace: args.drain_grace.unwrap_or_default(),
            ..Edge::default()
        },
        ..Site::default()
    })
}

/// `TARGET` → the app and, for `module:callable`, the callable.
fn target(text: &str, cwd: &Path) -> Result<(AppSource, Option<String>), ConfigError> {
    let path = cwd.join(text);
    if text.ends_with(".py") || (!text.is_empty() && path.is_file()) {
        if !path.is_file() {
            return Err(ConfigError::arg(
                "TARGET",
                format!("no such script file: {}", path.display()),
            ));
        }
        return Ok((AppSource::Script(path.components().collect()), None));
    }
    let spec = names::parse_module_spec(text).map_err(|_| {
        ConfigError::arg(
            "TARGET",
            format!(
                "{text:?} is neither a WSGI script file nor a Python module reference \
                 (path/to/wsgi.py or package.module:callable)"
            ),
        )
    })?;
    Ok((AppSource::Module(spec.module), spec.callable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::config::model::GroupTimeouts;
    use clap::Parser;
    use std::time::Duration;

    /// Parses `oxwsgi serve ARGS...` and builds the site in `cwd`.
    fn site_in(cwd: &Path, args: &[&str]) -> Result<Site, ConfigError> {
        let argv = ["oxwsgi", "serve"].into_iter().chain(args.iter().copied());
        let Command::Serve(serve) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not serve")
        };
        build(&serve, cwd)
    }

    fn app_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wsgi.py"), "def application(e, s): pass\n").unwrap();
        std::fs::write(dir.path().join("app.wsgi"), "application = None\n").unwrap();
        dir
    }

    #[test]
    fn script_target_with_defaults() {
        let dir = app_dir();
        let site = site_in(dir.path(), &["wsgi.py"]).unwrap();
        assert_eq!(site.listen, vec!["127.0.0.1:8000".parse().unwrap()]);
        assert_eq!(site.admin, None);
        assert_eq!(site.access_log, AccessLog::Stdout);
        assert_eq!(site.error_log, None);
        assert!(!site.reload);
        assert_eq!(site.groups, vec![Group::new("root")]);
        assert_eq!(
            site.mounts,
            vec![Mount {
                host: None,
                path: "/".into(),
                app: AppSource::Script(dir.path().join("wsgi.py")),
                callable: "application".into(),
                group: "root".into(),
                application_group: "%{GLOBAL}".into(),
                pass_authorization: true,
                preload: false,
                limit_request_body: None,
                environ: Vec::new(),
            }]
        );
        assert!(site.statics.is_empty());
    }

    #[test]
    fn existing_file_without_py_suffix_is_a_script() {
        let dir = app_dir();
        let site = site_in(dir.path(), &["./app.wsgi"]).unwrap();
        assert_eq!(
            site.mounts[0].app,
            AppSource::Script(dir.path().join("app.wsgi"))
        );
    }

    #[test]
    fn missing_script_is_an_error() {
        let dir = app_dir();
        let err = site_in(dir.path(), &["nope.py"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "TARGET: no such script file: {}",
                dir.path().join("nope.py").display()
            )
        );
    }

    #[test]
    fn module_targets() {
        let dir = app_dir();
        let site = site_in(dir.path(), &["pkg.wsgi:app"]).unwrap();
        assert_eq!(site.mounts[0].app, AppSource::Module("pkg.wsgi".into()));
        assert_eq!(site.mounts[0].callable, "app");
        let site = site_in(dir.path(), &["pkg.wsgi"]).unwrap();
        assert_eq!(site.mounts[0].callable, "application");
        let site = site_in(dir.path(), &["pkg.wsgi", "--callable", "make"]).unwrap();
        assert_eq!(site.mounts[0].callable, "make");
        let site = site_in(dir.path(), &["pkg.wsgi:make", "--callable", "make"]).unwrap();
        assert_eq!(site.mounts[0].callable, "make");
    }

    #[test]
    fn bad_targets_and_callables() {
        let dir = app_dir();
        let err = site_in(dir.path(), &["no such thing"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "TARGET: \"no such thing\" is neither a WSGI script file nor a Python module \
             reference (path/to/wsgi.py or package.module:callable)"
        );
        let err = site_in(dir.path(), &["pkg:a", "--callable", "b"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--callable: says \"b\" but TARGET names the callable \"a\": keep one"
        );
        let err = site_in(dir.path(), &["wsgi.py", "--callable", "a-b"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--callable: \"a-b\" is not a Python identifier"
        );
    }

    #[test]
    fn elastic_group_flags() {
        let dir = app_dir();
        let site = site_in(
            dir.path(),
            &["wsgi.py", "--max-processes", "4", "--scale-down-delay", "2"],
        )
        .unwrap();
        let g = &site.groups[0];
        let scaling = g.scaling.as_ref().unwrap();
        assert_eq!((g.processes, scaling.min, scaling.max), (1, 1, 4));
        assert_eq!(scaling.down_delay, std::time::Duration::from_secs(2));
        let site = site_in(dir.path(), &["wsgi.py", "--processes", "3"]).unwrap();
        assert_eq!(site.groups[0].scaling, None);
        let err = site_in(dir.path(), &["wsgi.py", "--min-processes", "2"]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--min-processes: needs `max-processes`"),
            "{err}"
        );
        let err = site_in(
            dir.path(),
            &["wsgi.py", "--processes", "5", "--max-processes", "4"],
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("--processes: "), "{err}");
    }

    #[test]
    fn group_from_mount_or_flag() {
        let dir = app_dir();
        let site = site_in(dir.path(), &["wsgi.py", "--mount", "/api/v1/"]).unwrap();
        assert_eq!(site.mounts[0].path, "/api/v1");
        assert_eq!(site.mounts[0].group, "api_v1");
        assert_eq!(site.groups[0].name, "api_v1");
        let site = site_in(
            dir.path(),
            &[
                "wsgi.py",
                "--group",
                "web",
                "--display-name",
                "%{GROUP}",
                "--processes",
                "3",
                "--threads",
                "2",
            ],
        )
        .unwrap();
        let g = &site.groups[0];
        assert_eq!((g.name.as_str(), g.processes, g.threads), ("web", 3, 2));
        assert_eq!(g.display_name.as_deref(), Some("(wsgi:web)"));
        assert_eq!(site.mounts[0].group, "web");
        let err = site_in(dir.path(), &["wsgi.py", "--group", "a b"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--group: group name \"a b\" must not contain ' '"
        );
    }

    #[test]
    fn python_choice_and_paths_are_absolute() {
        let dir = app_dir();
        let cwd = dir.path();
        let site = site_in(cwd, &["wsgi.py", "--python", "venv/bin/python"]).unwrap();
        assert_eq!(
            site.groups[0].python,
            PythonChoice::Interpreter(cwd.join("venv/bin/python"))
        );
        let site = site_in(cwd, &["wsgi.py", "--python", "python3.12"]).unwrap();
        assert_eq!(
            site.groups[0].python,
            PythonChoice::Interpreter("python3.12".into())
        );
        let site = site_in(cwd, &["wsgi.py", "--python-home", "./venv"]).unwrap();
        assert_eq!(site.groups[0].python, PythonChoice::Home(cwd.join("venv")));
        let err = site_in(cwd, &["wsgi.py", "--python", "p", "--python-home", "v"]).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("--python-home: cannot be given together with --python"));

        let site = site_in(
            cwd,
            &[
                "wsgi.py",
                "--python-path",
                "lib",
                "--python-path",
                "/opt/a:b",
                "--home",
                ".",
            ],
        )
        .unwrap();
        assert_eq!(
            site.groups[0].python_path,
            vec![cwd.join("lib"), PathBuf::from("/opt/a"), cwd.join("b")]
        );
        assert_eq!(site.groups[0].home, Some(cwd.to_path_buf()));
    }

    #[test]
    fn statics_and_logs() {
        let dir = app_dir();
        let cwd = dir.path();
        let site = site_in(
            cwd,
            &[
                "wsgi.py",
                "--static",
                "/static=assets",
                "--static",
                "/media/=/srv/media",
                "--access-log",
                "logs/access.log",
            ],
        )
        .unwrap();
        assert_eq!(
            site.statics,
            vec![
                StaticAlias {
                    host: None,
                    path: "/static".into(),
                    dir: cwd.join("assets")
                },
                StaticAlias {
                    host: None,
                    path: "/media".into(),
                    dir: "/srv/media".into()
                },
            ]
        );
        assert_eq!(
            site.access_log,
            AccessLog::File(cwd.join("logs/access.log"))
        );
        let err = site_in(cwd, &["wsgi.py", "--static", "/=x"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--static: \"/\" is also the application's --mount prefix"
        );
        let err = site_in(cwd, &["wsgi.py", "--static", "/s=a", "--static", "/s/=b"]).unwrap_err();
        assert_eq!(err.to_string(), "--static: \"/s\" is given twice");
        let err = site_in(cwd, &["wsgi.py", "--access-log", ""]).unwrap_err();
        assert_eq!(err.to_string(), "--access-log: expected a file path or -");
        let err = site_in(
            cwd,
            &[
                "wsgi.py",
                "--listen",
                "127.0.0.1:8000",
                "--admin",
                "127.0.0.1:8000",
            ],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--admin: 127.0.0.1:8000 is also a --listen address: the admin endpoints need an address of their own"
        );
    }

    #[test]
    fn group_limits_by_config_name() {
        let dir = app_dir();
        let site = site_in(
            dir.path(),
            &[
                "wsgi.py",
                "--request-timeout",
                "60",
                "--graceful-timeout",
                "15",
                "--shutdown-timeout",
                "5",
                "--startup-timeout",
                "30",
                "--inactivity-timeout",
                "0",
                "--queue-timeout",
                "2.5",
                "--restart-interval",
                "3600",
                "--deadlock-timeout",
                "300",
                "--interrupt-timeout",
                "0",
                "--maximum-requests",
                "1000",
                "--maximum-requests-jitter",
                "0",
                "--memory-limit",
                "1G",
                "--listen-backlog",
                "0",
                "--reload",
                "--admin",
                "127.0.0.1:9100",
                "--drain-grace",
                "5",
            ],
        )
        .unwrap();
        let g = &site.groups[0];
        let s = Duration::from_secs;
        assert_eq!(
            g.timeouts,
            GroupTimeouts {
                request: Some(s(60)),
                graceful: Some(s(15)),
                shutdown: Some(s(5)),
                startup: Some(s(30)),
                inactivity: None,
                queue: Some(Duration::from_millis(2500)),
                restart_interval: Some(s(3600)),
                deadlock: Some(s(300)),
                interrupt: Some(Duration::ZERO),
            }
        );
        assert_eq!(g.maximum_requests, Some(1000));
        assert_eq!(g.maximum_requests_jitter, None);
        assert_eq!(g.memory_limit, Some(1 << 30));
        assert_eq!(g.listen_backlog, Some(0));
        assert!(site.reload);
        assert_eq!(site.admin, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(site.edge.drain_grace, s(5));
        let plain = site_in(dir.path(), &["wsgi.py"]).unwrap();
        assert_eq!(plain.edge.drain_grace, Duration::ZERO);
    }
}
