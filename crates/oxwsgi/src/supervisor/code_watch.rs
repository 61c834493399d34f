//! Code reloading. As in mod_wsgi daemon mode, touching (changing the mtime
//! of) a group's WSGI script file restarts that group's processes
//! gracefully; with `reload` (`run --reload`, `serve --reload`) every file
//! of the app's folders that counts as code does too: `*.py`, plus the
//! site's `reload-include` globs, minus its `reload-exclude` globs (and
//! hidden folders, `__pycache__`, `node_modules`, virtualenvs).
//!
//! Changes are seen through inotify (the `notify` crate): one watch per
//! folder of the app (not per file, and not inside skipped folders), new
//! folders watched as they appear (and scanned for code files written
//! before their watch was in place), events within [`SETTLE`] of each other
//! (an editor's write-rename-chmod) taken as one change. Where inotify is
//! not available or the tree is too large for it, the folders are polled
//! once a second instead. The watcher lives as long as the group, so a
//! change that makes the app fail to import is followed by the next one
//! that fixes it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use glob::{MatchOptions, Pattern};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use walkdir::WalkDir;

use super::spawn::DaemonSpec;
use crate::dispatch::pool::RecycleReason;
use crate::dispatch::GroupPool;

const POLL_EVERY: Duration = Duration::from_secs(1);
/// Events this close together are one change.
const SETTLE: Duration = Duration::from_millis(200);
/// Bounds on a `reload` scan, so pointing it at a huge tree stays cheap.
const MAX_DEPTH: usize = 8;
const MAX_FILES: usize = 5000;
/// More folders than this are polled rather than given inotify watches
/// (the default `fs.inotify.max_user_watches` is 8192 on older kernels,
/// shared by every program of the user).
const MAX_WATCHED_DIRS: usize = 2000;

/// Which files of a watched folder count as code: `*.py` and the include
/// globs, unless an exclude glob matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeFilter {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

/// `*` and `**` cross `/`; a pattern is matched against the path relative
/// to the watched folder (`templates/**`, `*.html`).
const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

impl CodeFilter {
    /// From the site's `reload-include` / `reload-exclude` (checked by the
    /// config readers; an invalid pattern here is skipped).
    pub fn new(include: &[String], exclude: &[String]) -> Self {
        let compile = |patterns: &[String]| -> Vec<Pattern> {
            patterns
                .iter()
                .filter_map(|p| Pattern::new(p).ok())
                .collect()
        };
        let mut include_patterns = vec![Pattern::new("*.py").expect("a valid literal pattern")];
        include_patterns.extend(compile(include));
        Self {
            include: include_patterns,
            exclude: compile(exclude),
        }
    }

    /// Whether the file at `relative` (to its watched folder) counts.
    pub fn counts(&self, relative: &Path) -> bool {
        self.include
            .iter()
            .any(|p| p.matches_path_with(relative, MATCH))
            && !self.excludes(relative)
    }

    /// Whether `relative` (a file or a folder) is excluded.
    pub fn excludes(&self, relative: &Path) -> bool {
        self.exclude
            .iter()
            .any(|p| p.matches_path_with(relative, MATCH))
    }
}

/// What a group's watcher looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watched {
    /// Files whose changes count whatever their name (the WSGI scripts).
    pub files: Vec<PathBuf>,
    /// Folders whose code files count (`reload` only).
    pub trees: Vec<PathBuf>,
    pub filter: CodeFilter,
}

impl Watched {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.trees.is_empty()
    }

    /// Whether a change at `path` is a change of the watched code.
    fn concerns(&self, path: &Path) -> bool {
        if self.files.iter().any(|f| f == path) {
            return true;
        }
        self.trees.iter().any(|tree| {
            let Ok(relative) = path.strip_prefix(tree) else {
                return false;
            };
            let skipped = relative
                .ancestors()
                .skip(1)
                .filter(|a| !a.as_os_str().is_empty())
                .any(|a| is_skipped_dir(&tree.join(a)) || self.filter.excludes(a));
            !skipped && relative.components().count() <= MAX_DEPTH && self.filter.counts(relative)
        })
    }

    /// The folders to watch: each script's folder, and every folder of
    /// the trees a scan would enter. `None`: more than inotify should hold.
    fn folders(&self) -> Option<Vec<PathBuf>> {
        let mut out: Vec<PathBuf> = self
            .files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        for tree in &self.trees {
            let dirs = WalkDir::new(tree)
                .max_depth(MAX_DEPTH)
                .into_iter()
                .filter_entry(|entry| entry.depth() == 0 || !self.skips(tree, entry.path()))
                .filter_map(Result::ok)
                .filter(|entry| entry.file_type().is_dir());
            for entry in dirs {
                out.push(entry.into_path());
                if out.len() > MAX_WATCHED_DIRS {
                    return None;
                }
            }
        }
        out.sort();
        out.dedup();
        Some(out)
    }

    /// Whether a scan leaves out the folder or file at `path` in `tree`.
    fn skips(&self, tree: &Path, path: &Path) -> bool {
        is_skipped_dir(path)
            || path
                .strip_prefix(tree)
                .is_ok_and(|relative| self.filter.excludes(relative))
    }
}

/// The files and folders to watch for a group.
/// `script_reloading` off (`WSGIScriptReloading Off`): the script files are
/// not watched, unless `reload` watches everything.
pub fn watched_files(
    spec: &DaemonSpec,
    reload: bool,
    script_reloading: bool,
    filter: CodeFilter,
) -> Watched {
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
    let mut trees = Vec::new();
    if reload {
        trees.extend(
            scripts
                .iter()
                .filter_map(|f| f.parent().map(Path::to_path_buf)),
        );
        trees.extend(spec.group.python_path.iter().cloned());
        if let Some(home) = &spec.group.home {
            trees.push(home.clone());
        }
        if scripts.is_empty() && trees.is_empty() {
            if let Ok(cwd) = std::env::current_dir() {
                trees.push(cwd);
            }
        }
        trees.sort();
        trees.dedup();
    }
    Watched {
        files,
        trees,
        filter,
    }
}

/// A cheap summary of the watched code, for polling: changes when any
/// file's mtime does or files appear or disappear.
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
        let code_files = WalkDir::new(tree)
            .max_depth(MAX_DEPTH)
            .into_iter()
            .filter_entry(|entry| entry.depth() == 0 || !watched.skips(tree, entry.path()))
            .filter_map(Result::ok)
            .filter(|entry| {
                entry.file_type().is_file()
                    && entry
                        .path()
                        .strip_prefix(tree)
                        .is_ok_and(|relative| watched.filter.counts(relative))
            })
            .take(MAX_FILES);
        for entry in code_files {
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

/// Watches `watched` until `stop`, recycling the group's processes on
/// change: through inotify where it can, else by polling.
pub async fn watch(
    watched: Watched,
    pool: Arc<GroupPool>,
    group: String,
    stop: watch::Receiver<bool>,
) {
    let recycle = move || {
        tracing::info!(group, "code changed: restarting the group's processes");
        pool.recycle_all(RecycleReason::CodeChanged);
    };
    let folders = {
        let watched = watched.clone();
        tokio::task::spawn_blocking(move || watched.folders()).await
    };
    match folders {
        Ok(Some(folders)) => match Notified::start(&folders) {
            Ok(notified) => return notified.run(&watched, recycle, stop).await,
            Err(error) => tracing::warn!(
                "cannot watch the code with inotify ({error}): polling it once a second"
            ),
        },
        Ok(None) => tracing::warn!(
            "more than {MAX_WATCHED_DIRS} folders to watch for code changes: polling them once a second (reload-exclude can leave some out)"
        ),
        Err(_) => return,
    }
    poll(watched, recycle, stop).await;
}

/// Polls the fingerprint once a second.
async fn poll(watched: Watched, recycle: impl Fn(), mut stop: watch::Receiver<bool>) {
    let scan = move || fingerprint(&watched);
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
            recycle();
            last = now;
        }
    }
}

/// An inotify watcher and the events it sends.
struct Notified {
    watcher: notify::RecommendedWatcher,
    events: mpsc::UnboundedReceiver<notify::Event>,
}

impl Notified {
    fn start(folders: &[PathBuf]) -> notify::Result<Self> {
        let (tx, events) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event {
                    // The receiver is gone only when the group stops.
                    let _ = tx.send(event);
                }
            })?;
        for folder in folders {
            watcher.watch(folder, RecursiveMode::NonRecursive)?;
        }
        Ok(Self { watcher, events })
    }

    async fn run(mut self, watched: &Watched, recycle: impl Fn(), mut stop: watch::Receiver<bool>) {
        loop {
            let event = tokio::select! {
                event = self.events.recv() => event,
                _ = stop.changed() => return,
            };
            let Some(event) = event else { return };
            let mut changed = self.take(watched, &event);
            // Let a burst of events (write, rename, chmod) settle.
            let settle = tokio::time::sleep(SETTLE);
            tokio::pin!(settle);
            loop {
                tokio::select! {
                    () = &mut settle => break,
                    more = self.events.recv() => match more {
                        Some(event) => changed |= self.take(watched, &event),
                        None => return,
                    },
                    _ = stop.changed() => return,
                }
            }
            if changed {
                recycle();
            }
        }
    }

    /// Whether `event` changes the code; a new folder of a tree is
    /// watched from now on.
    fn take(&mut self, watched: &Watched, event: &notify::Event) -> bool {
        if matches!(event.kind, EventKind::Access(_)) {
            return false;
        }
        let mut changed = false;
        for path in &event.paths {
            if matches!(event.kind, EventKind::Create(_)) && path.is_dir() {
                let in_tree = watched
                    .trees
                    .iter()
                    .any(|tree| path.starts_with(tree) && !watched.skips(tree, path));
                if in_tree {
                    // A folder that cannot be watched is seen when a
                    // file in it is touched again (best effort).
                    let _ = self.watcher.watch(path, RecursiveMode::NonRecursive);
                    // Files written before the watch was in place.
                    changed |= WalkDir::new(path)
                        .max_depth(MAX_DEPTH)
                        .into_iter()
                        .filter_map(Result::ok)
                        .take(MAX_FILES)
                        .any(|entry| entry.file_type().is_file() && watched.concerns(entry.path()));
                }
                continue;
            }
            changed |= watched.concerns(path);
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path, filter: CodeFilter) -> Watched {
        Watched {
            files: vec![],
            trees: vec![dir.to_path_buf()],
            filter,
        }
    }

    #[test]
    fn touching_a_file_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("wsgi.py");
        std::fs::write(&script, "x = 1\n").unwrap();
        let watched = Watched {
            files: vec![script.clone()],
            ..Watched::default()
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
        let watched = tree(dir.path(), CodeFilter::new(&[], &[]));
        std::fs::create_dir_all(dir.path().join("__pycache__")).unwrap();
        std::fs::write(dir.path().join("__pycache__/x.py"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("venv")).unwrap();
        std::fs::write(dir.path().join("venv/pyvenv.cfg"), "").unwrap();
        std::fs::write(dir.path().join("venv/y.py"), "").unwrap();
        assert_eq!(fingerprint(&watched).0, 0);
        std::fs::write(dir.path().join("app.py"), "").unwrap();
        assert_eq!(fingerprint(&watched).0, 1);
        assert!(watched.concerns(&dir.path().join("app.py")));
        assert!(!watched.concerns(&dir.path().join("__pycache__/x.py")));
        assert!(!watched.concerns(&dir.path().join("venv/y.py")));
        let folders = watched.folders().unwrap();
        assert_eq!(folders, [dir.path().to_path_buf()]);
    }

    #[test]
    fn include_and_exclude_globs() {
        let filter = CodeFilter::new(
            &["*.html".into(), "conf/*.toml".into()],
            &["tests/**".into(), "*_flymake.py".into()],
        );
        let counts = |p: &str| filter.counts(Path::new(p));
        assert!(counts("app.py"));
        assert!(counts("templates/deep/page.html"));
        assert!(counts("conf/site.toml"));
        assert!(!counts("other/site.toml"));
        assert!(!counts("style.css"));
        assert!(!counts("tests/test_app.py"));
        assert!(!counts("app_flymake.py"));
        assert!(filter.excludes(Path::new("tests/x")));

        let dir = tempfile::tempdir().unwrap();
        let watched = tree(dir.path(), filter);
        for (path, text) in [("templates/a.html", ""), ("tests/t.py", ""), ("x.css", "")] {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        assert_eq!(fingerprint(&watched).0, 1);
        assert!(watched.concerns(&dir.path().join("templates/a.html")));
        assert!(!watched.concerns(&dir.path().join("tests/t.py")));
        let folders = watched.folders().unwrap();
        assert!(folders.contains(&dir.path().join("templates")));
        assert!(!folders.contains(&dir.path().join("tests/t.py")));
    }

    #[tokio::test]
    async fn inotify_sees_a_change_and_a_file_in_a_new_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.py"), "").unwrap();
        let watched = tree(dir.path(), CodeFilter::new(&["*.html".into()], &[]));
        let (stop_tx, stop) = watch::channel(false);
        let (changes_tx, mut changes) = mpsc::unbounded_channel();
        let notified = Notified::start(&watched.folders().unwrap()).unwrap();
        let task = tokio::spawn({
            let watched = watched.clone();
            async move {
                notified
                    .run(
                        &watched,
                        move || {
                            let _ = changes_tx.send(());
                        },
                        stop,
                    )
                    .await
            }
        });
        std::fs::write(dir.path().join("app.py"), "x = 1\n").unwrap();
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(30), changes.recv())
                .await
                .unwrap(),
            Some(())
        );
        // Not code, and a new folder: no change.
        std::fs::write(dir.path().join("notes.txt"), "").unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        let quiet = tokio::time::timeout(SETTLE * 3, changes.recv()).await;
        assert!(quiet.is_err(), "{quiet:?}");
        std::fs::write(dir.path().join("templates/page.html"), "<p>").unwrap();
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(30), changes.recv())
                .await
                .unwrap(),
            Some(())
        );
        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }
}
