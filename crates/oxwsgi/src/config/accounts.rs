//! The Unix accounts oxwsgi runs as: the site's top-level `user` / `group`
//! (the front, after it has bound its listeners) and each daemon group's
//! `user`, `group` and `supplementary-groups`, looked up in this machine's
//! user and group databases. The TOML and Apache readers refuse an account
//! that does not exist (file:line, as mod_wsgi does); `run` refuses, and
//! `check` warns about, what the accounts cannot do together (a dropped
//! front starting another user, applications left running as root).
//!
//! An identity carries every group the process is in: the user's primary
//! group (or the configured `group`), the groups the user is a member of
//! (`initgroups`, as mod_wsgi and gunicorn do), and the supplementary
//! groups. Std's `Command::uid` would drop all but the primary one.

use std::path::PathBuf;

use nix::unistd::{Group as UnixGroup, Uid, User};

use super::model::{Group, Site};

/// A user, by name or numeric id.
pub fn user(name: &str) -> Result<User, String> {
    match name.parse::<u32>() {
        Ok(id) => User::from_uid(id.into()),
        Err(_) => User::from_name(name),
    }
    .map_err(|e| format!("cannot look up user `{name}`: {e}"))?
    .ok_or_else(|| format!("user `{name}` does not exist"))
}

/// A Unix group, by name or numeric id.
pub fn unix_group(name: &str) -> Result<UnixGroup, String> {
    match name.parse::<u32>() {
        Ok(id) => UnixGroup::from_gid(id.into()),
        Err(_) => UnixGroup::from_name(name),
    }
    .map_err(|e| format!("cannot look up group `{name}`: {e}"))?
    .ok_or_else(|| format!("Unix group `{name}` does not exist"))
}

/// Which database an account option names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    User,
    Group,
}

impl Account {
    /// Does this machine have the account `name` (a name or an id)?
    pub fn look_up(self, name: &str) -> Result<(), String> {
        match self {
            Account::User => user(name).map(drop),
            Account::Group => unix_group(name).map(drop),
        }
    }
}

/// Who a process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Every group id, `gid` included.
    pub groups: Vec<u32>,
    /// The user's name and home, for `USER`, `LOGNAME` and `HOME`.
    pub name: String,
    pub home: PathBuf,
}

impl Identity {
    /// `user` (name or id; `None`: the current user) with `group` (else
    /// the user's primary group), its memberships and `supplementary`.
    fn resolve(
        user_name: Option<&str>,
        group: Option<&str>,
        supplementary: &[String],
    ) -> Result<Self, String> {
        let found = match user_name {
            Some(name) => user(name)?,
            None => User::from_uid(Uid::effective())
                .map_err(|e| format!("cannot look up the current user: {e}"))?
                .ok_or_else(|| "the current user is in no user database".to_string())?,
        };
        let gid = match group {
            Some(name) => unix_group(name)?.gid,
            None => found.gid,
        };
        let cname = std::ffi::CString::new(found.name.clone())
            .map_err(|_| format!("user `{}`: the name has a NUL byte", found.name))?;
        let member_of = nix::unistd::getgrouplist(&cname, gid)
            .map_err(|e| format!("cannot list the groups of user `{}`: {e}", found.name))?;
        let mut groups = vec![gid.as_raw()];
        let mut add = |g: u32| {
            if !groups.contains(&g) {
                groups.push(g);
            }
        };
        member_of.iter().for_each(|g| add(g.as_raw()));
        for name in supplementary {
            add(unix_group(name)?.gid.as_raw());
        }
        Ok(Self {
            uid: found.uid.as_raw(),
            gid: gid.as_raw(),
            groups,
            name: found.name,
            home: found.dir,
        })
    }
}

fn need_root() -> Result<(), String> {
    if Uid::effective().is_root() {
        Ok(())
    } else {
        Err("`user`/`group` need oxwsgi to be started as root".to_owned())
    }
}

/// The identity the front drops to after binding (top-level `user` /
/// `group`); `None`: it keeps its own.
pub fn front_identity(site: &Site) -> Result<Option<Identity>, String> {
    if site.user.is_none() && site.unix_group.is_none() {
        return Ok(None);
    }
    need_root()?;
    Identity::resolve(site.user.as_deref(), site.unix_group.as_deref(), &[]).map(Some)
}

/// The identity a group's daemons switch to before loading any
/// application; `None`: they keep the front's. `front`: the identity the
/// front dropped to, which cannot start daemons as anyone else.
pub fn daemon_identity(
    group: &Group,
    front: Option<&Identity>,
) -> Result<Option<Identity>, String> {
    if group.user.is_none() && group.unix_group.is_none() && group.supplementary_groups.is_empty() {
        return Ok(None);
    }
    let user_name = group.user.clone().or_else(|| front.map(|f| f.name.clone()));
    let group_name = group.unix_group.clone().or_else(|| {
        front
            .filter(|_| group.user.is_none())
            .map(|f| f.gid.to_string())
    });
    let identity = Identity::resolve(
        user_name.as_deref(),
        group_name.as_deref(),
        &group.supplementary_groups,
    )?;
    match front {
        Some(front) if identity.uid == front.uid && identity.gid == front.gid => {
            let extra: Vec<u32> = identity
                .groups
                .iter()
                .copied()
                .filter(|g| !front.groups.contains(g))
                .collect();
            if extra.is_empty() {
                Ok(None)
            } else {
                Err(format!("supplementary groups {extra:?} beyond the front's user `{}`: the front has dropped root (top-level `user`) and cannot add them", front.name))
            }
        }
        Some(front) => Err(format!(
            "runs as user `{}` (uid {}, gid {}), but the front drops root to `{}` (top-level `user`/`group`) and cannot start daemons as anyone else: remove one of the two, or give both the same user",
            identity.name, identity.uid, identity.gid, front.name
        )),
        None => {
            need_root()?;
            Ok(Some(identity))
        }
    }
}

/// The environment variable that lets applications run as root without a
/// `user = "root"` in the config (containers that run everything as root).
pub const ALLOW_ROOT_ENV: &str = "OXWSGI_ALLOW_ROOT";

/// Is [`ALLOW_ROOT_ENV`] set to `1` in this process's environment?
pub fn root_allowed_by_env() -> bool {
    std::env::var_os(ALLOW_ROOT_ENV).is_some_and(|v| v == "1")
}

/// Refuses to run a group's applications as root unless the config says
/// so: the group's `user` (or, without one, the top-level `user`) names
/// root, or `allow_root` ([`ALLOW_ROOT_ENV`]) is set. `daemon`: the
/// group's [`daemon_identity`]; without one the daemons run as this
/// process does.
pub fn refuse_implicit_root(
    site: &Site,
    group: &Group,
    daemon: Option<&Identity>,
    allow_root: bool,
) -> Result<(), String> {
    let uid = daemon.map_or_else(|| Uid::effective().as_raw(), |d| d.uid);
    if uid != 0 || allow_root {
        return Ok(());
    }
    let named = group.user.as_deref().or(site.user.as_deref());
    if named.is_some_and(|name| user(name).is_ok_and(|u| u.uid.is_root())) {
        return Ok(());
    }
    Err(format!(
        "would run its applications as root: set the top-level `user` (or the group's `user`) \
         to the account they should run as, or `user = \"root\"` to run them as root on purpose \
         ({ALLOW_ROOT_ENV}=1 in the environment does the same)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An account no test machine has.
    fn someone() -> Identity {
        Identity {
            uid: 12345,
            gid: 12345,
            groups: vec![12345],
            name: "someone".into(),
            home: "/".into(),
        }
    }

    #[test]
    fn names_and_ids_resolve_unknown_ones_do_not() {
        let root = Uid::effective().is_root();
        let mut group = Group::new("g");
        assert_eq!(daemon_identity(&group, None), Ok(None));
        group.user = Some("root".into());
        if root {
            let identity = daemon_identity(&group, None).unwrap().unwrap();
            assert_eq!((identity.uid, identity.gid), (0, 0));
            assert_eq!(identity.groups[0], 0);
            assert_eq!(identity.name, "root");
        } else {
            assert!(daemon_identity(&group, None)
                .unwrap_err()
                .contains("started as root"));
        }
        group.user = Some("0".into());
        group.unix_group = Some("0".into());
        if root {
            let identity = daemon_identity(&group, None).unwrap().unwrap();
            assert_eq!((identity.uid, identity.gid), (0, 0));
        }
        group.user = Some("no-such-user-oxwsgi".into());
        assert!(daemon_identity(&group, None)
            .unwrap_err()
            .contains("does not exist"));
        group.user = None;
        group.unix_group = Some("no-such-group-oxwsgi".into());
        assert!(daemon_identity(&group, None)
            .unwrap_err()
            .contains("does not exist"));
    }

    #[test]
    fn a_front_that_dropped_root_starts_daemons_as_itself_only() {
        let front = Identity {
            uid: 0,
            gid: 0,
            groups: vec![0],
            name: "root".into(),
            home: "/root".into(),
        };
        let mut group = Group::new("g");
        group.user = Some("root".into());
        // The same user as the front: nothing to switch.
        if let Ok(identity) = Identity::resolve(Some("root"), None, &[]) {
            let front = Identity {
                groups: identity.groups.clone(),
                ..front.clone()
            };
            assert_eq!(daemon_identity(&group, Some(&front)), Ok(None));
        }
        assert!(daemon_identity(&group, Some(&someone()))
            .unwrap_err()
            .contains("cannot start daemons as anyone else"));
    }

    #[test]
    fn applications_run_as_root_only_when_the_config_says_so() {
        let mut site = Site::default();
        let mut group = Group::new("g");
        assert_eq!(
            refuse_implicit_root(&site, &group, Some(&someone()), false),
            Ok(())
        );
        if !Uid::effective().is_root() {
            assert_eq!(refuse_implicit_root(&site, &group, None, false), Ok(()));
            return;
        }
        assert!(refuse_implicit_root(&site, &group, None, false)
            .unwrap_err()
            .contains("would run its applications as root"));
        assert_eq!(refuse_implicit_root(&site, &group, None, true), Ok(()));
        site.user = Some("0".into());
        assert_eq!(refuse_implicit_root(&site, &group, None, false), Ok(()));
        site.user = None;
        group.user = Some("root".into());
        assert_eq!(refuse_implicit_root(&site, &group, None, false), Ok(()));
    }
}
