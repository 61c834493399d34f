//! The daemon process's CPU scheduling: `cpu-policy` (Linux `SCHED_BATCH`
//! unless set to `"normal"`) and mod_wsgi's `cpu-priority` (a nice value).
//!
//! Both are set on the calling thread — the daemon's main thread, before
//! any slot thread starts — and every thread it starts inherits them.
//!
//! Why `SCHED_BATCH` by default: a request reaches a slot thread when the
//! front writes to the slot's socket, which wakes that thread. A normal
//! thread woken that way preempts the front on the spot, while the front
//! still has other connections' requests and responses to pass on; the
//! front then runs again a moment later. Batch threads are not allowed to
//! preempt on wake-up: the front finishes its turn, the woken slot threads
//! run after it. Measured on 2 cores (docs/benchmarks.md, "CPU policy of
//! the daemons"): hello world +35–60 % requests/s, context switches per
//! request 2.4 → 1.7. Batch threads still get their fair share of CPU; they
//! only do not jump ahead on wake-up.
//!
//! libc has the two calls; neither `nix` nor `rustix` wraps
//! `sched_setscheduler`.

use std::io;

/// Applies `cpu-policy` (`None` = batch) and `cpu-priority` to the calling
/// thread. `"normal"` leaves the policy as inherited.
pub fn apply(policy: Option<&str>, priority: Option<i32>) -> Result<(), String> {
    match policy {
        None | Some("batch") => set_batch()
            .map_err(|e| format!("cpu-policy = \"batch\": sched_setscheduler failed: {e}"))?,
        Some("normal") => {}
        Some(other) => {
            return Err(format!(
                "cpu-policy = {other:?}: expected \"batch\" or \"normal\""
            ))
        }
    }
    if let Some(nice) = priority {
        set_nice(nice).map_err(|e| format!("cpu-priority = {nice}: setpriority failed: {e}"))?;
    }
    Ok(())
}

fn set_batch() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain system call; `param` is a valid, initialised
    // `sched_param` that lives across the call, and pid 0 is this thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_nice(nice: i32) -> io::Result<()> {
    // SAFETY: plain system call without pointers; who = 0 is this thread
    // on Linux (threads have their own nice value).
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
