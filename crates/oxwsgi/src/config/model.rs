//! The `Site`: the one model every config format and the `serve` command line
//! produce, and the only thing the front, dispatcher and supervisor see.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A whole site: listeners, front limits, daemon groups, mounts, statics.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// Addresses the front accepts HTTP on.
    pub listen: Vec<SocketAddr>,
    /// Optional admin listener (/healthz, /status, /metrics).
    pub admin: Option<SocketAddr>,
    pub access_log: AccessLog,
    /// `listen = ["unix:/path"]`: Unix-domain socket listeners (plain
    /// HTTP/1.1 and h2c-less), e.g. behind nginx.
    pub unix_listen: Vec<UnixListen>,
    /// `None`: stderr.
    pub error_log: Option<PathBuf>,
    /// `log-format = "json"`: the error log (the front's and the
    /// daemons' lines) as one JSON object a line.
    pub error_log_json: bool,
    pub limits: Limits,
    /// Daemon process groups, in config order. Names are unique.
    pub groups: Vec<Group>,
    /// Mounts, in config order. Each names a group in `groups`.
    pub mounts: Vec<Mount>,
    pub statics: Vec<StaticAlias>,
    /// Name-based virtual hosts (`[[host]]`, Apache `<VirtualHost>`), in
    /// config order. Mounts and statics with a `host` belong to one; those
    /// without belong to the main server, which every host inherits.
    pub hosts: Vec<VirtualHost>,
    /// `user` / `group` (top level; Apache `User` / `Group`): when started
    /// as root, the front binds its listeners, reads its keys and opens its
    /// logs, then runs as this user (and group: else the user's primary
    /// one), as do the daemons of groups without a `user` of their own.
    pub user: Option<String>,
    pub unix_group: Option<String>,
    /// `reload = true`, `run --reload`, `serve --reload`: restart a
    /// group's daemons when its application's Python code changes (not
    /// only the WSGI script file). For development.
    pub reload: bool,
    /// `reload-include`: glob patterns of more files that count as code
    /// with `reload` (`*.html`, `templates/**`), on top of `*.py`; matched
    /// against the path relative to the watched folder (`*` crosses `/`).
    pub reload_include: Vec<String>,
    /// `reload-exclude`: glob patterns of files and folders that never
    /// count (`tests/**`, `*_flymake.py`).
    pub reload_exclude: Vec<String>,
    /// `script-reloading` (Apache `WSGIScriptReloading`, default on):
    /// touching a WSGI script file restarts its group.
    pub script_reloading: bool,
    /// The front as an edge: TLS and HTTP/2 per listener, timeouts, the
    /// connection cap, trusted proxies, the access-log format, static
    /// options.
    pub edge: Edge,
}

/// The listen address when none is configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";

impl Default for Site {
    /// An empty site on [`DEFAULT_LISTEN`], access log on stdout: a base for
    /// `Site { mounts, groups, ..Site::default() }` in tests.
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8000))],
            admin: None,
            access_log: AccessLog::Stdout,
            unix_listen: Vec::new(),
            error_log: None,
            error_log_json: false,
            limits: Limits::default(),
            groups: Vec::new(),
            mounts: Vec::new(),
            statics: Vec::new(),
            hosts: Vec::new(),
            user: None,
            unix_group: None,
            reload: false,
            reload_include: Vec::new(),
            reload_exclude: Vec::new(),
            script_reloading: true,
            edge: Edge::default(),
        }
    }
}

impl Site {
    /// The mounts and static aliases (indices into `mounts`, `statics`)
    /// that answer in `host` (`None`: the main server): the host's own and
    /// the main server's at paths the host does not use itself, as Apache's
    /// virtual hosts inherit the main server's aliases.
    pub fn entries_of(&self, host: Option<usize>) -> (Vec<usize>, Vec<usize>) {
        let bare = |path: &str| path.trim_end_matches('/').to_owned();
        let own_paths: Vec<String> = self
            .mounts
            .iter()
            .filter(|m| m.host == host)
            .map(|m| bare(&m.path))
            .chain(
                self.statics
                    .iter()
                    .filter(|s| s.host == host)
                    .map(|s| bare(&s.path)),
            )
            .collect();
        let answers = |entry_host: Option<usize>, path: &str| {
            entry_host == host || (entry_host.is_none() && !own_paths.contains(&bare(path)))
        };
        let mounts = (0..self.mounts.len())
            .filter(|&i| answers(self.mounts[i].host, &self.mounts[i].path))
            .collect();
        let statics = (0..self.statics.len())
            .filter(|&i| answers(self.statics[i].host, &self.statics[i].path))
            .collect();
        (mounts, statics)
    }

    /// The group called `name`.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// A Unix-domain socket to listen on, with the file's permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixListen {
    pub path: PathBuf,
    /// `socket-mode` (octal; default 0o660).
    pub mode: u32,
    /// `socket-owner` / `socket-group`: names or numeric ids.
    pub owner: Option<String>,
    pub group: Option<String>,
}

/// `socket-mode` when not configured: owner and group may connect.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

/// The `listen` prefix that names a Unix-domain socket.
pub const UNIX_PREFIX: &str = "unix:";

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    Off,
    Stdout,
    File(PathBuf),
}

/// Front limits, with Apache's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `limit-request-line` (bytes of the request line): 414 over it.
    pub request_line: usize,
    /// `limit-request-fields`: 431 over it.
    pub request_fields: usize,
    /// `limit-request-field-size` (bytes of one header line): 431 over it.
    pub request_field_size: usize,
    /// `limit-request-body` (bytes): 413 over it.
    pub request_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_line: 8190,
            request_fields: 100,
            request_field_size: 8190,
            request_body: 1 << 30,
        }
    }
}

/// The front's edge settings (issue 6). Kept apart from [`Limits`] and
/// [`StaticAlias`] so config readers that know nothing of them need not
/// change: per-listener and per-static options are keyed by address and
/// prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// Options of the `listen` addresses that are not plain HTTP/1.1;
    /// an address of [`Site::listen`] without an entry here is plain.
    pub listeners: Vec<ListenerOptions>,
    /// `header-timeout`: how long a client may take to send a request head
    /// (and a TLS handshake, and the first request of a connection).
    pub header_timeout: Duration,
    /// `keep-alive-timeout`: how long an idle connection is kept open
    /// between requests.
    pub keep_alive_timeout: Duration,
    /// `body-timeout` / `body-timeout-max` / `body-min-rate`: how long a
    /// client may take to send a request body.
    pub body_read: BodyRead,
    /// `body-buffer-size`: a request body up to this size is read whole
    /// before a Python thread is taken for it; a larger one streams to the
    /// application.
    pub body_buffer: u64,
    /// `response-buffer-size`: bytes of one response the front takes off
    /// the daemon, past its window, before the client reads them.
    pub response_buffer: u64,
    /// `response-buffer-total`: the same, for every response together.
    pub response_buffer_total: u64,
    /// `max-connections`: open client connections at most; more wait in
    /// the listen backlog.
    pub max_connections: usize,
    /// `front-threads`: the front's runtime threads (`None`: see
    /// [`Edge::front_threads`]).
    pub front_threads: Option<usize>,
    /// `drain-grace`: after SIGTERM/SIGINT, how long `/healthz` answers 503
    /// while the listeners still accept and serve new connections (so a
    /// load balancer or Kubernetes' endpoints can stop sending), before the
    /// graceful stop begins. Zero (the default): the stop begins at once.
    pub drain_grace: Duration,
    /// `trusted-proxies`: peers whose proxy headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `trusted-proxy-headers`: which proxy headers are believed from them.
    pub trusted_proxy_headers: Vec<ProxyHeader>,
    /// `access-log-format`, Apache `LogFormat` syntax.
    pub access_log_format: String,
    /// Options of `[[static]]` entries, by prefix (none: the defaults).
    pub statics: Vec<StaticOptions>,
}

/// `header-timeout` when not configured (mod_reqtimeout's `header=20`).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// `keep-alive-timeout` when not configured (Apache's `KeepAliveTimeout`).
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// `max-connections` when not configured.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// `body-buffer-size` when not configured.
pub const DEFAULT_BODY_BUFFER: u64 = 1 << 20;
/// `response-buffer-size` when not configured.
pub const DEFAULT_RESPONSE_BUFFER: u64 = 16 << 20;
/// `response-buffer-total` when not configured.
pub const DEFAULT_RESPONSE_BUFFER_TOTAL: u64 = 256 << 20;

/// The request-body read timeout, as mod_reqtimeout's
/// `RequestReadTimeout body=TIMEOUT[-MAX],MinRate=RATE`: the body must
/// arrive within `timeout`, extended by one second for every `min_rate`
/// bytes received, never past `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRead {
    pub timeout: Duration,
    pub max: Option<Duration>,
    /// Bytes per second; 0: no extension (then `timeout` bounds the body).
    pub min_rate: u64,
}

impl Default for BodyRead {
    /// mod_reqtimeout's default: `body=20,MinRate=500`.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(20),
            max: None,
            min_rate: 500,
        }
    }
}
/// Apache's combined format plus `%D` (microseconds), the default.
pub const COMBINED_LOG_FORMAT: &str =
    "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\" %D";

impl Default for Edge {
    fn default() -> Self {
        Self {
            listeners: Vec::new(),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            body_read: BodyRead::default(),
            body_buffer: DEFAULT_BODY_BUFFER,
            response_buffer: DEFAULT_RESPONSE_BUFFER,
            response_buffer_total: DEFAULT_RESPONSE_BUFFER_TOTAL,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            front_threads: None,
            drain_grace: Duration::ZERO,
            trusted_proxies: Vec::new(),
            trusted_proxy_headers: ProxyHeader::ALL.to_vec(),
            access_log_format: COMBINED_LOG_FORMAT.to_string(),
            statics: Vec::new(),
        }
    }
}

impl Edge {
    /// How many threads the front's runtime runs: `front-threads`, else
    /// half the CPUs this process may use (at least 1). The daemons need
    /// the other half: on a 2-core machine one front thread serves hello
    /// world ~10 % faster than two, which wake each other to steal work.
    pub fn front_threads(&self) -> usize {
        self.front_threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |cpus| cpus.get().div_ceil(2))
                .max(1)
        })
    }

    /// The options of the listener at `addr` (plain HTTP/1.1 when none).
    pub fn listener(&self, addr: SocketAddr) -> ListenerOptions {
        self.listeners
            .iter()
            .find(|l| l.addr == addr)
            .cloned()
            .unwrap_or(ListenerOptions {
                addr,
                tls: None,
                h2c: false,
            })
    }

    /// Whether the static alias at `prefix` follows symlinks out of its folder.
    pub fn follows_symlinks(&self, prefix: &str) -> bool {
        self.statics
            .iter()
            .any(|s| s.path == prefix && s.follow_symlinks)
    }
}

/// One listener's protocol options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerOptions {
    pub addr: SocketAddr,
    /// `tls-cert` + `tls-key`: serve HTTPS (HTTP/2 by ALPN).
    pub tls: Option<TlsFiles>,
    /// `h2c = true`: HTTP/2 with prior knowledge on a plain listener.
    pub h2c: bool,
}

/// PEM files of a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Options of one `[[static]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticOptions {
    /// The alias's prefix, as in [`StaticAlias::path`].
    pub path: String,
    /// `follow-symlinks = true`: serve symlinks that point out of the folder.
    pub follow_symlinks: bool,
}

/// A proxy header that `trusted-proxy-headers` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyHeader {
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    XForwardedPort,
    Forwarded,
}

impl ProxyHeader {
    pub const ALL: [ProxyHeader; 5] = [
        ProxyHeader::XForwardedFor,
        ProxyHeader::XForwardedProto,
        ProxyHeader::XForwardedHost,
        ProxyHeader::XForwardedPort,
        ProxyHeader::Forwarded,
    ];

    /// The header's name as written in configs.
    pub fn name(self) -> &'static str {
        match self {
            ProxyHeader::XForwardedFor => "X-Forwarded-For",
            ProxyHeader::XForwardedProto => "X-Forwarded-Proto",
            ProxyHeader::XForwardedHost => "X-Forwarded-Host",
            ProxyHeader::XForwardedPort => "X-Forwarded-Port",
            ProxyHeader::Forwarded => "Forwarded",
        }
    }

    /// Parses a header name, any case.
    pub fn from_name(name: &str) -> Option<ProxyHeader> {
        Self::ALL
            .into_iter()
            .find(|h| h.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// A daemon process group (`WSGIDaemonProcess name ...`).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    /// The fixed number of processes; for an elastic group (`scaling` set),
    /// the number it starts with.
    pub processes: usize,
    pub threads: usize,
    /// The expanded process title (`%{GROUP}` → `(wsgi:NAME)`), if any.
    pub display_name: Option<String>,
    /// The interpreter to start: `python`, else `python-home`/bin/python,
    /// else the default interpreter.
    pub python: PythonChoice,
    /// Extra `sys.path` entries, prepended in order.
    pub python_path: Vec<PathBuf>,
    /// Working directory of the daemon processes.
    pub home: Option<PathBuf>,
    pub timeouts: GroupTimeouts,
    /// `maximum-requests`: recycle a process after this many requests.
    pub maximum_requests: Option<u64>,
    /// `memory-limit` in bytes (resident size).
    pub memory_limit: Option<u64>,
    /// `cpu-time-limit` in seconds of CPU (`RLIMIT_CPU`).
    pub cpu_time_limit: Option<u64>,
    /// `virtual-memory-limit` in bytes of address space (`RLIMIT_AS`).
    pub virtual_memory_limit: Option<u64>,
    /// `stack-size` of the request threads, in bytes.
    pub stack_size: Option<u64>,
    /// `listen-backlog`: the most requests that may wait in the group's queue.
    pub listen_backlog: Option<usize>,
    /// `maximum-requests-jitter`: a random 0..=N added to `maximum-requests`
    /// per process, so processes do not all recycle at once.
    pub maximum_requests_jitter: Option<u64>,
    /// `user`: run the daemons as this user (name or numeric id).
    pub user: Option<String>,
    /// `group` (mod_wsgi's option): run the daemons with this Unix group
    /// (name or numeric id). Named `unix_group` here to keep it apart from
    /// the daemon group's `name`.
    pub unix_group: Option<String>,
    /// `supplementary-groups` (mod_wsgi's option): more Unix groups of the
    /// daemons, beyond those `user` is a member of.
    pub supplementary_groups: Vec<String>,
    /// `umask` of the daemon processes.
    pub umask: Option<u32>,
    /// `lang`: the daemons' `LANG`.
    pub lang: Option<String>,
    /// `locale`: the daemons' `LC_ALL`.
    pub locale: Option<String>,
    /// `env-file` then `env` (later wins): variables the group's daemons
    /// get in their environment, on top of the front's.
    pub env: Vec<(String, String)>,
    /// `interpreter-gil`: the GIL of the group's sub-interpreters (named
    /// application groups); `None` = shared.
    pub interpreter_gil: Option<InterpreterGil>,
    /// `cpu-policy`: the daemons' Linux scheduling policy; `None` = batch.
    pub cpu_policy: Option<CpuPolicy>,
    /// `cpu-priority` (mod_wsgi's option): the daemons' nice value.
    pub cpu_priority: Option<i32>,
    /// `read-ahead` (oxwsgi's own): requests a process may hold waiting for
    /// a thread while all its threads are busy; `None` = automatic.
    pub read_ahead: Option<usize>,
    /// `min-processes` / `max-processes` and the keys that go with them
    /// (oxwsgi's own): the group grows and shrinks with its load. `None`:
    /// a fixed group of `processes`.
    pub scaling: Option<Scaling>,
}

/// An elastic group's bounds and pace (`min-processes`, `max-processes`,
/// `spare-threads`, `scale-up-delay`, `scale-down-delay`, `scale-cooldown`);
/// the decisions are made by `supervisor::scale_policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scaling {
    /// Never fewer processes (at least 1).
    pub min: usize,
    /// Never more processes.
    pub max: usize,
    /// Idle threads to keep besides the busy ones: the group grows when
    /// fewer are idle (0: only when requests wait).
    pub spare_threads: usize,
    /// How long the group must be short of threads before it grows.
    pub up_delay: Duration,
    /// How long a surplus process must be surplus before it is retired.
    pub down_delay: Duration,
    /// The least time between a scale event and the next retirement.
    pub cooldown: Duration,
}

/// `scale-up-delay` when not configured.
pub const DEFAULT_SCALE_UP_DELAY: Duration = Duration::from_millis(500);
/// `scale-down-delay` when not configured.
pub const DEFAULT_SCALE_DOWN_DELAY: Duration = Duration::from_secs(30);
/// `scale-cooldown` when not configured.
pub const DEFAULT_SCALE_COOLDOWN: Duration = Duration::from_secs(10);

impl Scaling {
    /// Bounds `min..=max` with the default pace and no spare threads.
    pub fn new(min: usize, max: usize) -> Self {
        Self {
            min,
            max,
            spare_threads: 0,
            up_delay: DEFAULT_SCALE_UP_DELAY,
            down_delay: DEFAULT_SCALE_DOWN_DELAY,
            cooldown: DEFAULT_SCALE_COOLDOWN,
        }
    }
}

/// `cpu-policy` (oxwsgi's own group key): how the daemons' threads are
/// scheduled against the front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuPolicy {
    /// `SCHED_BATCH` (the default): a daemon thread woken by a request does
    /// not preempt the front on wake-up.
    Batch,
    /// `SCHED_OTHER`, as every other process.
    Normal,
}

impl CpuPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Batch => "batch",
            Self::Normal => "normal",
        }
    }
}

/// `interpreter-gil` (oxwsgi's own group key, no mod_wsgi counterpart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterpreterGil {
    /// The process's one GIL, as mod_wsgi's sub-interpreters.
    Shared,
    /// A GIL per sub-interpreter (PEP 684, Python ≥ 3.12).
    Own,
}

impl InterpreterGil {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Own => "own",
        }
    }
}

/// `processes` when not configured.
pub const DEFAULT_PROCESSES: usize = 1;
/// `threads` when not configured.
pub const DEFAULT_THREADS: usize = 15;
/// The most `processes` a group may have. mod_wsgi sets no bound; Apache's
/// own `ServerLimit` is 20000 for mpm_worker. Each daemon is a whole Python
/// interpreter (tens of MB at least), so 1000 of them is already tens of
/// GB: a larger number is a typo, not a deployment.
pub const MAX_PROCESSES: usize = 1000;
/// The most `threads` a daemon process may have. Past a few dozen threads
/// one GIL serialises them anyway; 1000 threads (each with its stack) is
/// far beyond any useful size, and a larger number is a typo.
pub const MAX_THREADS: usize = 1000;

/// Checks a group's `processes` (`key` = "processes") or `threads` count
/// against [`MAX_PROCESSES`] / [`MAX_THREADS`]; the message says why.
pub fn check_group_size(key: &str, n: usize) -> Result<(), String> {
    let max = if key == "threads" {
        MAX_THREADS
    } else {
        MAX_PROCESSES
    };
    if n > max {
        return Err(format!(
            "is over oxwsgi's limit of {max} {key} per {}",
            if key == "threads" { "process" } else { "group" }
        ));
    }
    Ok(())
}

impl Group {
    /// The daemons' process title: `display-name`, or `(wsgi:NAME)`
    /// without one (see [`default_title`]).
    pub fn process_title(&self) -> String {
        self.display_name
            .clone()
            .unwrap_or_else(|| default_title(&self.name))
    }

    /// A group with every setting at its default: 1 process × 15 threads,
    /// no display name, the default interpreter, no timeouts.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            processes: DEFAULT_PROCESSES,
            threads: DEFAULT_THREADS,
            display_name: None,
            python: PythonChoice::Default,
            python_path: Vec::new(),
            home: None,
            timeouts: GroupTimeouts::default(),
            maximum_requests: None,
            memory_limit: None,
            cpu_time_limit: None,
            virtual_memory_limit: None,
            stack_size: None,
            listen_backlog: None,
            maximum_requests_jitter: None,
            user: None,
            unix_group: None,
            supplementary_groups: Vec::new(),
            umask: None,
            lang: None,
            locale: None,
            env: Vec::new(),
            interpreter_gil: None,
            cpu_policy: None,
            cpu_priority: None,
            read_ahead: None,
            scaling: None,
        }
    }

    /// The most processes the group may run at once: `max-processes` for
    /// an elastic group, else `processes`.
    pub fn max_processes(&self) -> usize {
        self.scaling.as_ref().map_or(self.processes, |s| s.max)
    }
}

/// Which Python interpreter a group's daemons run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PythonChoice {
    /// The interpreter oxwsgi was installed with (`OXWSGI_PYTHON`), else
    /// `python3` from `PATH`.
    Default,
    /// `python = "/path/to/python"`.
    Interpreter(PathBuf),
    /// `python-home = "/venv"`: runs `/venv/bin/python`.
    Home(PathBuf),
}

/// The group timeouts, mod_wsgi's names; `None` means not set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupTimeouts {
    pub request: Option<Duration>,
    pub graceful: Option<Duration>,
    pub shutdown: Option<Duration>,
    pub startup: Option<Duration>,
    pub inactivity: Option<Duration>,
    pub queue: Option<Duration>,
    pub restart_interval: Option<Duration>,
    /// `deadlock-timeout`: recycle a process whose GIL has been held this long.
    pub deadlock: Option<Duration>,
    /// `interrupt-timeout`: how long a request may take after a graceful
    /// restart was asked for before the process is restarted anyway.
    pub interrupt: Option<Duration>,
}

/// A WSGI application mounted at a URL prefix (`WSGIScriptAlias`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Normalised prefix: starts with `/`, no trailing `/` except for `/`.
    pub path: String,
    pub app: AppSource,
    /// The callable's name (`WSGICallableObject`), default `application`.
    pub callable: String,
    /// Name of the daemon group that runs it.
    pub group: String,
    /// `%{GLOBAL}` (main interpreter) or another name (sub-interpreter).
    pub application_group: String,
    /// Pass `Authorization` as `HTTP_AUTHORIZATION` (default true).
    pub pass_authorization: bool,
    /// Per-mount `limit-request-body`, overriding the site's.
    pub limit_request_body: Option<u64>,
    /// `set-env` (Apache `SetEnv` / `PassEnv`): extra keys of every
    /// request's WSGI environ, as mod_wsgi passes them; never `os.environ`.
    pub environ: Vec<(String, String)>,
    /// `preload`: make a named application group's sub-interpreter and
    /// import the application when a daemon starts, not on first use
    /// (`WSGIImportScript`).
    pub preload: bool,
    /// The virtual host it belongs to (an index into [`Site::hosts`]);
    /// `None`: the main server's, seen by every host.
    pub host: Option<usize>,
}

/// Where a mount's application comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSource {
    /// A WSGI script file, loaded as mod_wsgi does.
    Script(PathBuf),
    /// `package.module` (the callable is in [`Mount::callable`]).
    Module(String),
}

/// A folder served as static files under a URL prefix (`Alias`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticAlias {
    pub path: String,
    pub dir: PathBuf,
    /// As [`Mount::host`].
    pub host: Option<usize>,
}

/// A name-based virtual host: the requests whose host name (`Host`,
/// `:authority`) it carries, on the addresses it applies to. Two are equal
/// when they answer the same requests, wherever they were defined.
#[derive(Debug, Clone, Eq)]
pub struct VirtualHost {
    /// `ServerName` then `ServerAlias`es, lowercase, without port or
    /// trailing dot; `*` and `?` are wildcards (`*.example.com`). The
    /// first is the host's name in logs and `/status` (empty: a host
    /// reached only as a default).
    pub names: Vec<String>,
    /// The addresses it applies to (empty: every listener).
    pub addrs: Vec<HostAddr>,
    /// Answers requests whose name no host of the address carries. In an
    /// Apache file the first `<VirtualHost>` of each address is; in TOML
    /// the host with `default = true`. None is: the main server answers.
    pub default: bool,
    /// The certificate served to clients that name this host by SNI.
    pub tls: Option<TlsFiles>,
    /// Where it was defined (`file:line`), for messages.
    pub defined_at: String,
}

impl PartialEq for VirtualHost {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
            && self.addrs == other.addrs
            && self.default == other.default
            && self.tls == other.tls
    }
}

impl VirtualHost {
    /// The host's name for logs: its first name, else where it is defined.
    pub fn label(&self) -> &str {
        self.names.first().map_or(&self.defined_at, String::as_str)
    }
}

/// An address a virtual host applies to: `ip:port`, `*:port`, `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostAddr {
    /// `None`: every local address.
    pub ip: Option<std::net::IpAddr>,
    /// `None`: every port.
    pub port: Option<u16>,
}

impl HostAddr {
    /// Every address and port (`*`).
    pub const ANY: HostAddr = HostAddr {
        ip: None,
        port: None,
    };

    /// `addr` as a host address: an unspecified IP (`0.0.0.0`, `::`)
    /// applies to every local address.
    pub fn from_socket(addr: SocketAddr) -> Self {
        Self {
            ip: (!addr.ip().is_unspecified()).then_some(addr.ip()),
            port: Some(addr.port()),
        }
    }

    /// Whether a connection to `local` is covered.
    pub fn covers(&self, local: SocketAddr) -> bool {
        self.port.is_none_or(|p| p == local.port()) && self.ip.is_none_or(|ip| ip == local.ip())
    }

    /// Whether the two may cover one connection.
    pub fn overlaps(&self, other: &HostAddr) -> bool {
        let ports = match (self.port, other.port) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        let ips = match (self.ip, other.ip) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        ports && ips
    }
}

impl std::fmt::Display for HostAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.ip, self.port) {
            (None, None) => f.write_str("*"),
            (None, Some(port)) => write!(f, "*:{port}"),
            (Some(ip), Some(port)) => write!(f, "{}", SocketAddr::new(ip, port)),
            (Some(ip), None) => write!(f, "{ip}"),
        }
    }
}

/// Host-name matching of [`VirtualHost::names`]: the request's host made
/// comparable (no port, no trailing dot; case does not matter) and
/// Apache's `*` / `?` wildcards.
pub mod host_names {
    /// The name a `Host` header or `:authority` carries, without its port
    /// and trailing dot (case kept). `None` when nothing is left.
    pub fn strip(host: &str) -> Option<&str> {
        let name = if let Some(rest) = host.strip_prefix('[') {
            rest.split(']').next().unwrap_or(rest)
        } else {
            host.rsplit_once(':').map_or(host, |(name, _)| name)
        };
        let name = name.trim().trim_end_matches('.');
        (!name.is_empty()).then_some(name)
    }

    /// As [`strip`], lowercase: how configs store names.
    pub fn normalise(host: &str) -> Option<String> {
        strip(host).map(str::to_ascii_lowercase)
    }

    /// Whether the request's `name` ([`strip`]ped, any case) matches
    /// `pattern` (lowercase; `*` any run of characters, `?` one).
    pub fn matches(pattern: &str, name: &str) -> bool {
        if !pattern.contains(['*', '?']) {
            return pattern.eq_ignore_ascii_case(name);
        }
        glob(pattern.as_bytes(), name.as_bytes())
    }

    /// Iterative wildcard match with one backtrack point: never
    /// exponential, whatever the pattern.
    fn glob(pattern: &[u8], text: &[u8]) -> bool {
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match pattern.get(p) {
                Some(b'*') => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(&c) if c == b'?' || c == text[t].to_ascii_lowercase() => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(|&c| c == b'*')
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn hosts_lose_port_case_and_trailing_dot() {
            assert_eq!(
                normalise("WWW.Example.COM:8080").as_deref(),
                Some("www.example.com")
            );
            assert_eq!(normalise("example.com.").as_deref(), Some("example.com"));
            assert_eq!(normalise("example.com.:80").as_deref(), Some("example.com"));
            assert_eq!(normalise("[::1]:8080").as_deref(), Some("::1"));
            assert_eq!(normalise(":80"), None);
            assert_eq!(normalise(""), None);
            assert_eq!(strip("Example.COM.:443"), Some("Example.COM"));
        }

        #[test]
        fn wildcards_match_as_apache_does() {
            assert!(matches("*.example.com", "www.example.com"));
            assert!(matches("*.example.com", "a.b.example.com"));
            assert!(!matches("*.example.com", "example.com"));
            assert!(matches("www?.example.com", "www1.example.com"));
            assert!(!matches("www?.example.com", "www.example.com"));
            assert!(matches("*", "anything"));
            assert!(matches("a*b*c", "aXXbYYc"));
            assert!(!matches("a*b*c", "aXXbYY"));
            assert!(matches("example.com", "example.com"));
            assert!(!matches("example.com", "www.example.com"));
            assert!(matches("example.com", "EXAMPLE.com"));
            assert!(matches("*.example.com", "WWW.Example.Com"));
        }
    }
}

/// The callable's name when none is configured (`WSGICallableObject`).
pub const DEFAULT_CALLABLE: &str = "application";

/// The main interpreter's application-group name.
pub const GLOBAL_APPLICATION_GROUP: &str = "%{GLOBAL}";

/// Expands a `display-name` the way mod_wsgi does: `%{GROUP}` becomes
/// `(wsgi:NAME)`.
pub fn expand_display_name(display_name: &str, group: &str) -> String {
    display_name.replace("%{GROUP}", &format!("(wsgi:{group})"))
}

/// The title of a daemon whose group has no `display-name`: `(wsgi:NAME)`,
/// what `display-name=%{GROUP}` gives. (mod_wsgi's daemons keep Apache's
/// own command line, `/usr/sbin/apache2 -k start`; an oxwsgi daemon's
/// command line is `python -c BOOTSTRAP`, 4 KB of source, so it is never
/// left as it is.)
pub fn default_title(group: &str) -> String {
    expand_display_name("%{GROUP}", group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_name_expands_group() {
        assert_eq!(expand_display_name("%{GROUP}", "app_one"), "(wsgi:app_one)");
        assert_eq!(expand_display_name("web-%{GROUP}", "a"), "web-(wsgi:a)");
        assert_eq!(expand_display_name("plain", "a"), "plain");
    }

    #[test]
    fn a_group_without_display_name_is_titled_after_the_group() {
        let mut group = Group::new("app_one");
        assert_eq!(group.process_title(), "(wsgi:app_one)");
        group.display_name = Some("web".into());
        assert_eq!(group.process_title(), "web");
    }
}
