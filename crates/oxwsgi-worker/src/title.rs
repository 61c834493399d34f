//! The daemon's process title (`display-name`), as `setproctitle` sets it:
//! the process's original argv memory is overwritten so that `ps` and
//! `/proc/PID/cmdline` show exactly the title, and `prctl(PR_SET_NAME)`
//! sets the short name (`comm`, 15 bytes).
//!
//! This is the worker's only raw-memory code. It fails soft: the caller
//! logs the error and carries on with the old title.

use std::ffi::CString;

/// Why the title could not be set.
#[derive(Debug, thiserror::Error)]
pub enum TitleError {
    #[error("cannot read /proc/self/stat: {0}")]
    Stat(#[from] std::io::Error),
    #[error("cannot find the argv area in /proc/self/stat")]
    NoArgArea,
    #[error("the argv area ({0} bytes) is too small for a title")]
    TooSmall(usize),
    #[error("prctl(PR_SET_NAME) failed: {0}")]
    Prctl(std::io::Error),
}

/// The argv area is never larger than this (the kernel caps argv + env at
/// a quarter of the stack limit; anything bigger means we misparsed).
const MAX_ARG_AREA: usize = 16 * 1024 * 1024;

/// Sets both the argv title and the `comm` name.
pub fn set(title: &str) -> Result<(), TitleError> {
    let argv = set_argv(title);
    set_comm(title)?;
    argv
}

/// Finds the argv area: fields 48 (`arg_start`) and 49 (`arg_end`) of
/// `/proc/self/stat`, counted after the parenthesised command name (which
/// may itself contain spaces and parentheses).
fn arg_area() -> Result<(usize, usize), TitleError> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after_comm = stat.rfind(')').ok_or(TitleError::NoArgArea)?;
    // Fields after the comm start at field 3.
    let mut fields = stat[after_comm + 1..].split_ascii_whitespace().skip(48 - 3);
    let mut next = || -> Result<usize, TitleError> {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or(TitleError::NoArgArea)
    };
    let (start, end) = (next()?, next()?);
    if start == 0 || end <= start || end - start > MAX_ARG_AREA {
        return Err(TitleError::NoArgArea);
    }
    Ok((start, end))
}

/// What the argv area should hold: the title (cut to fit), a NUL, zeros,
/// and a non-NUL last byte. That last byte tells Linux (fs/proc/base.c,
/// `get_mm_cmdline`) that argv was rewritten, so `/proc/PID/cmdline` reads
/// up to the first NUL: exactly `title\0`, like any one-argument command
/// line, instead of the title followed by the whole zeroed area.
fn area_contents(title: &str, len: usize) -> Result<Vec<u8>, TitleError> {
    if len < 3 {
        return Err(TitleError::TooSmall(len));
    }
    let mut area = vec![0u8; len];
    let title = title.as_bytes();
    let n = title.len().min(len - 2);
    area[..n].copy_from_slice(&title[..n]);
    area[len - 1] = b' ';
    Ok(area)
}

fn set_argv(title: &str) -> Result<(), TitleError> {
    let (start, end) = arg_area()?;
    let contents = area_contents(title, end - start)?;
    // SAFETY: [start, end) is this process's argv area as the kernel
    // reports it: the strings it copied onto the initial stack at exec.
    // That memory stays mapped and writable for the whole life of the
    // process, and we write exactly `end - start` bytes into it. CPython
    // copied argv into its own objects at start-up and keeps no pointer
    // into this area, so nothing reads what we overwrite.
    unsafe {
        std::ptr::copy_nonoverlapping(contents.as_ptr(), start as *mut u8, contents.len());
    }
    Ok(())
}

fn set_comm(title: &str) -> Result<(), TitleError> {
    // comm holds 15 bytes plus a NUL; the title has no interior NUL once
    // cut at the first one.
    let bytes = title.as_bytes();
    let bytes = &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())];
    let name = CString::new(&bytes[..bytes.len().min(15)]).map_err(|_| TitleError::NoArgArea)?;
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
    // bytes from the pointer; `name` is such a string and outlives the call.
    let rc = unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(TitleError::Prctl(std::io::Error::last_os_error()))
    }
}
