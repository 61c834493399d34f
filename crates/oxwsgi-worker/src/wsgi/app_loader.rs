//! Loading each mount's application at process start-up.
//!
//! A `script` is loaded as mod_wsgi loads a WSGI script file: a fresh
//! module named `_mod_wsgi_` + the md5 hex digest of the script path, with
//! `__file__` set, the source compiled under the file's name and executed
//! in the module's namespace, the module in `sys.modules` (a second mount
//! of the same script in the same interpreter reuses it). A `module` is
//! imported normally. Either way the `callable` attribute is the app, or,
//! for `name()`, what calling that factory once (no arguments) returns.
//!
//! An import failure is logged once, with its traceback; the mount then
//! answers every request with `ResponseAbort`, and the other mounts work.

use std::fmt::Write;
use std::sync::OnceLock;

use md5::{Digest, Md5};
use oxwsgi_protocol::worker_config::WorkerMount;
use pyo3::exceptions::{PyAttributeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyDict, PyString};

use crate::interpreters::app_group::AppGroup;
use crate::log;
use crate::pyutil;
use crate::worker::{LoadedApp, Mount};

/// Loads one mount's application in the current interpreter; never fails
/// (a failed import is logged and leaves `app` empty).
pub fn load(py: Python<'_>, mount: &Mount) -> LoadedApp {
    let config = &mount.config;
    let app = match import(py, config) {
        Ok(app) => Some(app.unbind()),
        Err(err) => {
            let text = pyutil::traceback(py, &err);
            let group = match &mount.app_group {
                AppGroup::Global => String::new(),
                _ => format!(" in application group '{}'", config.application_group),
            };
            log::error(&format!(
                "Failed to load the WSGI application for mount '{}' ({}){group}; \
                 its requests will fail:\n{text}",
                config.path, mount.source
            ));
            None
        }
    };
    LoadedApp {
        app,
        script_filename: config
            .script
            .as_deref()
            .map(|s| PyString::new(py, s).unbind()),
        environ_template: OnceLock::new(),
    }
}

fn import<'py>(py: Python<'py>, config: &WorkerMount) -> PyResult<Bound<'py, PyAny>> {
    let module = match (&config.script, &config.module) {
        (Some(script), _) => load_script(py, script)?,
        (None, Some(module)) => py
            .import("importlib")?
            .call_method1("import_module", (module,))?,
        (None, None) => {
            return Err(PyValueError::new_err(
                "the mount names neither a script nor a module",
            ))
        }
    };
    // `create_app()`: an application factory, called once here.
    let (name, factory) = match config.callable.strip_suffix("()") {
        Some(name) => (name, true),
        None => (config.callable.as_str(), false),
    };
    let found = module.getattr_opt(name)?.ok_or_else(|| {
        PyAttributeError::new_err(format!("the WSGI application has no callable '{name}'"))
    })?;
    if !factory {
        return Ok(found);
    }
    let app = found.call0()?;
    if !app.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "the application factory {name}() returned {}, which is not a WSGI callable",
            app.get_type().name()?
        )));
    }
    Ok(app)
}

/// mod_wsgi's module name for a script: `_mod_wsgi_` + the md5 hex digest
/// of its path (computed here rather than with `hashlib`, which would map
/// OpenSSL's libcrypto into every daemon: +3.9 MiB).
fn script_module_name(path: &str) -> String {
    let digest = Md5::digest(path.as_bytes());
    let mut name = String::with_capacity(10 + 2 * digest.len());
    name.push_str("_mod_wsgi_");
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(name, "{byte:02x}");
    }
    name
}

/// mod_wsgi's way of loading a script file as a module.
fn load_script<'py>(py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyAny>> {
    let name = script_module_name(path);
    let modules = py.import("sys")?.getattr("modules")?;
    // Mounted twice in one interpreter, a script is one module (as in
    // mod_wsgi): its module-level state is shared by both mounts.
    if let Ok(existing) = modules.get_item(&name) {
        if existing
            .getattr_opt("__file__")?
            .is_some_and(|f| f.extract::<String>().is_ok_and(|f| f == path))
        {
            return Ok(existing);
        }
    }
    let source = std::fs::read(path)?;
    let builtins = py.import("builtins")?;
    let code = builtins.getattr("compile")?.call(
        (source.as_slice(), path, "exec"),
        Some(&[("dont_inherit", true)].into_py_dict(py)?),
    )?;
    let module = py.import("types")?.call_method1("ModuleType", (&name,))?;
    module.setattr("__file__", path)?;
    modules.set_item(&name, &module)?;
    let namespace = module.getattr("__dict__")?;
    let namespace = namespace.cast::<PyDict>()?;
    if let Err(err) = builtins.getattr("exec")?.call1((code, namespace)) {
        // As a failed import does: no half-initialised module stays behind.
        let _ = modules.del_item(&name);
        return Err(err);
    }
    Ok(module)
}
