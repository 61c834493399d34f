//! Value syntaxes shared by the config file and the command line: sizes
//! (`1048576`, `512K`, `10M`, `1.5G`; binary multiples) and durations
//! (seconds, integer or fractional). Errors are plain messages; callers add
//! the file, line and key.

use std::time::Duration;

/// What a size may look like, for error messages.
pub const SIZE_SYNTAX: &str =
    "a size in bytes, or with a K, M or G suffix (e.g. 1048576, 512K, 10M)";
/// What a duration may look like, for error messages.
pub const DURATION_SYNTAX: &str = "a number of seconds (e.g. 30 or 2.5)";

/// Parses a size: a non-negative number of bytes, optionally followed by
/// `K`, `M`, `G` or `T` (powers of 1024, any case, optionally followed by
/// `B` or `iB`). A fractional number needs a suffix (`1.5G`); the result is
/// rounded down to whole bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("expected {SIZE_SYNTAX}, got `{text}`");
    let s = text.trim();
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(digits_end);
    let number = number.replace('_', "");
    let unit = unit.trim().to_ascii_lowercase();
    let shift = match unit.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(bad());
    }
    if let Ok(n) = number.parse::<u64>() {
        return n
            .checked_mul(1u64 << shift)
            .ok_or_else(|| format!("size `{text}` is too large"));
    }
    if shift == 0 {
        return Err(bad());
    }
    let n: f64 = number.parse().map_err(|_| bad())?;
    let bytes = n * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("size `{text}` is too large"));
    }
    Ok(bytes as u64)
}

/// A non-negative, finite number of seconds as a `Duration`.
pub fn duration_from_secs(secs: f64) -> Result<Duration, String> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("expected {DURATION_SYNTAX}, got {secs}"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("duration {secs} is too large"))
}

/// Parses a duration written as seconds (`30`, `2.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.');
    match s.parse::<f64>() {
        Ok(secs) if plain => duration_from_secs(secs),
        _ => Err(format!("expected {DURATION_SYNTAX}, got `{text}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1_000"), Ok(1000));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("10 MB"), Ok(10 << 20));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("0.5K"), Ok(512));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size(" 7 "), Ok(7));
    }

    #[test]
    fn bad_sizes() {
        for bad in [
            "", "K", "-1", "1X", "1.5", "1.", ".5M", "1..5M", "ten", "1 2", "1e3",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains("expected a size"), "{bad}: {err}");
        }
        assert_eq!(
            parse_size("99999999999T"),
            Err("size `99999999999T` is too large".into())
        );
        assert!(parse_size("18446744073709551616").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(duration_from_secs(0.25), Ok(Duration::from_millis(250)));
        for bad in ["", "-1", "abc", "inf", "NaN", "1e3", "30s", "1.2.3"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("expected a number of seconds"), "{bad}: {err}");
        }
        assert!(duration_from_secs(-1.0).is_err());
        assert!(duration_from_secs(f64::INFINITY).is_err());
        assert!(duration_from_secs(1e30).is_err());
    }
}
