//! Docker's own readings of a time (`since`/`until`) and a signal name;
//! other domains have theirs, to be made one later.

use crate::tools::ToolError;

/// `since`/`until`: RFC 3339, Unix seconds, or a duration ago (`90s`,
/// `15m`, `2h`, `1d`).
pub fn parse_time(s: &str, field: &str) -> Result<i64, ToolError> {
    let t = s.trim();
    let bad = || {
        ToolError::invalid_input(
            format!("{field} {s:?} is not a time"),
            "use RFC 3339 (2026-01-02T15:04:05Z), Unix seconds, or a duration ago like 90s, 15m, 2h, 1d",
        )
    };
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(d.timestamp());
    }
    if let Ok(n) = t.parse::<i64>() {
        return if n >= 0 { Ok(n) } else { Err(bad()) };
    }
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(bad()),
    };
    Ok(chrono::Utc::now().timestamp() - secs)
}

pub fn parse_signal(s: &str) -> Result<String, ToolError> {
    let up = s.trim().to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let ok = !name.is_empty()
        && name.len() <= 12
        && (name.parse::<u8>().is_ok_and(|n| (1..=64).contains(&n))
            || name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '+'));
    if ok {
        Ok(if name.parse::<u8>().is_ok() { name.to_string() } else { format!("SIG{name}") })
    } else {
        Err(ToolError::invalid_input(
            format!("unknown signal {s:?}"),
            "use a name like TERM, KILL, HUP, USR1 or a number",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_signals() {
        assert_eq!(parse_time("2026-01-02T00:00:00Z", "since").ok(), Some(1_767_312_000));
        assert_eq!(parse_time("1700000000", "since").ok(), Some(1_700_000_000));
        let ago = parse_time("15m", "since").unwrap_or(0);
        assert!((chrono::Utc::now().timestamp() - 900 - ago).abs() <= 2);
        assert!(parse_time("yesterday", "since").is_err());
        assert!(parse_time("5w", "since").is_err());
        assert_eq!(parse_signal("term").ok().as_deref(), Some("SIGTERM"));
        assert_eq!(parse_signal("SIGKILL").ok().as_deref(), Some("SIGKILL"));
        assert_eq!(parse_signal("9").ok().as_deref(), Some("9"));
        assert!(parse_signal("kill; rm").is_err());
    }
}
