//! The daemon's account: the groups, gid and uid the front resolved from
//! the group's `user`, `group` and `supplementary-groups`, taken before any
//! application code is loaded (as mod_wsgi's daemons do after their fork).

use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
use oxwsgi_protocol::worker_config::WorkerIdentity;

/// Switches to `identity`; an error says which step failed. Checks that
/// root cannot be regained afterwards.
pub fn assume(identity: &WorkerIdentity) -> Result<(), String> {
    let groups: Vec<Gid> = identity.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&groups).map_err(|e| {
        format!(
            "cannot set the supplementary groups {:?}: {e}",
            identity.groups
        )
    })?;
    setgid(Gid::from_raw(identity.gid))
        .map_err(|e| format!("cannot switch to gid {}: {e}", identity.gid))?;
    setuid(Uid::from_raw(identity.uid))
        .map_err(|e| format!("cannot switch to uid {}: {e}", identity.uid))?;
    if identity.uid != 0 && setuid(Uid::from_raw(0)).is_ok() {
        return Err("root could be regained after switching user".into());
    }
    Ok(())
}
