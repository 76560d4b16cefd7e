//! Unit names and patterns: what a caller may name, the built-in deny list
//! of the writing tools, and the allow/deny decision (checked against every
//! name a unit has, so an alias cannot reach a denied unit).

use crate::mcp::contract::ToolError;

/// Units the writing tools never change, whatever the config says: the
/// bus and systemd itself, remote access (ssh, tailscaled, consoles),
/// slices and the root mount. tailops' own unit is added at run time
/// ([`own_unit`]) besides `tailops*`.
pub const BUILTIN_DENY: &[&str] =
    &["tailops*", "dbus*", "systemd-*", "ssh*", "sshd*", "tailscaled*", "getty*", "*.slice", "-.mount", "init.scope"];
/// Longest unit name systemd accepts (UNIT_NAME_MAX).
pub const MAX_UNIT_NAME: usize = 255;
/// Unit types a name may end with.
pub const UNIT_TYPES: &[&str] =
    &["service", "socket", "target", "device", "mount", "automount", "swap", "timer", "path", "slice", "scope"];

/// A unit name as a caller wrote it, made canonical the way systemctl
/// does: no type suffix means `.service`. Refuses anything that is not a
/// unit name (systemd's character set, no leading `-` except `-.mount`
/// and `-.slice`, length).
pub fn unit_name(s: &str) -> Result<String, ToolError> {
    let bad = |why: &str| {
        ToolError::invalid_input(
            format!("{s:?} is not a unit name: {why}"),
            "name a unit like nginx, nginx.service or backup.timer (service_list shows them)",
        )
    };
    let s = s.trim();
    if s.is_empty() {
        return Err(bad("empty"));
    }
    if s.len() > MAX_UNIT_NAME {
        return Err(bad(&format!("longer than {MAX_UNIT_NAME} bytes")));
    }
    if !s.chars().all(unit_char) {
        return Err(bad("only letters, digits and :-_.\\@ are allowed"));
    }
    if s.starts_with('.') {
        return Err(bad("it starts with '.'"));
    }
    let name = match s.rsplit_once('.') {
        Some((stem, ty)) if UNIT_TYPES.contains(&ty) && !stem.is_empty() => s.to_string(),
        _ => format!("{s}.service"),
    };
    if name.len() > MAX_UNIT_NAME {
        return Err(bad(&format!("longer than {MAX_UNIT_NAME} bytes")));
    }
    if name.starts_with('-') && name != "-.mount" && name != "-.slice" {
        return Err(bad("it starts with '-'"));
    }
    Ok(name)
}

fn unit_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '\\' | '@')
}

/// A unit pattern: unit name characters plus `*` and `?`.
pub fn valid_pattern(p: &str) -> bool {
    !p.is_empty() && p.len() <= MAX_UNIT_NAME && p.chars().all(|c| unit_char(c) || c == '*' || c == '?')
}

/// `*` (any run, also empty) and `?` (one character) against a name.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The unit this process runs in, from its cgroup (`…/tailops.service`),
/// when it runs under systemd.
pub fn own_unit() -> Option<String> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cg.lines().find_map(|l| l.strip_prefix("0::"))?;
    path.split('/')
        .rev()
        .find(|seg| UNIT_TYPES.iter().any(|t| *t != "slice" && seg.ends_with(&format!(".{t}"))))
        .map(str::to_string)
}

/// Whether the writing tools may change a unit known by `names` (its id
/// and every alias). Deny wins; a non-empty allow list must match one of
/// the names. The error says which rule refused it.
pub fn check_change(names: &[String], allow: &[String], deny: &[String]) -> Result<(), ToolError> {
    for n in names {
        if let Some(p) = deny.iter().find(|p| glob_match(p, n)) {
            return Err(ToolError::permission_denied(
                format!("unit {n} may not be changed through tailops (deny pattern {p:?})"),
                "change it on the host directly; the deny list protects access to the host itself",
            ));
        }
    }
    if !allow.is_empty() && !names.iter().any(|n| allow.iter().any(|p| glob_match(p, n))) {
        return Err(ToolError::permission_denied(
            format!("unit {} is not in [systemd] allow_units", names.first().map(String::as_str).unwrap_or("?")),
            "ask the operator to add it to allow_units",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_canonical_and_checked() {
        assert_eq!(unit_name("nginx").ok().as_deref(), Some("nginx.service"));
        assert_eq!(unit_name("backup.timer").ok().as_deref(), Some("backup.timer"));
        assert_eq!(unit_name("getty@tty1").ok().as_deref(), Some("getty@tty1.service"));
        assert_eq!(unit_name("a.b").ok().as_deref(), Some("a.b.service"));
        assert_eq!(unit_name("-.mount").ok().as_deref(), Some("-.mount"));
        for bad in ["", "a b", "../x", "x;y", "--help", "-x.service", "é", "a/b", ".service"] {
            assert!(unit_name(bad).is_err(), "{bad}");
        }
        // Length at the edge: with the suffix added.
        let stem = "a".repeat(MAX_UNIT_NAME - ".service".len());
        assert!(unit_name(&stem).is_ok());
        assert!(unit_name(&format!("{stem}a")).is_err());
        assert!(unit_name(&"a".repeat(MAX_UNIT_NAME + 1)).is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_match("dbus*", "dbus.service"));
        assert!(glob_match("*.slice", "system.slice"));
        assert!(glob_match("-.mount", "-.mount"));
        assert!(!glob_match("-.mount", "x-.mount"));
        assert!(glob_match("ssh*", "ssh.service"));
        assert!(glob_match("a?c*", "abc.service"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
        assert!(!glob_match("systemd-*", "my-systemd-x.service"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn deny_wins_and_aliases_count() {
        let deny: Vec<String> = BUILTIN_DENY.iter().map(|s| s.to_string()).collect();
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for denied in [
            "dbus.service",
            "systemd-journald.service",
            "ssh.service",
            "sshd.service",
            "tailscaled.service",
            "getty@tty1.service",
            "system.slice",
            "-.mount",
            "tailops.service",
        ] {
            let e = check_change(&n(&[denied]), &[], &deny).expect_err(denied);
            assert_eq!(e.category, crate::mcp::ErrorCategory::PermissionDenied);
        }
        assert!(check_change(&n(&["web.service"]), &[], &deny).is_ok());
        // An alias of a denied unit is denied.
        assert!(check_change(&n(&["harmless.service", "dbus.service"]), &[], &deny).is_err());
        // Allow list: one of the names must match; deny still wins.
        let allow = n(&["web*", "dbus*"]);
        assert!(check_change(&n(&["web.service"]), &allow, &deny).is_ok());
        assert!(check_change(&n(&["db.service"]), &allow, &deny).is_err());
        assert!(check_change(&n(&["dbus.service"]), &allow, &deny).is_err());
    }
}
