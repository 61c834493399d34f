//! Code reloading. As in mod_wsgi daemon mode, touching (changing the mtime
//! of) a group's WSGI script file restarts that group's processes
//! gracefully; with `serve --reload` every Python file under the app's
//! folders counts. Files are polled once a second: cheaper than a `stat` per
//! request (mod_wsgi's way), and within a second of the change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use walkdir::WalkDir;

use super::spawn::DaemonSpec;
use crate::dispatch::pool::RecycleReason;
use crate::dispatch::GroupPool;

const POLL_EVERY: Duration = Duration::from_secs(1);
/// Bounds on a `--reload` scan, so pointing it at a huge tree stays cheap.
const MAX_DEPTH: usize = 8;
const MAX_FILES: usize = 5000;

/// What a group's watcher looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watched {
    /// Files whose mtime is checked (the WSGI script files).
    pub files: Vec<PathBuf>,
    /// Folders scanned for `*.py` files (`--reload` only).
    pub trees: Vec<PathBuf>,
}

impl Watched {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.trees.is_empty()
    }
}

/// The files and folders to watch for a group.
/// `script_reloading` off (`WSGIScriptReloading Off`): the script files are
/// not watched, unless `reload` watches everything.
pub fn watched_files(spec: &DaemonSpec, reload: bool, script_reloading: bool) -> Watched {
    let scripts: Vec<PathBuf> = spec
        .mounts
        .iter()
        .filter_map(|mount| mount.script.as_ref().map(PathBuf::from))
        .collect();
    let files = if script_reloading || reload {
        scripts.clone()
    } else {
        Vec::new()
    };
    let files_for_trees = scripts;
    let mut trees = Vec::new();
    if reload {
        trees.extend(
            files_for_trees
                .iter()
                .filter_map(|f| f.parent().map(Path::to_path_buf)),
        );
        trees.extend(spec.group.python_path.iter().cloned());
        if let Some(home) = &spec.group.home {
            trees.push(home.clone());
        }
        if files_for_trees.is_empty() && trees.is_empty() {
            if let Ok(cwd) = std::env::current_dir() {
                trees.push(cwd);
            }
        }
        trees.sort();
        trees.dedup();
    }
    Watched { files, trees }
}

/// A cheap summary of the watched code: changes when any file's mtime does
/// or files appear or disappear.
fn fingerprint(watched: &Watched) -> (usize, Option<SystemTime>, u64) {
    let mut count = 0;
    let mut newest: Option<SystemTime> = None;
    let mut sum: u64 = 0;
    let mut note = |path: &Path| {
        if let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) {
            count += 1;
            newest = newest.max(Some(modified));
            if let Ok(since) = modified.duration_since(SystemTime::UNIX_EPOCH) {
                sum = sum.wrapping_add(since.as_nanos() as u64);
            }
        }
    };
    for file in &watched.files {
        note(file);
    }
    for tree in &watched.trees {
        let python_files = WalkDir::new(tree)
            .max_depth(MAX_DEPTH)
            .into_iter()
            .filter_entry(|entry| entry.depth() == 0 || !is_skipped_dir(entry.path()))
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "py"))
            .take(MAX_FILES);
        for entry in python_files {
            note(entry.path());
        }
    }
    (count, newest, sum)
}

/// Hidden folders, caches and virtualenvs are not the app's code.
fn is_skipped_dir(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    (name.starts_with('.') && name.len() > 1)
        || name == "__pycache__"
        || name == "node_modules"
        || path.join("pyvenv.cfg").is_file()
}

/// Polls `watched` until `stop`, recycling the group's processes on change.
pub async fn watch(
    watched: Watched,
    pool: Arc<GroupPool>,
    group: String,
    mut stop: watch::Receiver<bool>,
) {
    let scan = {
        let watched = watched.clone();
        move || fingerprint(&watched)
    };
    let Ok(mut last) = tokio::task::spawn_blocking(scan.clone()).await else {
        return;
    };
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL_EVERY) => {}
            _ = stop.changed() => return,
        }
        let Ok(now) = tokio::task::spawn_blocking(scan.clone()).await else {
            return;
        };
        if now != last {
            tracing::info!(group, "code changed: restarting the group's processes");
            pool.recycle_all(RecycleReason::CodeChanged);
            last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touching_a_file_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("wsgi.py");
        std::fs::write(&script, "x = 1\n").unwrap();
        let watched = Watched {
            files: vec![script.clone()],
            trees: vec![],
        };
        let before = fingerprint(&watched);
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&script)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_ne!(fingerprint(&watched), before);
    }

    #[test]
    fn trees_see_new_python_files_but_skip_caches_and_venvs() {
        let dir = tempfile::tempdir().unwrap();
        let watched = Watched {
            files: vec![],
            trees: vec![dir.path().to_path_buf()],
        };
        std::fs::create_dir_all(dir.path().join("__pycache__")).unwrap();
        std::fs::write(dir.path().join("__pycache__/x.py"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("venv")).unwrap();
        std::fs::write(dir.path().join("venv/pyvenv.cfg"), "").unwrap();
        std::fs::write(dir.path().join("venv/y.py"), "").unwrap();
        assert_eq!(fingerprint(&watched).0, 0);
        std::fs::write(dir.path().join("app.py"), "").unwrap();
        assert_eq!(fingerprint(&watched).0, 1);
    }
}
