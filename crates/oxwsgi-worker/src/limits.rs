//! mod_wsgi's resource limits of a daemon process, applied at its start:
//! `cpu-time-limit` (seconds of CPU, `RLIMIT_CPU`: past it the kernel
//! sends SIGXCPU, which ends the process, and the front starts a new one,
//! counted under the reason `cpu-time-limit`), `virtual-memory-limit`
//! (bytes of address space, `RLIMIT_AS`: allocations past it fail, which
//! Python raises as `MemoryError`) and `stack-size` (bytes of stack of each
//! request thread, `threading.stack_size`).

use nix::sys::resource::{setrlimit, Resource};
use pyo3::prelude::*;

/// Applies the process limits; an error names the key.
pub fn apply(cpu_time: Option<u64>, virtual_memory: Option<u64>) -> Result<(), String> {
    if let Some(seconds) = cpu_time {
        // The hard limit a second later: SIGXCPU at the soft one ends the
        // process (its default action); SIGKILL at the hard one if Python
        // ignored it.
        setrlimit(Resource::RLIMIT_CPU, seconds, seconds.saturating_add(1))
            .map_err(|e| format!("cpu-time-limit = {seconds}: setrlimit failed: {e}"))?;
    }
    if let Some(bytes) = virtual_memory {
        setrlimit(Resource::RLIMIT_AS, bytes, bytes)
            .map_err(|e| format!("virtual-memory-limit = {bytes}: setrlimit failed: {e}"))?;
    }
    Ok(())
}

/// Sets the stack size of the threads started from now on.
pub fn set_stack_size(py: Python<'_>, bytes: u64) -> PyResult<()> {
    py.import("threading")?
        .call_method1("stack_size", (bytes,))?;
    Ok(())
}
