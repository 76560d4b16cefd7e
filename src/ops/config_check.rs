//! `tailops config check [FILE]`: validates a configuration without
//! starting anything and prints the effective policy — who gets which
//! scopes and tools from the local rules, the `[local]` principal, and
//! what a tailnet ACL grant value gives. Errors name the key, the value
//! and the fix.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::auth::scopes::{Role, Scope};
use crate::config::{Config, ConfigError};
use crate::mcp::ToolSpec;

/// The report for a valid configuration (`source` names where it came from).
pub fn report(cfg: &Config, source: &str, specs: &[ToolSpec]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "config OK: {source}");
    let warnings = cfg.policy.warnings(|name| specs.iter().any(|t| t.name == name));
    for w in &warnings {
        let _ = writeln!(o, "warning: {w}");
    }
    let _ = writeln!(o, "\nnode: hostname {} port {} read_only {}", cfg.hostname, cfg.port, cfg.read_only);
    if cfg.read_only {
        let _ = writeln!(o, "read_only: every writing tool is removed, whatever the grants say");
    }
    if cfg.oauth.enabled {
        let _ = writeln!(o, "oauth: on — a bearer token's scopes narrow every caller's scopes below");
    }

    let _ = writeln!(o, "\nroles:");
    for role in [Role::Viewer, Role::Operator, Role::Admin] {
        let _ = writeln!(o, "  {}: {}", role.as_str(), join(role.scopes().iter().map(|s| s.as_str())));
    }

    let _ = writeln!(o, "\ntailnet grants (app capability {:?}): each grant value", cfg.capability);
    let _ = writeln!(
        o,
        "  {{\"roles\": [..], \"scopes\": [..], \"tools\": {{\"allow\": [..], \"deny\": [..]}}}} gives those roles' scopes,"
    );
    let _ = writeln!(o, "  the scopes, and allowed tools; a deny applies to every source of that caller.");

    let _ = writeln!(o, "\nlocal rules (a caller matching several gets the union; denies win):");
    if cfg.policy.rules.is_empty() {
        let _ = writeln!(o, "  none: tailnet callers get only what grants give (deny by default)");
    }
    for (i, rule) in cfg.policy.rules.iter().enumerate() {
        let mut who = Vec::new();
        who.extend(rule.users.iter().map(|u| format!("user {u}")));
        for g in &rule.groups {
            let members = cfg.policy.groups.get(g).map(|m| join(m.iter().map(String::as_str))).unwrap_or_default();
            who.push(format!("group {g} ({members})"));
        }
        who.extend(rule.tags.iter().map(|t| format!("tag {t}")));
        let who = if who.is_empty() { "nobody".to_string() } else { who.join(", ") };
        let _ = writeln!(o, "  rule {i}: {who}");
        describe(&mut o, cfg, specs, &rule.roles, &rule.scopes, &rule.tools.allow, &rule.tools.deny);
    }

    let _ = writeln!(o, "\n[local] principal (stdio, --dev-listen): local:{}", cfg.local.name);
    describe(&mut o, cfg, specs, &cfg.local.roles, &cfg.local.scopes, &[], &[]);
    o
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = items.collect();
    if v.is_empty() { "-".to_string() } else { v.join(", ") }
}

fn describe(
    o: &mut String,
    cfg: &Config,
    specs: &[ToolSpec],
    roles: &[Role],
    scopes: &[Scope],
    allow: &[String],
    deny: &[String],
) {
    let mut held: BTreeSet<Scope> = scopes.iter().copied().collect();
    for r in roles {
        held.extend(r.scopes());
    }
    let denied: BTreeSet<String> = deny.iter().map(|d| d.trim().to_ascii_lowercase()).collect();
    let tools: Vec<&str> = specs
        .iter()
        .filter(|t| !denied.contains(t.name))
        .filter(|t| !(cfg.read_only && t.writes))
        .filter(|t| t.scope.is_none_or(|s| held.contains(&s)) || allow.iter().any(|a| a == t.name))
        .map(|t| t.name)
        .collect();
    let _ = writeln!(o, "    roles: {}", join(roles.iter().map(|r| r.as_str())));
    let _ = writeln!(o, "    scopes: {}", join(held.iter().map(|s| s.as_str())));
    if !allow.is_empty() || !deny.is_empty() {
        let _ = writeln!(
            o,
            "    tools.allow: {}; tools.deny: {}",
            join(allow.iter().map(String::as_str)),
            join(denied.iter().map(String::as_str))
        );
    }
    let _ = writeln!(o, "    tools: {}", join(tools.into_iter()));
}

/// What an error means for the operator: the key, the value found, and
/// the fix. `cfg` is the parsed but invalid configuration, when parsing
/// got that far.
pub fn explain(err: &ConfigError, cfg: Option<&Config>) -> String {
    match err {
        ConfigError::Read { path, source } => format!(
            "error: cannot read {}: {source}\nfix: check the path and that this user may read it",
            path.display()
        ),
        ConfigError::Parse { path, message } => format!(
            "error: {} is not a valid tailops config: {}\nfix: correct the key or value shown; `tailops config example` lists every key with its default",
            path.display(),
            message.trim_end()
        ),
        ConfigError::Invalid { field, message } => {
            let found = cfg.and_then(|c| lookup(c, field)).map(|v| format!(" = {v}")).unwrap_or_default();
            let default = lookup(&Config::default(), field).map(|v| format!(" (default {v})")).unwrap_or_default();
            format!(
                "error: {field}{found}: {message}\nfix: change {field} as the message says{default}; `tailops config example` documents every key"
            )
        }
        ConfigError::AuthKey { path, source } => format!(
            "error: authkey_file = {:?}: {source}\nfix: put the auth key on the file's first line, or unset authkey_file",
            path.display()
        ),
    }
}

/// The value at a dotted key path, as compact JSON (scalars only: a whole
/// section is not a useful "value").
fn lookup(cfg: &Config, field: &str) -> Option<String> {
    let mut v = serde_json::to_value(cfg).ok()?;
    for part in field.split('.') {
        v = v.get(part)?.clone();
    }
    match v {
        Value::Object(_) => None,
        v => Some(v.to_string()),
    }
}

/// Loads and validates `file` with `overrides`, returning the report or
/// the explained error.
/// `specs` gives the tools this configuration offers (the composition
/// root leaves out what it hides, e.g. file tools without a file root).
pub fn check(
    file: Option<&Path>,
    overrides: crate::config::Overrides,
    specs: impl Fn(&Config) -> Vec<ToolSpec>,
) -> Result<String, String> {
    let source = file.map(|f| f.display().to_string()).unwrap_or_else(|| "(no file: defaults)".to_string());
    let cfg = Config::load_unvalidated(file, overrides).map_err(|e| explain(&e, None))?;
    cfg.validate().map_err(|e| explain(&e, Some(&cfg)))?;
    Ok(report(&cfg, &source, &specs(&cfg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &'static str, scope: Option<Scope>, writes: bool) -> ToolSpec {
        ToolSpec { name, domain: "t", scope, writes }
    }

    #[test]
    fn invalid_values_are_named_with_the_value_and_the_fix() {
        let mut cfg = Config::default();
        cfg.limits.max_connections = 0;
        let err = cfg.validate().expect_err("0 connections");
        let text = explain(&err, Some(&cfg));
        assert!(text.contains("limits.max_connections = 0"), "{text}");
        assert!(text.contains("fix:") && text.contains("default 512"), "{text}");
    }

    #[test]
    fn rules_show_scopes_and_tools_with_denies_and_read_only() {
        let specs = [
            spec("whoami", None, false),
            spec("cpu_usage", Some(Scope::SystemRead), false),
            spec("process_signal", Some(Scope::ProcessesSignal), true),
            spec("audit_tail", Some(Scope::AuditRead), false),
        ];
        let cfg: Config = toml::from_str(
            "[[policy.rules]]\nusers = [\"alice@example.com\"]\nroles = [\"operator\"]\ntools = { deny = [\" CPU_usage\"] }\n",
        )
        .expect("toml");
        let text = report(&cfg, "t.toml", &specs);
        assert!(text.contains("rule 0: user alice@example.com"), "{text}");
        assert!(text.contains("    tools: whoami, process_signal\n"), "{text}");
        let ro = Config { read_only: true, ..cfg };
        let text = report(&ro, "t.toml", &specs);
        assert!(text.contains("    tools: whoami\n"), "{text}");
    }
}
