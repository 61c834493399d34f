//! The command line (DESIGN §2), as clap derive types: `serve`, `run`,
//! `check`, `convert`, `status`, `--version`, `--help`.
//!
//! Values are checked while parsing (addresses, sizes, durations, counts,
//! `--static PREFIX=DIR`), so a bad value is a usage error. Use
//! [`Cli::parse_or_exit`]: usage errors exit 1 (clap's own default is 2,
//! which the contract keeps for runtime failures), help and version exit 0.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::addr::parse_addr;
use crate::config::model::DEFAULT_LISTEN;
use crate::config::names::normalise_prefix;
use crate::config::units::{parse_duration, parse_size};

/// Host Python WSGI applications in daemon process groups, as Apache +
/// mod_wsgi daemon mode does.
#[derive(Debug, Clone, Parser)]
#[command(name = "oxwsgi", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses `std::env::args_os()`; on a usage error prints clap's message
    /// and exits 1, on `--help`/`--version` prints and exits 0.
    pub fn parse_or_exit() -> Cli {
        Self::parse_from_or_exit(std::env::args_os())
    }

    /// As [`Cli::parse_or_exit`], from the given arguments (the first is the
    /// program name).
    pub fn parse_from_or_exit<I, T>(args: I) -> Cli
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        match Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(e) => {
                let code = if e.use_stderr() { 1 } else { 0 };
                // Nothing more to do if stdout/stderr are gone.
                let _ = e.print();
                std::process::exit(code)
            }
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Quick start: serve one application.
    Serve(Box<ServeArgs>),
    /// Run a site from a config file (.toml native; otherwise an Apache site file).
    Run(RunArgs),
    /// Validate a config file, print the effective layout and warnings.
    Check(ConfigArg),
    /// Print the native TOML equivalent of an Apache site file.
    Convert(ConvertArgs),
    /// Live table of groups, processes and busy threads, from the admin endpoint.
    Status(StatusArgs),
}

impl Command {
    /// The subcommand's name as typed (`serve`, `run`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Serve(_) => "serve",
            Command::Run(_) => "run",
            Command::Check(_) => "check",
            Command::Convert(_) => "convert",
            Command::Status(_) => "status",
        }
    }
}

/// `run CONFIG` / `check CONFIG`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// The site's config file: native TOML when it ends in .toml, otherwise
    /// an Apache site file.
    #[arg(value_name = "CONFIG")]
    pub config: PathBuf,
}

/// `run CONFIG [--admin HOST:PORT]`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The site's config file: native TOML when it ends in .toml, otherwise
    /// an Apache site file.
    #[arg(value_name = "CONFIG")]
    pub config: PathBuf,
    /// Address for /healthz, /status and /metrics, instead of the config's
    /// `admin` (an Apache site file has no such setting).
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    pub admin: Option<SocketAddr>,
    /// Restart a group's daemons when any Python file of its application
    /// changes, not only its WSGI script (development; as `serve --reload`).
    #[arg(long)]
    pub reload: bool,
    /// With reload: more files that count as code, by glob (`*.html`,
    /// `templates/**`; relative to the app's folders, `*` crosses `/`).
    /// Repeatable.
    #[arg(long = "reload-include", value_name = "GLOB", value_parser = parse_glob)]
    pub reload_include: Vec<String>,
    /// With reload: files and folders that never count, by glob
    /// (`tests/**`). Repeatable.
    #[arg(long = "reload-exclude", value_name = "GLOB", value_parser = parse_glob)]
    pub reload_exclude: Vec<String>,
    /// After SIGTERM/SIGINT, keep accepting and serving new connections
    /// for this long (seconds) while /healthz answers 503, so a load
    /// balancer stops sending first; then stop gracefully. Instead of the
    /// config's `drain-grace` (0 when unset); the way to set one for an
    /// Apache site file, which has no such setting.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub drain_grace: Option<Duration>,
}

/// `convert APACHE_CONF`.
#[derive(Debug, Clone, Args)]
pub struct ConvertArgs {
    /// The Apache site file to convert.
    #[arg(value_name = "APACHE_CONF")]
    pub apache_conf: PathBuf,
}

/// The admin address `status` asks when `--admin` is not given.
pub const DEFAULT_STATUS_ADMIN: &str = "127.0.0.1:9100";

/// `status [CONFIG] [--admin ADDR] [--watch [--interval SECS]] [--json]`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The site's config file: its `admin` address is asked (unless --admin).
    #[arg(value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// The server's admin address (its `admin` setting) [default: from
    /// CONFIG, else 127.0.0.1:9100].
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    pub admin: Option<SocketAddr>,
    /// Redraw the table every --interval seconds until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between redraws with --watch.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_interval)]
    pub interval: Duration,
    /// Print the raw /status JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `--interval`: a duration of at least 0.1 s.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_duration(text)?;
    if interval < Duration::from_millis(100) {
        return Err(format!("expected at least 0.1 seconds, got `{text}`"));
    }
    Ok(interval)
}

/// `serve TARGET [options]`: one application, mounted at `--mount`, in a
/// daemon group of its own.
///
/// The group is named `--group`, by default after the mount prefix as a
/// config's mount without `group` is (`/` → `root`, `/api/v1` → `api_v1`).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// A WSGI script file (path/to/wsgi.py, callable `application`, as
    /// mod_wsgi loads it) or package.module[:callable] (as gunicorn).
    #[arg(value_name = "TARGET")]
    pub target: String,

    /// Address to accept HTTP on, or unix:PATH for a Unix socket (repeatable).
    #[arg(long, value_name = "HOST:PORT|unix:PATH", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    pub listen: Vec<ListenArg>,
    /// URL prefix to mount the application at.
    #[arg(long, value_name = "PREFIX", default_value = "/", value_parser = normalise_prefix)]
    pub mount: String,
    /// Name of the callable in the script or module (default `application`).
    #[arg(long, value_name = "NAME")]
    pub callable: Option<String>,
    /// Serve the files in DIR under PREFIX (repeatable).
    #[arg(long = "static", value_name = "PREFIX=DIR", value_parser = parse_static)]
    pub statics: Vec<StaticArg>,
    /// Address for /healthz, /status and /metrics.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    pub admin: Option<SocketAddr>,
    /// Access log: a file, or - for stdout.
    #[arg(long, value_name = "PATH|-", default_value = "-")]
    pub access_log: String,
    /// Restart the daemons when the application's Python code changes.
    #[arg(long)]
    pub reload: bool,
    /// With reload: more files that count as code, by glob (`*.html`,
    /// `templates/**`; relative to the app's folders, `*` crosses `/`).
    /// Repeatable.
    #[arg(long = "reload-include", value_name = "GLOB", value_parser = parse_glob)]
    pub reload_include: Vec<String>,
    /// With reload: files and folders that never count, by glob
    /// (`tests/**`). Repeatable.
    #[arg(long = "reload-exclude", value_name = "GLOB", value_parser = parse_glob)]
    pub reload_exclude: Vec<String>,
    /// Threads of the front's runtime [default: half the CPUs, at least 1].
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub front_threads: Option<usize>,
    /// After SIGTERM/SIGINT, keep accepting and serving new connections
    /// for this long (seconds) while /healthz answers 503, so a load
    /// balancer stops sending first; then stop gracefully [default: 0].
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub drain_grace: Option<Duration>,

    /// Name of the daemon process group [default: derived from --mount].
    #[arg(long, value_name = "NAME", help_heading = "Daemon group")]
    pub group: Option<String>,
    /// Daemon processes in the group [default: 1]; with --max-processes,
    /// the number it starts with [default: --min-processes].
    #[arg(long, value_name = "N", value_parser = parse_count, help_heading = "Daemon group")]
    pub processes: Option<usize>,
    /// Threads per daemon process.
    #[arg(long, value_name = "N", default_value_t = 15, value_parser = parse_count, help_heading = "Daemon group")]
    pub threads: usize,
    /// Process title of the daemons; %{GROUP} becomes (wsgi:NAME).
    #[arg(long, value_name = "TITLE", help_heading = "Daemon group")]
    pub display_name: Option<String>,
    /// The Python interpreter the daemons run.
    #[arg(long, value_name = "PATH", help_heading = "Daemon group")]
    pub python: Option<PathBuf>,
    /// A virtualenv (or Python install) whose bin/python the daemons run.
    #[arg(long, value_name = "DIR", help_heading = "Daemon group")]
    pub python_home: Option<PathBuf>,
    /// Directory prepended to sys.path (repeatable; a:b also accepted).
    #[arg(long, value_name = "DIR", help_heading = "Daemon group")]
    pub python_path: Vec<String>,
    /// Working directory of the daemons.
    #[arg(long, value_name = "DIR", help_heading = "Daemon group")]
    pub home: Option<PathBuf>,
    /// Variables of an environment file (NAME=VALUE lines) for the daemons.
    #[arg(long, value_name = "PATH", help_heading = "Daemon group")]
    pub env_file: Option<PathBuf>,
    /// A variable for the daemons (repeatable; wins over --env-file).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env, help_heading = "Daemon group")]
    pub env: Vec<(String, String)>,

    #[command(flatten)]
    pub limits: GroupLimitArgs,

    #[command(flatten)]
    pub scaling: ScalingArgs,
}

/// An elastic group's keys, by their config names (oxwsgi's own).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Elastic daemon group (grows with load up to --max-processes)")]
pub struct ScalingArgs {
    /// The fewest processes the group keeps [default: 1].
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub min_processes: Option<usize>,
    /// Makes the group elastic: it grows up to this many processes.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub max_processes: Option<usize>,
    /// Idle threads to keep: grow when fewer are idle [default: 0, grow
    /// when requests wait].
    #[arg(long, value_name = "N")]
    pub spare_threads: Option<usize>,
    /// How long threads must be short before the group grows [default: 0.5].
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub scale_up_delay: Option<Duration>,
    /// How long a process must be surplus before it is retired [default: 30].
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub scale_down_delay: Option<Duration>,
    /// The least time between a scale event and the next retirement
    /// [default: 10].
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub scale_cooldown: Option<Duration>,
}

/// The group timeouts and recycling limits, by their config names.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Daemon group limits (durations in seconds; 0 turns a limit off)")]
pub struct GroupLimitArgs {
    /// Answer 504 and recycle the process when a request takes longer.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,
    /// How long a graceful restart waits for in-flight requests.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub graceful_timeout: Option<Duration>,
    /// How long a stopping process may take before it is killed.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub shutdown_timeout: Option<Duration>,
    /// How long a process may take to start and import the application.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub startup_timeout: Option<Duration>,
    /// Recycle a process that served no request for this long.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub inactivity_timeout: Option<Duration>,
    /// Answer 503 when a request waited this long for a free thread.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub queue_timeout: Option<Duration>,
    /// Recycle every process after this long.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub restart_interval: Option<Duration>,
    /// Recycle a process whose Python interpreter has been stuck this long.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub deadlock_timeout: Option<Duration>,
    /// After a restart was asked for, how long requests may still take.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub interrupt_timeout: Option<Duration>,
    /// Recycle a process after this many requests.
    #[arg(long, value_name = "N")]
    pub maximum_requests: Option<u64>,
    /// Add a random 0..=N to --maximum-requests per process.
    #[arg(long, value_name = "N")]
    pub maximum_requests_jitter: Option<u64>,
    /// Recycle a process whose resident memory exceeds this (bytes, or K/M/G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<u64>,
    /// The most requests that may wait for a thread (then 503).
    #[arg(long, value_name = "N")]
    pub listen_backlog: Option<usize>,
}

impl GroupLimitArgs {
    /// The timeouts that were given, by config name.
    pub fn timeouts(&self) -> [(&'static str, Option<Duration>); 9] {
        [
            ("request-timeout", self.request_timeout),
            ("graceful-timeout", self.graceful_timeout),
            ("shutdown-timeout", self.shutdown_timeout),
            ("startup-timeout", self.startup_timeout),
            ("inactivity-timeout", self.inactivity_timeout),
            ("queue-timeout", self.queue_timeout),
            ("restart-interval", self.restart_interval),
            ("deadlock-timeout", self.deadlock_timeout),
            ("interrupt-timeout", self.interrupt_timeout),
        ]
    }
}

/// A count of at least 1 and at most the group size bound
/// (`--processes`, `--threads`; see `config::model::MAX_THREADS`).
/// A glob pattern (`--reload-include`, `--reload-exclude`).
fn parse_glob(text: &str) -> Result<String, String> {
    glob::Pattern::new(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("not a glob pattern: {e}"))
}

fn parse_count(text: &str) -> Result<usize, String> {
    let max = crate::config::model::MAX_THREADS.min(crate::config::model::MAX_PROCESSES);
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a whole number from 1 to {max}, got `{text}`"
        )),
    }
}

/// One `--listen`: a TCP address or a Unix socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenArg {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

fn parse_listen(text: &str) -> Result<ListenArg, String> {
    match text.strip_prefix(crate::config::model::UNIX_PREFIX) {
        Some("") => Err("unix: needs a socket path".to_owned()),
        Some(path) => Ok(ListenArg::Unix(PathBuf::from(path))),
        None => parse_addr(text).map(ListenArg::Tcp),
    }
}

/// `--env NAME=VALUE`.
fn parse_env(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))?;
    crate::config::dotenv::check_name(name)?;
    crate::config::dotenv::check_value(name, value)?;
    Ok((name.to_owned(), value.to_owned()))
}

/// `--static PREFIX=DIR`, the prefix normalised, the folder as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticArg {
    pub prefix: String,
    pub dir: PathBuf,
}

fn parse_static(text: &str) -> Result<StaticArg, String> {
    let Some((prefix, dir)) = text.split_once('=') else {
        return Err(format!(
            "expected PREFIX=DIR (e.g. /static=./static), got `{text}`"
        ));
    };
    if dir.is_empty() {
        return Err(format!("no folder after `=` in `{text}`"));
    }
    Ok(StaticArg {
        prefix: normalise_prefix(prefix).map_err(|e| format!("bad prefix: {e}"))?,
        dir: PathBuf::from(dir),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("oxwsgi").chain(args.iter().copied()))
    }

    fn serve(args: &[&str]) -> ServeArgs {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        match parse(&all).unwrap().command {
            Command::Serve(s) => *s,
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults() {
        let s = serve(&["wsgi.py"]);
        assert_eq!(s.target, "wsgi.py");
        assert_eq!(
            s.listen,
            vec![ListenArg::Tcp(
                "127.0.0.1:8000".parse::<SocketAddr>().unwrap()
            )]
        );
        assert_eq!(s.mount, "/");
        assert_eq!(s.processes, None);
        assert_eq!(s.threads, 15);
        assert_eq!(s.access_log, "-");
        assert_eq!(s.callable, None);
        assert_eq!(s.group, None);
        assert!(s.statics.is_empty() && s.python_path.is_empty());
        assert!(!s.reload);
        assert_eq!(s.limits.request_timeout, None);
    }

    #[test]
    fn serve_options() {
        let s = serve(&[
            "pkg.app:make",
            "--listen",
            "127.0.0.1:8080",
            "--listen",
            "[::1]:8080",
            "--processes",
            "2",
            "--threads",
            "4",
            "--mount",
            "/api/",
            "--static",
            "/static=assets",
            "--static",
            "media=/srv/media",
            "--python-path",
            "a",
            "--python-path",
            "b:c",
            "--request-timeout",
            "2.5",
            "--maximum-requests",
            "1000",
            "--memory-limit",
            "512M",
            "--queue-timeout",
            "10",
            "--reload",
            "--admin",
            "localhost:9100",
        ]);
        assert_eq!(s.listen.len(), 2);
        assert_eq!((s.processes, s.threads), (Some(2), 4));
        assert_eq!(s.mount, "/api");
        assert_eq!(
            s.statics,
            vec![
                StaticArg {
                    prefix: "/static".into(),
                    dir: "assets".into()
                },
                StaticArg {
                    prefix: "/media".into(),
                    dir: "/srv/media".into()
                },
            ]
        );
        assert_eq!(s.python_path, vec!["a", "b:c"]);
        assert_eq!(s.limits.request_timeout, Some(Duration::from_millis(2500)));
        assert_eq!(s.limits.queue_timeout, Some(Duration::from_secs(10)));
        assert_eq!(s.limits.maximum_requests, Some(1000));
        assert_eq!(s.limits.memory_limit, Some(512 << 20));
        assert_eq!(s.admin, Some("127.0.0.1:9100".parse().unwrap()));
        assert!(s.reload);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        let cases: &[&[&str]] = &[
            &["serve", "wsgi.py", "--processes", "0"],
            &["serve", "wsgi.py", "--threads", "-1"],
            &["serve", "wsgi.py", "--listen", "8000"],
            &["serve", "wsgi.py", "--request-timeout", "soon"],
            &["serve", "wsgi.py", "--memory-limit", "lots"],
            &["serve", "wsgi.py", "--static", "/static"],
            &["serve", "wsgi.py", "--static", "/a b=x"],
            &["serve", "wsgi.py", "--mount", "/a?b"],
            &["serve", "wsgi.py", "--procesess", "2"],
            &["serve"],
            &["run"],
            &["status", "--admin", "nope"],
            &["frobnicate"],
        ];
        for args in cases {
            let err = parse(args).unwrap_err();
            assert!(err.use_stderr(), "{args:?} → {:?}", err.kind());
        }
        let err = parse(&["serve", "wsgi.py", "--request-timeout", "soon"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(
            err.to_string().contains("expected a number of seconds"),
            "{err}"
        );
        let err = parse(&["serve", "wsgi.py", "--processes", "0"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected a whole number from 1 to 1000, got `0`"),
            "{err}"
        );
        let err = parse(&["serve", "wsgi.py", "--static", "/static"]).unwrap_err();
        assert!(err.to_string().contains("expected PREFIX=DIR"), "{err}");
    }

    #[test]
    fn help_and_version_are_not_errors() {
        for args in [
            &["--help"][..],
            &["--version"],
            &["serve", "--help"],
            &["help"],
        ] {
            let err = parse(args).unwrap_err();
            assert!(!err.use_stderr(), "{args:?}");
        }
        let help = parse(&["serve", "--help"]).unwrap_err().to_string();
        for option in [
            "--request-timeout",
            "--python-home",
            "--static",
            "--group",
            "--reload",
        ] {
            assert!(help.contains(option), "serve --help lacks {option}");
        }
    }

    #[test]
    fn run_check_convert_status() {
        let run = parse(&["run", "site.toml"]).unwrap().command;
        assert_eq!(run.name(), "run");
        let Command::Run(a) = run else { panic!() };
        assert_eq!(a.config, PathBuf::from("site.toml"));
        assert_eq!(a.admin, None);
        let Command::Run(a) = parse(&["run", "site.conf", "--admin", "127.0.0.1:9100"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!(a.admin, Some("127.0.0.1:9100".parse().unwrap()));
        let Command::Check(a) = parse(&["check", "site.conf"]).unwrap().command else {
            panic!()
        };
        assert_eq!(a.config, PathBuf::from("site.conf"));
        let Command::Convert(a) = parse(&["convert", "apache.conf"]).unwrap().command else {
            panic!()
        };
        assert_eq!(a.apache_conf, PathBuf::from("apache.conf"));
        let Command::Status(a) = parse(&["status"]).unwrap().command else {
            panic!()
        };
        assert_eq!(a.admin, None);
        assert_eq!(a.config, None);
        assert_eq!(a.interval, Duration::from_secs(1));
        assert!(!a.watch && !a.json);
        let Command::Status(a) = parse(&[
            "status",
            "site.toml",
            "--admin",
            "127.0.0.1:9200",
            "--watch",
            "--interval",
            "0.5",
            "--json",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        assert_eq!(a.admin, Some("127.0.0.1:9200".parse().unwrap()));
        assert_eq!(a.config, Some(PathBuf::from("site.toml")));
        assert_eq!(a.interval, Duration::from_millis(500));
        assert!(a.watch && a.json);
        assert!(parse(&["status", "--interval", "0"]).is_err());
    }
}
