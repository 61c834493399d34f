//! The router: maps a request's percent-decoded path to the mount or static
//! alias that answers it, and splits the path into `SCRIPT_NAME` and
//! `PATH_INFO` (DESIGN §3, §5).
//!
//! Prefixes match on whole path segments (`/api/one` matches `/api/one` and
//! `/api/one/x`, never `/api/onex`), the longest prefix wins, and a prefix of
//! `/` matches every path. Prefixes are precomputed once, sorted longest
//! first, so a lookup is a short scan of `memcmp`s with no allocation.

use crate::config::model::{Mount, StaticAlias};

/// What answers a routed request: an index into the `mounts` or `statics`
/// slice the [`Router`] was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Mount(usize),
    Static(usize),
}

/// The result of routing one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'p> {
    pub target: Target,
    /// The matched prefix, no trailing `/`; empty for a mount at `/`.
    pub script_name: &'p [u8],
    /// The rest of the path: empty, or starting with `/`.
    pub path_info: &'p [u8],
}

/// One routable prefix.
#[derive(Debug, Clone)]
struct Entry {
    /// Normalised: no trailing `/`; empty for `/`.
    prefix: Box<[u8]>,
    target: Target,
}

/// Longest-prefix, whole-segment router over mounts and static aliases.
#[derive(Debug, Clone, Default)]
pub struct Router {
    /// Sorted by prefix length, longest first; for equal prefixes, mounts
    /// before statics and config order within each (the config layer
    /// rejects such duplicates, this only makes the order deterministic).
    entries: Vec<Entry>,
}

impl Router {
    /// Builds the router. Prefixes are normalised again here (trailing `/`
    /// dropped, `/` becomes the empty prefix), so a hand-built `Mount` works
    /// too.
    pub fn new(mounts: &[Mount], statics: &[StaticAlias]) -> Router {
        let mounts = mounts
            .iter()
            .enumerate()
            .map(|(i, m)| (m.path.as_str(), Target::Mount(i)));
        let statics = statics
            .iter()
            .enumerate()
            .map(|(i, s)| (s.path.as_str(), Target::Static(i)));
        Router::from_prefixes(mounts.chain(statics))
    }

    /// Builds a router over some prefixes, each with the target it names
    /// (a virtual host's share of the site's mounts and statics). For
    /// equal prefixes the first given wins.
    pub fn from_prefixes<'a>(prefixes: impl IntoIterator<Item = (&'a str, Target)>) -> Router {
        let mut entries: Vec<Entry> = prefixes
            .into_iter()
            .map(|(path, target)| Entry {
                prefix: normalise(path),
                target,
            })
            .collect();
        // Stable: keeps the given order among equal prefixes.
        entries.sort_by_key(|e| std::cmp::Reverse(e.prefix.len()));
        Router { entries }
    }

    /// Routes a percent-decoded request path. `None`: nothing is mounted
    /// there (404).
    pub fn route<'p>(&self, path: &'p [u8]) -> Option<Route<'p>> {
        self.entries.iter().find_map(|e| {
            let n = e.prefix.len();
            // The root prefix (n == 0) takes every path, even "" or "*".
            let segment_boundary = n == 0 || path.len() == n || path.get(n) == Some(&b'/');
            if segment_boundary && path.starts_with(&e.prefix) {
                let (script_name, path_info) = path.split_at(n);
                Some(Route {
                    target: e.target,
                    script_name,
                    path_info,
                })
            } else {
                None
            }
        })
    }

    /// True when nothing is mounted at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `"/api/"` → `"/api"`, `"/"` → `""`, `"api"` → `"/api"`.
fn normalise(path: &str) -> Box<[u8]> {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Box::default();
    }
    let mut out = Vec::with_capacity(trimmed.len() + 1);
    if !trimmed.starts_with('/') {
        out.push(b'/');
    }
    out.extend_from_slice(trimmed.as_bytes());
    out.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{AppSource, GLOBAL_APPLICATION_GROUP};
    use std::path::PathBuf;

    fn mount(path: &str) -> Mount {
        Mount {
            path: path.to_string(),
            app: AppSource::Module("app".into()),
            callable: "application".into(),
            group: "g".into(),
            application_group: GLOBAL_APPLICATION_GROUP.into(),
            pass_authorization: true,
            limit_request_body: None,
            environ: Vec::new(),
            preload: false,
            host: None,
        }
    }

    fn alias(path: &str) -> StaticAlias {
        StaticAlias {
            path: path.to_string(),
            dir: PathBuf::from("/srv/static"),
            host: None,
        }
    }

    fn router(mounts: &[&str], statics: &[&str]) -> Router {
        let m: Vec<Mount> = mounts.iter().map(|p| mount(p)).collect();
        let s: Vec<StaticAlias> = statics.iter().map(|p| alias(p)).collect();
        Router::new(&m, &s)
    }

    /// (target, SCRIPT_NAME, PATH_INFO) as strings, for terse asserts.
    fn hit(r: &Router, path: &str) -> Option<(Target, String, String)> {
        r.route(path.as_bytes()).map(|route| {
            (
                route.target,
                String::from_utf8(route.script_name.to_vec()).unwrap(),
                String::from_utf8(route.path_info.to_vec()).unwrap(),
            )
        })
    }

    fn m(i: usize, sn: &str, pi: &str) -> Option<(Target, String, String)> {
        Some((Target::Mount(i), sn.into(), pi.into()))
    }

    #[test]
    fn exact_match_has_empty_path_info() {
        let r = router(&["/api/wsgi/one"], &[]);
        assert_eq!(hit(&r, "/api/wsgi/one"), m(0, "/api/wsgi/one", ""));
    }

    #[test]
    fn below_prefix_keeps_the_rest_as_path_info() {
        let r = router(&["/api/wsgi/one"], &[]);
        assert_eq!(hit(&r, "/api/wsgi/one/"), m(0, "/api/wsgi/one", "/"));
        assert_eq!(hit(&r, "/api/wsgi/one/x"), m(0, "/api/wsgi/one", "/x"));
        assert_eq!(
            hit(&r, "/api/wsgi/one/x/y/"),
            m(0, "/api/wsgi/one", "/x/y/")
        );
        assert_eq!(hit(&r, "/api/wsgi/one//x"), m(0, "/api/wsgi/one", "//x"));
    }

    #[test]
    fn matches_whole_segments_only() {
        let r = router(&["/api/wsgi/one"], &[]);
        assert_eq!(hit(&r, "/api/wsgi/onex"), None);
        assert_eq!(hit(&r, "/api/wsgi/on"), None);
        assert_eq!(hit(&r, "/api/wsgi"), None);
        assert_eq!(hit(&r, "/api/wsgi/"), None);
        assert_eq!(hit(&r, "/"), None);
        assert_eq!(hit(&r, ""), None);
    }

    #[test]
    fn root_mount_matches_everything() {
        let r = router(&["/"], &[]);
        assert_eq!(hit(&r, "/"), m(0, "", "/"));
        assert_eq!(hit(&r, "/x"), m(0, "", "/x"));
        assert_eq!(hit(&r, "/x/y/"), m(0, "", "/x/y/"));
        assert_eq!(hit(&r, ""), m(0, "", ""));
        // Not an origin-form path (`OPTIONS *`): still the root mount's.
        assert_eq!(hit(&r, "*"), m(0, "", "*"));
    }

    #[test]
    fn longest_prefix_wins_whatever_the_order() {
        let r = router(&["/", "/api", "/api/wsgi/one", "/api/wsgi"], &[]);
        assert_eq!(hit(&r, "/api/wsgi/one/x"), m(2, "/api/wsgi/one", "/x"));
        assert_eq!(hit(&r, "/api/wsgi/onex"), m(3, "/api/wsgi", "/onex"));
        assert_eq!(hit(&r, "/api/wsgi"), m(3, "/api/wsgi", ""));
        assert_eq!(hit(&r, "/api/other"), m(1, "/api", "/other"));
        assert_eq!(hit(&r, "/apix"), m(0, "", "/apix"));
        assert_eq!(hit(&r, "/"), m(0, "", "/"));
    }

    #[test]
    fn sibling_mounts_do_not_interfere() {
        let r = router(&["/api/wsgi/one", "/api/wsgi/two"], &[]);
        assert_eq!(hit(&r, "/api/wsgi/one/a"), m(0, "/api/wsgi/one", "/a"));
        assert_eq!(hit(&r, "/api/wsgi/two/a"), m(1, "/api/wsgi/two", "/a"));
        assert_eq!(hit(&r, "/api/wsgi/three"), None);
    }

    #[test]
    fn trailing_slash_in_prefix_is_ignored() {
        let r = router(&["/api/"], &[]);
        assert_eq!(hit(&r, "/api"), m(0, "/api", ""));
        assert_eq!(hit(&r, "/api/x"), m(0, "/api", "/x"));
        assert_eq!(hit(&r, "/apix"), None);
        let r = router(&["api"], &[]);
        assert_eq!(hit(&r, "/api/x"), m(0, "/api", "/x"));
        let r = router(&["//"], &[]);
        assert_eq!(hit(&r, "/x"), m(0, "", "/x"));
    }

    #[test]
    fn statics_take_part_in_longest_prefix() {
        let r = router(&["/", "/app"], &["/static", "/app/static"]);
        assert_eq!(
            hit(&r, "/static/css/a.css"),
            Some((Target::Static(0), "/static".into(), "/css/a.css".into()))
        );
        assert_eq!(
            hit(&r, "/app/static/x.js"),
            Some((Target::Static(1), "/app/static".into(), "/x.js".into()))
        );
        assert_eq!(hit(&r, "/app/staticx"), m(1, "/app", "/staticx"));
        assert_eq!(hit(&r, "/staticx"), m(0, "", "/staticx"));
    }

    #[test]
    fn mount_wins_a_tie_with_a_static() {
        let r = router(&["/x"], &["/x"]);
        assert_eq!(hit(&r, "/x/y"), m(0, "/x", "/y"));
    }

    #[test]
    fn empty_router_routes_nothing() {
        let r = router(&[], &[]);
        assert!(r.is_empty());
        assert_eq!(hit(&r, "/"), None);
    }

    #[test]
    fn non_utf8_paths_route() {
        let r = router(&["/caf\u{e9}"], &[]);
        let path = b"/caf\xc3\xa9/\xff";
        let route = r.route(path).unwrap();
        assert_eq!(route.script_name, "/caf\u{e9}".as_bytes());
        assert_eq!(route.path_info, b"/\xff");
        assert_eq!(r.route(b"/caf\xc3"), None);
    }
}
