//! Starting one daemon process: the group's Python running oxwsgi's
//! bootstrap, with its channel socket passed as inherited file descriptor 3,
//! its control socket as 4 and its shared body arena (a sealed memfd) as 5.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use command_fds::{CommandFdExt, FdMapping};
use nix::sys::socket::{setsockopt, sockopt};
use oxwsgi_protocol::worker_config::{
    WorkerArena, WorkerConfig, WorkerIdentity, WorkerMount, CONFIG_ENV, LIB_ENV,
};

use crate::config::accounts::Identity;
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

use super::control::Control;
use crate::config::model::{AppSource, Group, Mount, PythonChoice};
use crate::transport::Arena;

/// The daemon bootstrap, run as `python -c BOOTSTRAP`.
const BOOTSTRAP: &str = include_str!("../../../../python/oxwsgi/_bootstrap.py");

/// The channel socket's descriptor number in the daemon.
const CHANNEL_FD: i32 = 3;

/// The control socket's descriptor number in the daemon.
const CONTROL_FD: i32 = 4;

/// The shared body arena's descriptor number in the daemon.
const ARENA_FD: i32 = 5;

/// Environment variable that sets the chunks of each process's shared body
/// arena (`0`: none, every body goes through the channel). For measuring
/// the two paths against each other; the default suits every workload
/// measured so far (docs/benchmarks.md).
pub const ARENA_CHUNKS_ENV: &str = "OXWSGI_BODY_ARENA_CHUNKS";

/// Socket buffer size of the channel: many requests and responses in flight
/// at once without either side waiting for the other to read.
const CHANNEL_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Failure to start a daemon process.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot create the daemon's sockets: {0}")]
    Sockets(std::io::Error),
    #[error("cannot create the daemon's shared body arena: {0}")]
    Arena(std::io::Error),
    #[error("cannot start {python}: {source}")]
    Exec {
        python: PathBuf,
        source: std::io::Error,
    },
}

/// Everything needed to start the processes of one group.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    pub group: Group,
    pub python: PathBuf,
    pub worker_lib: PathBuf,
    /// The group's mounts; the index in this list is the protocol's mount id.
    pub mounts: Vec<WorkerMount>,
    /// The account the daemons switch to (from `user`, `group`,
    /// `supplementary-groups`); `None`: the front's.
    pub identity: Option<Identity>,
    /// `log-format = "json"`.
    pub log_json: bool,
    /// `error-log`: the daemons' stdout and stderr go there too (else to
    /// the front's stderr).
    pub error_log: Option<PathBuf>,
}

impl DaemonSpec {
    pub fn new(group: &Group, mounts: &[&Mount], python: PathBuf, worker_lib: PathBuf) -> Self {
        let mounts = mounts
            .iter()
            .map(|mount| WorkerMount {
                path: mount.path.clone(),
                script: match &mount.app {
                    AppSource::Script(path) => Some(path.display().to_string()),
                    AppSource::Module(_) => None,
                },
                module: match &mount.app {
                    AppSource::Module(name) => Some(name.clone()),
                    AppSource::Script(_) => None,
                },
                callable: mount.callable.clone(),
                application_group: mount.application_group.clone(),
                preload: mount.preload,
            })
            .collect();
        Self {
            group: group.clone(),
            python,
            worker_lib,
            mounts,
            identity: None,
            log_json: false,
            error_log: None,
        }
    }
}

/// A started daemon and the front's ends of its channel and control
/// sockets, and of its shared body arena.
pub struct Spawned {
    pub child: Child,
    pub channel: UnixStream,
    pub control: Control,
    pub arena: Option<Arena>,
}

/// Chunks of each process's arena: [`ARENA_CHUNKS_ENV`], else the default.
fn arena_chunks() -> u32 {
    std::env::var(ARENA_CHUNKS_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(crate::transport::arena::DEFAULT_CHUNKS)
}

/// Starts one daemon process of `spec`'s group.
pub fn spawn(spec: &DaemonSpec) -> Result<Spawned, SpawnError> {
    let (channel, daemon_channel) = channel_pair().map_err(SpawnError::Sockets)?;
    let (control, daemon_control) = StdUnixStream::pair().map_err(SpawnError::Sockets)?;
    let mut mappings = vec![
        FdMapping {
            parent_fd: OwnedFd::from(daemon_channel),
            child_fd: CHANNEL_FD,
        },
        FdMapping {
            parent_fd: OwnedFd::from(daemon_control),
            child_fd: CONTROL_FD,
        },
    ];
    let chunks = arena_chunks();
    let arena = if chunks == 0 {
        None
    } else {
        let (arena, fd) = Arena::create(chunks).map_err(SpawnError::Arena)?;
        mappings.push(FdMapping {
            parent_fd: fd,
            child_fd: ARENA_FD,
        });
        Some(arena)
    };
    let control_fd = CONTROL_FD;
    let config = WorkerConfig {
        group: spec.group.name.clone(),
        title: Some(spec.group.process_title()),
        channel_fd: CHANNEL_FD,
        threads: spec.group.threads,
        python_path: spec
            .group
            .python_path
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        home: spec.group.home.as_ref().map(|p| p.display().to_string()),
        multiprocess: spec.group.max_processes() > 1,
        mounts: spec.mounts.clone(),
        control_fd: Some(control_fd),
        deadlock_timeout: spec.group.timeouts.deadlock.map(|d| d.as_secs().max(1)),
        umask: spec.group.umask,
        interpreter_gil: spec.group.interpreter_gil.map(|g| g.as_str().to_owned()),
        cpu_policy: spec.group.cpu_policy.map(|p| p.as_str().to_owned()),
        cpu_priority: spec.group.cpu_priority,
        log_json: spec.log_json,
        cpu_time_limit: spec.group.cpu_time_limit,
        virtual_memory_limit: spec.group.virtual_memory_limit,
        stack_size: spec.group.stack_size,
        identity: spec.identity.as_ref().map(|i| WorkerIdentity {
            uid: i.uid,
            gid: i.gid,
            groups: i.groups.clone(),
        }),
        arena: arena.as_ref().map(|_| WorkerArena {
            fd: ARENA_FD,
            chunk_len: crate::transport::arena::CHUNK_LEN,
            chunks,
        }),
    };
    let config = serde_json::to_string(&config).map_err(|e| SpawnError::Sockets(e.into()))?;

    let mut command = Command::new(&spec.python);
    command
        .arg("-c")
        .arg(BOOTSTRAP)
        .env(LIB_ENV, &spec.worker_lib)
        .env(CONFIG_ENV, config)
        .stdin(Stdio::null())
        // The daemon's stdout and stderr are the error log, as in mod_wsgi.
        .stdout(error_log_handle(spec.error_log.as_deref()))
        .stderr(error_log_handle(spec.error_log.as_deref()))
        // Terminal signals (Ctrl-C) go to the front only; it stops the
        // daemons itself.
        .process_group(0)
        .kill_on_drop(true);
    for (name, value) in crate::malloc_tuning::daemon_env() {
        if std::env::var_os(name).is_none() {
            command.env(name, value);
        }
    }
    // The group's own variables (`env-file`, `env`), after oxwsgi's
    // defaults so they can change those; OXWSGI_* names are refused by the
    // config readers.
    command.envs(spec.group.env.iter().map(|(name, value)| (name, value)));
    if let Some(home) = &spec.group.home {
        command.current_dir(home);
    }
    if let Some(lang) = &spec.group.lang {
        command.env("LANG", lang);
    }
    if let Some(locale) = &spec.group.locale {
        command.env("LC_ALL", locale);
    }
    // The worker switches account itself (with every group: std's
    // `Command::uid` would keep the primary one only); its environment
    // says who it is.
    if let Some(identity) = &spec.identity {
        command
            .env("USER", &identity.name)
            .env("LOGNAME", &identity.name)
            .env("HOME", &identity.home);
    }
    command
        .fd_mappings(mappings)
        .map_err(|e| SpawnError::Sockets(std::io::Error::other(e)))?;
    let child = command.spawn().map_err(|source| SpawnError::Exec {
        python: spec.python.clone(),
        source,
    })?;
    // Dropping `command` closes the daemon's ends in the front, so the front
    // sees EOF when the daemon dies.
    drop(command);

    channel.set_nonblocking(true).map_err(SpawnError::Sockets)?;
    let channel = UnixStream::from_std(channel).map_err(SpawnError::Sockets)?;
    Ok(Spawned {
        child,
        channel,
        control: Control::new(control),
        arena,
    })
}

/// A connected socket pair with large buffers.
fn channel_pair() -> std::io::Result<(StdUnixStream, StdUnixStream)> {
    let (front_end, daemon_end) = StdUnixStream::pair()?;
    for socket in [&front_end, &daemon_end] {
        // Best effort: the kernel caps these at net.core.*mem_max.
        let _ = setsockopt(socket, sockopt::SndBuf, &CHANNEL_BUFFER_BYTES);
        let _ = setsockopt(socket, sockopt::RcvBuf, &CHANNEL_BUFFER_BYTES);
    }
    Ok((front_end, daemon_end))
}

/// The daemon's stdout and stderr: the `error-log` file (the front's own handle on it when it has one, so
/// that a front which dropped root still reaches a root-owned log), else
/// the front's stderr.
fn error_log_handle(error_log: Option<&std::path::Path>) -> Stdio {
    if let Some(path) = error_log {
        if let Some(file) = crate::logging::opened_error_log(path) {
            return Stdio::from(file);
        }
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => return Stdio::from(file),
            Err(error) => tracing::warn!(
                "cannot open the error log {} for a daemon: {error}; it writes to stderr",
                path.display()
            ),
        }
    }
    match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => Stdio::from(fd),
        Err(_) => Stdio::inherit(),
    }
}

/// Finds the interpreter a group runs: its `python`, its `python-home`'s
/// `bin/python`, or the default (`OXWSGI_PYTHON`, else `python3` on `PATH`).
pub fn resolve_python(choice: &PythonChoice) -> Result<PathBuf, String> {
    let candidate = match choice {
        PythonChoice::Interpreter(path) => path.clone(),
        PythonChoice::Home(home) => {
            let python = home.join("bin/python");
            if python.exists() {
                python
            } else {
                home.join("bin/python3")
            }
        }
        PythonChoice::Default => match std::env::var_os("OXWSGI_PYTHON") {
            Some(path) => PathBuf::from(path),
            None => PathBuf::from("python3"),
        },
    };
    if candidate.components().count() > 1 {
        return if candidate.is_file() {
            Ok(candidate)
        } else {
            Err(format!(
                "Python interpreter {} not found",
                candidate.display()
            ))
        };
    }
    find_in_path(&candidate).ok_or_else(|| {
        format!(
            "Python interpreter `{}` not found on PATH",
            candidate.display()
        )
    })
}

/// `interpreter-gil = "own"` needs CPython 3.12 or later (PEP 684): asks
/// the group's interpreter once, before any daemon starts, so an older one
/// is a clear start-up error instead of daemons failing in a loop.
pub fn check_own_gil(python: &Path) -> Result<(), String> {
    let output = std::process::Command::new(python)
        .args([
            "-c",
            "import sys; print('%d.%d' % sys.version_info[:2]); sys.exit(sys.version_info < (3, 12))",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Err(format!(
        "interpreter-gil = \"own\" needs Python 3.12 or later (PEP 684); {} is Python {version}",
        python.display()
    ))
}

fn find_in_path(name: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Finds the worker extension: `OXWSGI_WORKER_LIB`, else
/// `liboxwsgi_worker.so` next to the running executable.
pub fn resolve_worker_lib() -> Result<PathBuf, String> {
    let path = match std::env::var_os(LIB_ENV) {
        Some(path) => PathBuf::from(path),
        None => {
            let exe = std::env::current_exe()
                .map_err(|e| format!("cannot locate the oxwsgi executable: {e}"))?;
            exe.with_file_name("liboxwsgi_worker.so")
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "worker extension {} not found (build it with `cargo build`, or set {LIB_ENV})",
            path.display()
        ))
    }
}
