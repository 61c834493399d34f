//! The Unix accounts a group's daemons run as: its `user` and `group`
//! options (names or numeric ids) looked up in this machine's user and
//! group databases. `run` refuses a group whose account does not exist;
//! `check` warns about it (a site file may be checked on another machine).

use super::model::Group;

use nix::unistd::{Group as UnixGroup, User};

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

/// Resolves a group's `user` and `group` options to numeric ids. A user
/// without an explicit group runs with that user's primary group.
pub fn resolve_identity(group: &Group) -> Result<(Option<u32>, Option<u32>), String> {
    let mut uid = None;
    let mut gid = None;
    if let Some(name) = &group.user {
        let found = user(name)?;
        uid = Some(found.uid.as_raw());
        gid = Some(found.gid.as_raw());
    }
    if let Some(name) = &group.unix_group {
        gid = Some(unix_group(name)?.gid.as_raw());
    }
    if (uid.is_some() || gid.is_some()) && !nix::unistd::geteuid().is_root() {
        return Err("`user`/`group` need oxwsgi to be started as root".to_owned());
    }
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_resolve_unknown_ones_do_not() {
        let mut group = Group::new("g");
        assert_eq!(resolve_identity(&group), Ok((None, None)));
        group.user = Some("root".into());
        assert_eq!(resolve_identity(&group), Ok((Some(0), Some(0))));
        group.user = Some("0".into());
        group.unix_group = Some("0".into());
        assert_eq!(resolve_identity(&group), Ok((Some(0), Some(0))));
        group.user = Some("no-such-user-oxwsgi".into());
        assert!(resolve_identity(&group)
            .unwrap_err()
            .contains("does not exist"));
        group.user = None;
        group.unix_group = Some("no-such-group-oxwsgi".into());
        assert!(resolve_identity(&group)
            .unwrap_err()
            .contains("does not exist"));
    }
}
