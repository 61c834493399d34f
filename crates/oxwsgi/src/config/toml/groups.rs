//! `[groups.NAME]` tables → daemon [`Group`]s (mod_wsgi's
//! `WSGIDaemonProcess` options, by their names).

use ::toml::de::DeValue;

use super::group_hint;
use super::reader::{Field, Span, Table};
use crate::config::accounts::Account;
use crate::config::dotenv;
use crate::config::error::ConfigError;
use crate::config::group_keys::{self, GROUP_KEYS, TIMEOUT_KEYS};
use crate::config::model::{
    check_group_size, expand_display_name, CpuPolicy, Group, InterpreterGil, PythonChoice,
};
use crate::config::names;

/// `[groups.NAME]`, quoting the name when TOML would need it.
pub(super) fn group_table_name(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        format!("[groups.{name}]")
    } else {
        format!("[groups.{name:?}]")
    }
}

/// A group from a `[groups.NAME]` table, with where it was defined.
pub(super) struct DefinedGroup {
    pub(super) group: Group,
    pub(super) span: Span,
}

pub(super) fn read_groups(top: &Table<'_>) -> Result<Vec<DefinedGroup>, ConfigError> {
    let Some(f) = top.get("groups") else {
        return Ok(Vec::new());
    };
    let Some(groups) = f.table(String::new()) else {
        return Err(f.expected("a table of groups ([groups.NAME])"));
    };
    let mut out = Vec::new();
    for (key, value) in groups.entries() {
        let name = key.get_ref().as_ref();
        let span = value.span();
        names::check_group_name(name).map_err(|e| top.doc.error(&key.span(), Some(name), e))?;
        let field = Field {
            doc: top.doc,
            table: "",
            key: format!("groups.{name}"),
            value,
        };
        let Some(table) = field.table(group_table_name(name)) else {
            return Err(field.expected("a table ([groups.NAME] with the group's settings)"));
        };
        out.push(DefinedGroup {
            group: read_group(name, &table)?,
            span,
        });
    }
    Ok(out)
}

fn read_group(name: &str, t: &Table<'_>) -> Result<Group, ConfigError> {
    t.check_keys(GROUP_KEYS, group_hint)?;
    let mut g = Group::new(name);
    if let Some(f) = t.get("processes") {
        g.processes = f.count(1)?;
        check_group_size("processes", g.processes).map_err(|e| f.error(e))?;
    }
    read_scaling(&mut g, t)?;
    if let Some(f) = t.get("threads") {
        g.threads = f.count(1)?;
        check_group_size("threads", g.threads).map_err(|e| f.error(e))?;
    }
    if let Some(f) = t.get("display-name") {
        let s = f.str()?;
        g.display_name = (!s.is_empty()).then(|| expand_display_name(s, name));
    }
    match (t.get("python"), t.get("python-home")) {
        (Some(_), Some(home)) => {
            return Err(home.error(
                "cannot be set together with `python`: set the interpreter (`python`) or the virtualenv (`python-home`), not both",
            ))
        }
        (Some(f), None) => g.python = PythonChoice::Interpreter(f.program()?),
        (None, Some(f)) => g.python = PythonChoice::Home(f.path()?),
        (None, None) => {}
    }
    if let Some(f) = t.get("python-path") {
        g.python_path = f.path_list()?;
    }
    if let Some(f) = t.get("home") {
        g.home = Some(f.path()?);
    }
    if let Some(f) = t.get("user") {
        g.user = Some(account(&f, Account::User)?);
    }
    if let Some(f) = t.get("group") {
        g.unix_group = Some(account(&f, Account::Group)?);
    }
    if let Some(f) = t.get("supplementary-groups") {
        for item in super::string_or_list(&f)? {
            g.supplementary_groups.push(account(&item, Account::Group)?);
        }
    }
    if let Some(f) = t.get("umask") {
        g.umask = Some(umask(&f)?);
    }
    if let Some(f) = t.get("lang") {
        g.lang = Some(f.non_empty_str()?.to_string());
    }
    if let Some(f) = t.get("locale") {
        g.locale = Some(f.non_empty_str()?.to_string());
    }
    if let Some(f) = t.get("env-file") {
        let path = f.path()?;
        g.env = dotenv::read(&path)?;
    }
    if let Some(f) = t.get("env") {
        for (name, value) in f.variables()? {
            g.env.retain(|(n, _)| *n != name);
            g.env.push((name, value));
        }
    }
    if let Some(f) = t.get("maximum-requests") {
        g.maximum_requests = group_keys::off_if_zero(f.uint()?);
    }
    if let Some(f) = t.get("maximum-requests-jitter") {
        g.maximum_requests_jitter = group_keys::off_if_zero(f.uint()?);
    }
    if let Some(f) = t.get("memory-limit") {
        g.memory_limit = group_keys::off_if_zero(f.size()?);
    }
    if let Some(f) = t.get("cpu-time-limit") {
        g.cpu_time_limit = group_keys::off_if_zero(f.uint()?);
    }
    if let Some(f) = t.get("virtual-memory-limit") {
        g.virtual_memory_limit = group_keys::off_if_zero(f.size()?);
    }
    if let Some(f) = t.get("stack-size") {
        let size = f.size()?;
        // Python refuses less than 32 KiB.
        if size != 0 && size < 32 * 1024 {
            return Err(f.error("must be at least 32K (or 0: the default)"));
        }
        g.stack_size = group_keys::off_if_zero(size);
    }
    if let Some(f) = t.get("interpreter-gil") {
        g.interpreter_gil = Some(match f.str()? {
            "shared" => InterpreterGil::Shared,
            "own" => InterpreterGil::Own,
            _ => return Err(f.expected("\"shared\" or \"own\" (own needs Python 3.12 or later)")),
        });
    }
    if let Some(f) = t.get("cpu-policy") {
        g.cpu_policy = Some(match f.str()? {
            "batch" => CpuPolicy::Batch,
            "normal" => CpuPolicy::Normal,
            _ => return Err(f.expected("\"batch\" or \"normal\"")),
        });
    }
    if let Some(f) = t.get("cpu-priority") {
        const WHAT: &str = "a nice value from -20 to 19";
        g.cpu_priority =
            Some(group_keys::cpu_priority(f.integer(WHAT)?).map_err(|msg| f.expected(msg))?);
    }
    if let Some(f) = t.get("listen-backlog") {
        g.listen_backlog = Some(f.count(0)?);
    }
    if let Some(f) = t.get("read-ahead") {
        g.read_ahead = Some(f.count(0)?);
    }
    for key in TIMEOUT_KEYS {
        if let Some(f) = t.get(key) {
            group_keys::set_timeout(&mut g.timeouts, key, f.seconds()?);
        }
    }
    Ok(g)
}

/// The elastic keys (`min-processes`, `max-processes`, ...): checked
/// together, an error at the line of the key it is about.
fn read_scaling(g: &mut Group, t: &Table<'_>) -> Result<(), ConfigError> {
    let count = |key: &str, min: u64| t.get(key).map(|f| f.count(min)).transpose();
    let seconds = |key: &str| t.get(key).map(|f| f.seconds()).transpose();
    let keys = group_keys::ScalingKeys {
        processes: t.get("processes").map(|_| g.processes),
        min: count("min-processes", 0)?,
        max: count("max-processes", 1)?,
        spare_threads: count("spare-threads", 0)?,
        up_delay: seconds("scale-up-delay")?,
        down_delay: seconds("scale-down-delay")?,
        cooldown: seconds("scale-cooldown")?,
    };
    match group_keys::scaling(&keys) {
        Ok((processes, scaling)) => {
            if let Some(n) = processes {
                g.processes = n;
            }
            g.scaling = scaling;
            Ok(())
        }
        Err((key, message)) => Err(match t.get(key) {
            Some(f) => f.error(message),
            None => t.error(Some(key), message),
        }),
    }
}

/// A user or group (a name, or a numeric id) this machine has.
pub(super) fn account(f: &Field<'_>, kind: Account) -> Result<String, ConfigError> {
    let name = match f.value.get_ref() {
        DeValue::Integer(_) => f.uint()?.to_string(),
        DeValue::String(s) if !s.is_empty() => s.to_string(),
        _ => return Err(f.expected("a name or a numeric id")),
    };
    kind.look_up(&name)
        .map_err(|e| f.error(format!("is not usable: {e}")))?;
    Ok(name)
}

/// `umask`: an octal string (`"0022"`) or an octal integer (`0o022`).
fn umask(f: &Field<'_>) -> Result<u32, ConfigError> {
    const WHAT: &str = "an octal string like \"0022\" or an octal integer like 0o022";
    let value = match f.value.get_ref() {
        DeValue::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8).ok(),
        DeValue::Integer(i) if i.radix() == 8 => u32::from_str_radix(i.as_str(), 8).ok(),
        DeValue::Integer(i) if i.as_str() == "0" => Some(0),
        _ => None,
    };
    match value {
        Some(mask) if mask <= 0o777 => Ok(mask),
        _ => Err(f.expected(WHAT)),
    }
}
