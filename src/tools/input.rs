//! Inputs shared by every domain, parsed ONE way so a caller learns one
//! syntax: times (`since`, `until`, `from`, `to`) and signal names.

use std::time::{Duration, SystemTime};

use crate::mcp::ToolError;

/// What the hint of a bad time says (the one time syntax).
pub const TIME_SYNTAX: &str =
    "use RFC 3339 (2026-01-02T15:04:05Z), Unix seconds, or a duration ago like 90s, 15m, 2h, 7d";

/// A point in time as Unix seconds: RFC 3339, non-negative Unix seconds,
/// or a duration ago (`90s`, `15m`, `2h`, `7d`). `field` names the argument
/// in the error. Arithmetic is checked: a duration too large to subtract
/// from now is `invalid_input`, never a wrapped value.
pub fn parse_time(field: &str, s: &str) -> Result<i64, ToolError> {
    let t = s.trim();
    let bad = || ToolError::invalid_input(format!("{field} {s:?} is not a time"), TIME_SYNTAX);
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return if d.timestamp() >= 0 { Ok(d.timestamp()) } else { Err(bad()) };
    }
    if let Ok(n) = t.parse::<i64>() {
        return if n >= 0 { Ok(n) } else { Err(bad()) };
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let per: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let ago = n.checked_mul(per).ok_or_else(bad)?;
    let t = chrono::Utc::now().timestamp().checked_sub(ago).ok_or_else(bad)?;
    if t < 0 { Err(bad()) } else { Ok(t) }
}

/// [`parse_time`] as a `SystemTime`.
pub fn parse_system_time(field: &str, s: &str) -> Result<SystemTime, ToolError> {
    let secs = parse_time(field, s)?;
    let secs = u64::try_from(secs).map_err(|_| ToolError::invalid_input(format!("{field} is before 1970"), ""))?;
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .ok_or_else(|| ToolError::invalid_input(format!("{field} {s:?} is out of range"), TIME_SYNTAX))
}

/// The signals a tool may send (to a process or a container): the ones an
/// operator uses to stop, reload or pause something. Anything else
/// (SEGV, real-time signals …) is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Hup,
    Int,
    Quit,
    Kill,
    Usr1,
    Usr2,
    Term,
    Cont,
    Stop,
}

const SIGNALS: &[(Signal, &str, u8)] = &[
    (Signal::Hup, "HUP", 1),
    (Signal::Int, "INT", 2),
    (Signal::Quit, "QUIT", 3),
    (Signal::Kill, "KILL", 9),
    (Signal::Usr1, "USR1", 10),
    (Signal::Usr2, "USR2", 12),
    (Signal::Term, "TERM", 15),
    (Signal::Cont, "CONT", 18),
    (Signal::Stop, "STOP", 19),
];

impl Signal {
    /// The name without `SIG`, e.g. `TERM`.
    pub fn name(self) -> &'static str {
        SIGNALS.iter().find(|(s, _, _)| *s == self).map(|(_, n, _)| *n).unwrap_or("TERM")
    }

    pub fn to_rustix(self) -> rustix::process::Signal {
        use rustix::process::Signal as S;
        match self {
            Signal::Hup => S::HUP,
            Signal::Int => S::INT,
            Signal::Quit => S::QUIT,
            Signal::Kill => S::KILL,
            Signal::Usr1 => S::USR1,
            Signal::Usr2 => S::USR2,
            Signal::Term => S::TERM,
            Signal::Cont => S::CONT,
            Signal::Stop => S::STOP,
        }
    }
}

/// A signal by name (`TERM`, `sigterm`, `SIGTERM`) or Linux number (`15`).
pub fn parse_signal(s: &str) -> Result<Signal, ToolError> {
    let up = s.trim().to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    SIGNALS
        .iter()
        .find(|(_, n, num)| *n == name || name.parse::<u8>().is_ok_and(|x| x == *num))
        .map(|(sig, _, _)| *sig)
        .ok_or_else(|| {
            ToolError::invalid_input(
                format!("unknown or refused signal {s:?}"),
                "use one of TERM, KILL, HUP, INT, QUIT, USR1, USR2, STOP, CONT (or its number)",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_time_syntax() {
        assert_eq!(parse_time("since", "2026-01-02T00:00:00Z").ok(), Some(1_767_312_000));
        assert_eq!(parse_time("since", "1700000000").ok(), Some(1_700_000_000));
        // Bracketed by the clock read before and after: a fixed ±2 s
        // tolerance fails when the test thread is descheduled in between.
        let before = chrono::Utc::now().timestamp();
        let ago = parse_time("since", "15m").unwrap_or(0);
        let after = chrono::Utc::now().timestamp();
        assert!((before - 900..=after - 900).contains(&ago), "{before} {ago} {after}");
        assert!(parse_time("since", "7d").is_ok());
        for bad in ["yesterday", "5w", "-5", "", "m", "1969-12-31T00:00:00Z", "15 m"] {
            assert!(parse_time("since", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn huge_durations_are_refused_not_wrapped() {
        for huge in ["9223372036854775807d", "9223372036854775807s", "106751991167301d", "99999999999999999999s"] {
            let e = parse_time("since", huge).err();
            assert_eq!(e.map(|e| e.category), Some(crate::mcp::ErrorCategory::InvalidInput), "{huge}");
        }
        // Just representable but before 1970: refused too.
        assert!(parse_time("since", "30000000d").is_err());
    }

    #[test]
    fn system_time_form() {
        assert_eq!(
            parse_system_time("to", "1970-01-01T00:00:10Z").ok(),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(10))
        );
        assert!(parse_system_time("to", "nope").is_err());
    }

    #[test]
    fn one_signal_set() {
        assert_eq!(parse_signal("sigterm").ok(), Some(Signal::Term));
        assert_eq!(parse_signal(" KILL ").ok(), Some(Signal::Kill));
        assert_eq!(parse_signal("SIGKILL").ok(), Some(Signal::Kill));
        assert_eq!(parse_signal("9").ok(), Some(Signal::Kill));
        assert_eq!(parse_signal("15").map(Signal::name).ok(), Some("TERM"));
        for bad in ["SEGV", "11", "kill; rm", "", "SIG", "RTMIN+3", "0", "65"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
