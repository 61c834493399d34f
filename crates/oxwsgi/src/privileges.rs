//! Dropping root: the front, after binding its listeners and reading its
//! keys, switches to the site's top-level `user` / `group` with every
//! group the user is a member of (`initgroups`), as Apache's children and
//! gunicorn's workers do. The daemons switch themselves (the worker does,
//! before loading any application), with the identity the front hands
//! them in their start-up configuration.

use std::sync::OnceLock;

use nix::unistd::{Gid, Uid};

use crate::config::accounts::Identity;

/// The identity the front dropped to, once it has.
static FRONT: OnceLock<Identity> = OnceLock::new();

/// The identity the front runs as after [`drop_front`] (`None`: it did
/// not drop root): daemons cannot be started as anyone else.
pub fn front() -> Option<&'static Identity> {
    FRONT.get()
}

/// Drops the front to `identity` (once; a second call is refused).
pub fn drop_front(identity: Identity) -> Result<(), String> {
    if FRONT.get().is_some() {
        return Err("the front has already dropped root".into());
    }
    assume(&identity)?;
    tracing::info!(
        "running as user {} (uid {}, gid {}, groups {:?})",
        identity.name,
        identity.uid,
        identity.gid,
        identity.groups
    );
    let _ = FRONT.set(identity);
    Ok(())
}

/// Switches this process to `identity`: groups, then gid, then uid (glibc
/// applies set*id to every thread of the process). Checks that root cannot
/// be regained.
fn assume(identity: &Identity) -> Result<(), String> {
    let groups: Vec<Gid> = identity.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).map_err(|e| format!("setgroups: {e}"))?;
    nix::unistd::setgid(Gid::from_raw(identity.gid)).map_err(|e| format!("setgid: {e}"))?;
    nix::unistd::setuid(Uid::from_raw(identity.uid)).map_err(|e| format!("setuid: {e}"))?;
    if identity.uid != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err("root could be regained after setuid".into());
    }
    Ok(())
}
