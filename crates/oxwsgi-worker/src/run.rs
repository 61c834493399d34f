//! `run(config_json)`: the daemon process's main function, called by the
//! bootstrap. It sets the process up (title, working directory,
//! `sys.path`), imports every mount's application, then runs one Python
//! thread per slot and waits for them all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use oxwsgi_protocol::worker_config::WorkerConfig;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::app_loader;
use crate::cache::PyCache;
use crate::log;
use crate::slot::SlotRunner;
use crate::slot_fds;
use crate::title;
use crate::worker::Worker;

/// Exit status: every slot ended with a clean EOF from the front.
const EXIT_OK: i32 = 0;
/// Exit status: a slot ended with an error.
const EXIT_SLOT_FAILED: i32 = 1;
/// Exit status: the process could not start serving.
const EXIT_STARTUP: i32 = 2;

/// Runs the daemon process; returns its exit status.
#[pyfunction]
pub fn run(py: Python<'_>, config_json: &str) -> PyResult<i32> {
    let config: WorkerConfig = match serde_json::from_str(config_json) {
        Ok(config) => config,
        Err(err) => {
            log::error(&format!("invalid worker configuration: {err}"));
            return Ok(EXIT_STARTUP);
        }
    };
    log::init(&config.group);
    if let Some(name) = &config.title {
        if let Err(err) = title::set(name) {
            log::warning(&format!("cannot set the process title to '{name}': {err}"));
        }
    }
    if let Some(home) = &config.home {
        if let Err(err) = std::env::set_current_dir(home) {
            log::error(&format!(
                "cannot change the working directory to '{home}': {err}"
            ));
            return Ok(EXIT_STARTUP);
        }
    }
    let sys_path = py.import("sys")?.getattr("path")?;
    for (i, entry) in config.python_path.iter().enumerate() {
        sys_path.call_method1("insert", (i, entry))?;
    }
    let streams = match slot_fds::claim(&config.slot_fds) {
        Ok(streams) => streams,
        Err(err) => {
            log::error(&format!("cannot use the slot sockets: {err}"));
            return Ok(EXIT_STARTUP);
        }
    };

    let cache = PyCache::new(py, &config.group)?;
    let mounts = config
        .mounts
        .iter()
        .map(|mount| app_loader::load(py, mount, &cache))
        .collect();
    let worker = Arc::new(Worker {
        mounts,
        cache,
        multithread: streams.len() > 1,
        multiprocess: config.multiprocess,
        failed_slots: AtomicUsize::new(0),
    });

    let thread = py.import("threading")?.getattr("Thread")?;
    let mut threads = Vec::with_capacity(streams.len());
    for (index, stream) in streams.into_iter().enumerate() {
        let kwargs = PyDict::new(py);
        kwargs.set_item("target", SlotRunner::new(worker.clone(), index, stream))?;
        kwargs.set_item("name", format!("oxwsgi-slot-{index}"))?;
        // Daemon threads: an exception in the main thread ends the process
        // instead of leaving it waiting on its slots.
        kwargs.set_item("daemon", true)?;
        let t = thread.call((), Some(&kwargs))?;
        t.call_method0("start")?;
        threads.push(t);
    }
    log::info(&format!(
        "worker ready: {} slot(s), {} mount(s)",
        threads.len(),
        worker.mounts.len()
    ));
    for t in &threads {
        t.call_method0("join")?;
    }

    Ok(if worker.failed_slots.load(Ordering::Relaxed) == 0 {
        EXIT_OK
    } else {
        EXIT_SLOT_FAILED
    })
}
