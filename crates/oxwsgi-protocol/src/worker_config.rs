//! What the front tells a daemon process at start-up: its group, title,
//! slots and mounts. Passed as JSON in the `OXWSGI_WORKER_CONFIG`
//! environment variable, next to `OXWSGI_WORKER_LIB` (the path of the
//! worker extension the bootstrap loads).

use serde::{Deserialize, Serialize};

/// Environment variable holding the JSON [`WorkerConfig`].
pub const CONFIG_ENV: &str = "OXWSGI_WORKER_CONFIG";
/// Environment variable holding the worker extension's path.
pub const LIB_ENV: &str = "OXWSGI_WORKER_LIB";

/// One daemon process's start-up configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// The process group's name (`mod_wsgi.process_group`).
    pub group: String,
    /// Process title to set (argv and comm), e.g. `(wsgi:app_one)`.
    pub title: Option<String>,
    /// The inherited file descriptor of the channel: a connected Unix
    /// stream socket to the front, carrying every request of the process.
    pub channel_fd: i32,
    /// How many request threads to run.
    pub threads: usize,
    /// Prepended to `sys.path`, in order.
    pub python_path: Vec<String>,
    /// Working directory (`home`).
    pub home: Option<String>,
    /// `wsgi.multiprocess`: the group has more than one process.
    pub multiprocess: bool,
    /// The mounts this group serves; `RequestHead::mount` indexes this list.
    pub mounts: Vec<WorkerMount>,
    /// Inherited descriptor of the control channel, read by the bootstrap
    /// (one-line commands such as `interrupt SLOT`).
    #[serde(default)]
    pub control_fd: Option<i32>,
    /// `deadlock-timeout` in whole seconds: the bootstrap exits the process
    /// (after dumping every thread's stack) when the GIL was not released
    /// for this long.
    #[serde(default)]
    pub deadlock_timeout: Option<u64>,
    /// `umask` applied by the bootstrap before anything else runs.
    #[serde(default)]
    pub umask: Option<u32>,
    /// `interpreter-gil`: `"shared"` (default) or `"own"` (PEP 684, Python
    /// ≥ 3.12) for the group's sub-interpreters.
    #[serde(default)]
    pub interpreter_gil: Option<String>,
    /// `cpu-policy`: `"batch"` (default, Linux `SCHED_BATCH`) or
    /// `"normal"`.
    #[serde(default)]
    pub cpu_policy: Option<String>,
    /// `cpu-priority`: the daemons' nice value (mod_wsgi's option).
    #[serde(default)]
    pub cpu_priority: Option<i32>,
    /// Write error-log lines as JSON objects (`log-format = "json"`).
    #[serde(default)]
    pub log_json: bool,
    /// `cpu-time-limit` (seconds), `virtual-memory-limit` and `stack-size`
    /// (bytes).
    #[serde(default)]
    pub cpu_time_limit: Option<u64>,
    #[serde(default)]
    pub virtual_memory_limit: Option<u64>,
    #[serde(default)]
    pub stack_size: Option<u64>,
    /// The user, group and supplementary groups the daemon switches to
    /// before it loads any application (`user`, `group`,
    /// `supplementary-groups`; the front resolves the names).
    #[serde(default)]
    pub identity: Option<WorkerIdentity>,
    /// The shared body arena the front made for this process, if any.
    #[serde(default)]
    pub arena: Option<WorkerArena>,
}

/// A shared body arena: an inherited memfd of `chunks` × `chunk_len` bytes,
/// sealed against shrinking and growing (the front maps it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerArena {
    pub fd: i32,
    pub chunk_len: u32,
    pub chunks: u32,
}

/// Numeric ids of a daemon's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerIdentity {
    pub uid: u32,
    pub gid: u32,
    /// Every group id of the process, `gid` included.
    pub groups: Vec<u32>,
}

/// One application a daemon serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerMount {
    /// The URL prefix (`SCRIPT_NAME`), for messages.
    pub path: String,
    /// A WSGI script file path, loaded as mod_wsgi does.
    pub script: Option<String>,
    /// Or a module name, imported normally.
    pub module: Option<String>,
    /// The callable's attribute name.
    pub callable: String,
    /// `%{GLOBAL}`, a sub-interpreter name, or `%{SERVER}`,
    /// `%{RESOURCE}`, `%{ENV:NAME}` (expanded per request by the worker).
    pub application_group: String,
    /// Make the mount's sub-interpreter and import its application when
    /// the process starts instead of on its first request
    /// (`WSGIImportScript`). `%{GLOBAL}` mounts are always imported then.
    #[serde(default)]
    pub preload: bool,
}
