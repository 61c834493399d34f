//! mod_reqtimeout's `RequestReadTimeout` → oxwsgi's `header-timeout` and
//! the request-body read timeout (`body-timeout`, `body-timeout-max`,
//! `body-min-rate`; `body=0`: no body timeout).
//!
//! Syntax: `RequestReadTimeout [handshake=T[-MAX][,MinRate=R]]
//! [header=T[-MAX][,MinRate=R]] [body=T[-MAX][,MinRate=R]]`; `T = 0` turns
//! that stage's limit off. The header stage has one bound in oxwsgi: its
//! longest allowance (`MAX` when given, else `T`), with a note when a
//! MinRate is dropped; the handshake stage is covered by `header-timeout`.

use std::time::Duration;

use super::eval::Item;
use crate::config::error::ConfigError;
use crate::config::model::BodyRead;
use crate::config::warning::{Warning, WarningKind};

/// What one `RequestReadTimeout` sets.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct RequestReadTimeout {
    /// `header=`: the header-timeout.
    pub header: Option<Duration>,
    pub body: Option<BodyRead>,
}

/// One stage's `T[-MAX][,MinRate=R]`.
#[derive(Debug, PartialEq, Eq)]
struct Stage {
    timeout: u64,
    max: Option<u64>,
    min_rate: Option<u64>,
}

fn stage(value: &str) -> Result<Stage, String> {
    let mut parts = value.split(',');
    let times = parts.next().unwrap_or_default();
    let (timeout, max) = match times.split_once('-') {
        Some((t, m)) => (t, Some(m)),
        None => (times, None),
    };
    let number = |text: &str| {
        text.trim()
            .parse::<u64>()
            .map_err(|_| format!("`{text}` is not a whole number of seconds"))
    };
    let timeout = number(timeout)?;
    let max = max.map(number).transpose()?;
    if let Some(max) = max {
        if max < timeout {
            return Err(format!(
                "the maximum {max} is less than the timeout {timeout}"
            ));
        }
    }
    let mut min_rate = None;
    for part in parts {
        let Some((name, rate)) = part.split_once('=') else {
            return Err(format!("`{part}`: expected MinRate=BYTES"));
        };
        if !name.trim().eq_ignore_ascii_case("minrate") {
            return Err(format!("`{name}`: expected MinRate"));
        }
        let rate = rate
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&r| r > 0)
            .ok_or_else(|| format!("MinRate={rate}: expected bytes per second, more than 0"))?;
        min_rate = Some(rate);
    }
    if max.is_some() && min_rate.is_none() {
        return Err("a timeout range needs a MinRate".to_owned());
    }
    Ok(Stage {
        timeout,
        max,
        min_rate,
    })
}

/// Reads one `RequestReadTimeout` directive.
pub(super) fn request_read_timeout(
    item: &Item,
    warnings: &mut Vec<Warning>,
) -> Result<RequestReadTimeout, ConfigError> {
    let error = |message: String| {
        item.loc
            .error(Some(&item.name), format!("{}: {message}", item.name))
    };
    if item.args.is_empty() {
        return Err(error(
            "expected handshake=, header= or body= settings".into(),
        ));
    }
    let mut read = RequestReadTimeout::default();
    for arg in &item.args {
        let Some((name, value)) = arg.split_once('=') else {
            return Err(error(format!(
                "`{arg}`: expected STAGE=SECONDS[-MAX][,MinRate=BYTES]"
            )));
        };
        let parsed = stage(value).map_err(|e| error(format!("{arg}: {e}")))?;
        match name.to_ascii_lowercase().as_str() {
            "handshake" => {}
            "header" => {
                if parsed.min_rate.is_some() {
                    warnings.push(item.loc.warning(
                        WarningKind::Behaviour,
                        format!(
                            "{arg}: oxwsgi bounds a request head by one timeout ({}s), without a minimum rate",
                            parsed.max.unwrap_or(parsed.timeout)
                        ),
                    ));
                }
                let longest = parsed.max.unwrap_or(parsed.timeout);
                if longest == 0 {
                    warnings.push(item.loc.warning(
                        WarningKind::Behaviour,
                        format!("{arg}: oxwsgi always bounds a request head; header-timeout keeps its default"),
                    ));
                } else {
                    read.header = Some(Duration::from_secs(longest));
                }
            }
            "body" => {
                read.body = Some(BodyRead {
                    timeout: Duration::from_secs(parsed.timeout),
                    max: parsed.max.map(Duration::from_secs),
                    min_rate: parsed.min_rate.unwrap_or(0),
                });
            }
            other => {
                return Err(error(format!(
                    "`{other}`: expected handshake, header or body"
                )))
            }
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_as_mod_reqtimeout_writes_them() {
        assert_eq!(
            stage("20-40,MinRate=500"),
            Ok(Stage {
                timeout: 20,
                max: Some(40),
                min_rate: Some(500)
            })
        );
        assert_eq!(
            stage("10"),
            Ok(Stage {
                timeout: 10,
                max: None,
                min_rate: None
            })
        );
        assert_eq!(
            stage("0"),
            Ok(Stage {
                timeout: 0,
                max: None,
                min_rate: None
            })
        );
        assert!(stage("40-20,MinRate=1").is_err());
        assert!(stage("20-40").is_err());
        assert!(stage("x").is_err());
        assert!(stage("20,MinRate=0").is_err());
        assert!(stage("20,Rate=5").is_err());
    }
}
