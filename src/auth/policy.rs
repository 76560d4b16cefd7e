//! From identity to permissions: ACL-grant app capabilities and the local
//! policy, merged into one [`Access`] with the source of every scope.
//!
//! Two sources, unioned:
//! - **Grants** (tailnet ACL): each value of the app capability
//!   (`capability`, default `tailops.dev/cap/tailops`) is an object
//!   `{"roles": [..], "scopes": [..], "tools": {"allow": [..], "deny": [..]},
//!   "files": {"roots": [..]}}`.
//! - **Local policy** (`[policy]` in the config file), for tailnets without
//!   grants: rules matching users, groups of users, or tags.
//!
//! Deny by default: no match, no scope. A tool is callable when its scope is
//! held (or the tool is explicitly allowed by name) and no source denies it
//! by name. With an OAuth token, the token's scopes narrow that further.
//!
//! Deny never fails open. Grant values come from the tailnet admin's ACL,
//! which this server cannot validate ahead of time, so they are read field
//! by field instead of all-or-nothing:
//! - a value with an unknown field or a field of the wrong type grants
//!   nothing (the field might be a restriction from a newer schema), but
//!   its `tools.deny` is still applied;
//! - a value whose `tools` or `tools.deny` cannot be read (not an object /
//!   not a list of strings) might deny any tool, and a deny reaches every
//!   source of the principal, so the principal's access is withheld whole:
//!   no scope, no allowed tool, only `whoami` (which says why);
//! - deny names are matched ignoring case and surrounding blanks, so
//!   `" Process_Signal"` still denies `process_signal`;
//! - `files.roots` narrows: once any grant value or rule names file roots,
//!   the caller sees only the union of the roots named; a `files` field
//!   that cannot be read narrows to no root at all.
//!
//! The local policy is checked when the config is loaded (unknown fields
//! and names are errors there); what a parser cannot see — tool names no
//! tool has, groups nobody defined, rules that match nobody — is reported
//! at start-up by [`PolicyConfig::warnings`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::identity::Principal;
use super::scopes::{Role, Scope};

/// `[policy]` in the config file.
#[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Named groups of user logins: `ops = ["alice@example.com"]`.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Rules, each granting roles/scopes to matching callers.
    pub rules: Vec<PolicyRule>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyRule {
    /// User logins (case-insensitive, exact) or `*` for any person.
    pub users: Vec<String>,
    /// Group names from `[policy.groups]`.
    pub groups: Vec<String>,
    /// Node tags, e.g. `tag:ci`; matches a caller carrying any of them.
    pub tags: Vec<String>,
    pub roles: Vec<Role>,
    pub scopes: Vec<Scope>,
    pub tools: ToolRules,
    /// Narrows the file roots the matching callers see.
    pub files: Option<FilesRule>,
}

/// `files = { roots = ["logs"] }`: the file roots a caller may see (see
/// the module doc for how several combine).
#[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilesRule {
    pub roots: Vec<String>,
}

/// Per-tool exceptions by tool name.
#[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ToolRules {
    /// Tools callable even without their scope.
    pub allow: Vec<String>,
    /// Tools never callable, whatever the scopes.
    pub deny: Vec<String>,
}

impl PolicyConfig {
    /// What the config parser cannot see but an operator must: tool names
    /// in `tools.allow`/`tools.deny` that no tool has (`is_known` says which
    /// exist; a misspelt deny denies nothing), groups no `[policy.groups]`
    /// defines and rules without users, groups or tags (both match nobody,
    /// so their denies reach nobody). Logged at start-up.
    pub fn warnings(&self, is_known: impl Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            for name in &rule.tools.allow {
                if !is_known(name) {
                    out.push(format!("policy rule {i}: tools.allow names no tool: {name:?}"));
                }
            }
            for name in &rule.tools.deny {
                if !is_known(&deny_key(name)) {
                    out.push(format!("policy rule {i}: tools.deny names no tool: {name:?}"));
                }
            }
            for g in &rule.groups {
                if !self.groups.contains_key(g) {
                    out.push(format!("policy rule {i}: group {g:?} is not defined in [policy.groups]"));
                }
            }
            if rule.users.is_empty() && rule.groups.is_empty() && rule.tags.is_empty() {
                out.push(format!("policy rule {i}: no users, groups or tags, so it matches nobody"));
            }
        }
        out
    }
}

/// The name a deny entry denies: tool names are lowercase and blank-free,
/// so a deny written `" Process_Signal"` still denies `process_signal`
/// (an allow is taken as written: a mismatch there only grants less).
fn deny_key(name: &str) -> String {
    name.trim().to_ascii_lowercase()
}

/// One grant value, read field by field (see the module doc for why).
#[derive(Debug, Default, PartialEq)]
struct GrantRead {
    roles: Vec<String>,
    scopes: Vec<String>,
    allow: Vec<String>,
    /// Every deny name that could be read, also from a value that grants
    /// nothing.
    deny: Vec<String>,
    /// Why this value grants nothing (empty: it grants its roles, scopes
    /// and allows).
    problems: Vec<String>,
    /// Why its deny list cannot be read: the principal's access is
    /// withheld.
    deny_unreadable: Option<String>,
    /// `files.roots` when present (applied also from a value that grants
    /// nothing; `Some(empty)` when unreadable).
    file_roots: Option<Vec<String>>,
}

/// Reads `v` as a list of strings into `out`; `Err` when it is not one
/// (strings found before or after a non-string are still kept).
fn read_names(v: &serde_json::Value, out: &mut Vec<String>) -> Result<(), String> {
    let Some(items) = v.as_array() else {
        return Err(format!("expected a list of strings, got {}", json_kind(v)));
    };
    let mut bad = None;
    for item in items {
        match item.as_str() {
            Some(s) => out.push(s.to_string()),
            None => bad = bad.or(Some(format!("expected a list of strings, found {}", json_kind(item)))),
        }
    }
    bad.map_or(Ok(()), Err)
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Reads one grant value; never fails: what cannot be read is reported in
/// `problems` / `deny_unreadable`.
fn read_grant(raw: &serde_json::Value) -> GrantRead {
    let mut g = GrantRead::default();
    let Some(obj) = raw.as_object() else {
        g.problems.push(format!("not a tailops grant value: expected an object, got {}", json_kind(raw)));
        return g;
    };
    for (key, v) in obj {
        match key.as_str() {
            "roles" => {
                if let Err(e) = read_names(v, &mut g.roles) {
                    g.problems.push(format!("roles: {e}"));
                }
            }
            "scopes" => {
                if let Err(e) = read_names(v, &mut g.scopes) {
                    g.problems.push(format!("scopes: {e}"));
                }
            }
            "tools" => {
                let Some(tools) = v.as_object() else {
                    g.deny_unreadable = Some(format!("tools: expected an object, got {}", json_kind(v)));
                    continue;
                };
                for (tkey, tv) in tools {
                    match tkey.as_str() {
                        "allow" => {
                            if let Err(e) = read_names(tv, &mut g.allow) {
                                g.problems.push(format!("tools.allow: {e}"));
                            }
                        }
                        "deny" => {
                            if let Err(e) = read_names(tv, &mut g.deny) {
                                g.deny_unreadable = Some(format!("tools.deny: {e}"));
                            }
                        }
                        other => g.problems.push(format!("unknown field tools.{other}")),
                    }
                }
            }
            "files" => {
                let mut roots = Vec::new();
                let read = match v.as_object() {
                    None => Err(format!("files: expected an object, got {}", json_kind(v))),
                    Some(files) => files.iter().try_for_each(|(k, fv)| match k.as_str() {
                        "roots" => read_names(fv, &mut roots).map_err(|e| format!("files.roots: {e}")),
                        other => Err(format!("unknown field files.{other}")),
                    }),
                };
                if let Err(e) = read {
                    // A restriction we cannot read narrows to nothing.
                    g.problems.push(format!("{e}; no file root is given"));
                    roots.clear();
                }
                g.file_roots = Some(roots);
            }
            other => g.problems.push(format!("unknown field {other}")),
        }
    }
    g
}

/// What a principal may do, and why.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Access {
    /// Each held scope with the sources that gave it.
    pub scopes: BTreeMap<Scope, Vec<String>>,
    pub allow_tools: BTreeMap<String, Vec<String>>,
    /// Denied tool names (lowercased, trimmed) with their sources.
    pub deny_tools: BTreeMap<String, Vec<String>>,
    /// Grant values or names that were ignored, with the reason.
    pub ignored: Vec<String>,
    /// Why all access is withheld (a deny list that cannot be read might
    /// deny anything): when not empty, `scopes` and `allow_tools` are
    /// empty and only unscoped tools (`whoami`) can be called.
    pub withheld: Vec<String>,
    /// The file roots this principal may see, each with its sources; None
    /// = every root (no grant or rule narrows them).
    pub file_roots: Option<BTreeMap<String, Vec<String>>>,
}

/// The outcome of an authorization check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The identity lacks the scope (or the tool is denied by name).
    Deny(String),
    /// The identity holds the scope but the OAuth token does not: the
    /// client may retry with a token carrying `scope`.
    StepUp(Scope),
}

impl Access {
    /// Resolves the access of `p` from its grants (capability `cap`) and the
    /// local policy.
    pub fn resolve(p: &Principal, cap: &str, policy: &PolicyConfig) -> Access {
        let mut a = Access::default();
        for (i, raw) in p.capabilities.get(cap).map(Vec::as_slice).unwrap_or(&[]).iter().enumerate() {
            let source = format!("grant {cap}[{i}]");
            let g = read_grant(raw);
            // Denies first and always: whatever else the value holds.
            for name in &g.deny {
                a.add_deny(name, &source);
            }
            if let Some(why) = &g.deny_unreadable {
                a.withheld.push(format!("{source}: {why}; it might deny any tool, so no access is given"));
            }
            if let Some(roots) = &g.file_roots {
                a.narrow_roots(roots, &source);
            }
            if !g.problems.is_empty() {
                let applied = if g.deny.is_empty() { "" } else { "; its tools.deny is applied" };
                a.ignored.push(format!("{source}: grants nothing ({}){applied}", g.problems.join("; ")));
                continue;
            }
            for r in &g.roles {
                match r.parse::<Role>() {
                    Ok(role) => a.add_role(role, &source),
                    Err(e) => a.ignored.push(format!("{source}: {e}")),
                }
            }
            for s in &g.scopes {
                match s.parse::<Scope>() {
                    Ok(scope) => a.add_scope(scope, &source),
                    Err(e) => a.ignored.push(format!("{source}: {e}")),
                }
            }
            for name in &g.allow {
                a.add_allow(name, &source);
            }
        }
        for (i, rule) in policy.rules.iter().enumerate() {
            if let Some(why) = rule_matches(rule, p, policy) {
                let source = format!("policy rule {i} ({why})");
                for role in &rule.roles {
                    a.add_role(*role, &source);
                }
                for scope in &rule.scopes {
                    a.add_scope(*scope, &source);
                }
                for name in &rule.tools.allow {
                    a.add_allow(name, &source);
                }
                for name in &rule.tools.deny {
                    a.add_deny(name, &source);
                }
                if let Some(files) = &rule.files {
                    a.narrow_roots(&files.roots, &source);
                }
            }
        }
        if !a.withheld.is_empty() {
            // Fail closed: an unreadable deny might name any tool, from any
            // source, so nothing is granted at all.
            a.scopes.clear();
            a.allow_tools.clear();
        }
        a
    }

    /// Access for a fixed local principal (stdio, dev-listen) from roles and
    /// scopes in the config.
    pub fn fixed(roles: &[Role], scopes: &[Scope], source: &str) -> Access {
        let mut a = Access::default();
        for r in roles {
            a.add_role(*r, source);
        }
        for s in scopes {
            a.add_scope(*s, source);
        }
        a
    }

    /// Adds `roots` to the caller's visible roots (and starts narrowing).
    pub fn narrow_roots(&mut self, roots: &[String], source: &str) {
        let m = self.file_roots.get_or_insert_default();
        for r in roots {
            let sources = m.entry(r.clone()).or_default();
            if !sources.iter().any(|s| s == source) {
                sources.push(source.to_string());
            }
        }
    }

    /// The root names the caller may see; None = all.
    pub fn root_names(&self) -> Option<BTreeSet<String>> {
        self.file_roots.as_ref().map(|m| m.keys().cloned().collect())
    }

    fn add_role(&mut self, role: Role, source: &str) {
        for s in role.scopes() {
            self.add_scope(s, &format!("{source} role {}", role.as_str()));
        }
    }

    fn add_scope(&mut self, scope: Scope, source: &str) {
        let sources = self.scopes.entry(scope).or_default();
        if !sources.iter().any(|s| s == source) {
            sources.push(source.to_string());
        }
    }

    fn add_allow(&mut self, name: &str, source: &str) {
        let sources = self.allow_tools.entry(name.to_string()).or_default();
        if !sources.iter().any(|s| s == source) {
            sources.push(source.to_string());
        }
    }

    fn add_deny(&mut self, name: &str, source: &str) {
        let sources = self.deny_tools.entry(deny_key(name)).or_default();
        if !sources.iter().any(|s| s == source) {
            sources.push(source.to_string());
        }
    }

    /// Tool names this principal's grants and rules allow or deny that no
    /// tool has (`is_known` says which exist), each with where it was
    /// written: usually a typo, and a misspelt deny denies nothing.
    pub fn unknown_tools(&self, is_known: impl Fn(&str) -> bool) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (list, names) in [("tools.allow", &self.allow_tools), ("tools.deny", &self.deny_tools)] {
            for (name, sources) in names {
                if !is_known(name) {
                    out.entry(name.clone()).or_default().extend(sources.iter().map(|s| format!("{s} {list}")));
                }
            }
        }
        out
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains_key(&scope)
    }

    /// May this principal call `tool` (declared with `scope`; `None` = any
    /// identified caller)? `token` is the OAuth token's scopes, if a token
    /// was presented.
    pub fn check(&self, tool: &str, scope: Option<Scope>, token: Option<&BTreeSet<Scope>>) -> Decision {
        if let Some(sources) = self.deny_tools.get(tool) {
            return Decision::Deny(format!("tool {tool} is denied by {}", sources.join(", ")));
        }
        let Some(scope) = scope else {
            return Decision::Allow;
        };
        if !self.withheld.is_empty() {
            return Decision::Deny(format!("no access is given: {}", self.withheld.join("; ")));
        }
        if !self.has(scope) && !self.allow_tools.contains_key(tool) {
            return Decision::Deny(format!("requires scope {scope}, which this identity does not hold"));
        }
        if let Some(tok) = token
            && !tok.contains(&scope)
        {
            return Decision::StepUp(scope);
        }
        Decision::Allow
    }
}

/// Why `rule` matches `p`, or None.
fn rule_matches(rule: &PolicyRule, p: &Principal, policy: &PolicyConfig) -> Option<String> {
    let login = p.login_name.to_ascii_lowercase();
    if !login.is_empty() {
        for u in &rule.users {
            if u == "*" || u.to_ascii_lowercase() == login {
                return Some(format!("user {u}"));
            }
        }
        for g in &rule.groups {
            if let Some(members) = policy.groups.get(g)
                && members.iter().any(|m| m.to_ascii_lowercase() == login)
            {
                return Some(format!("group {g}"));
            }
        }
    }
    for t in &rule.tags {
        if p.tags.iter().any(|pt| pt == t) {
            return Some(format!("tag {t}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CAP: &str = "tailops.dev/cap/tailops";

    fn principal(login: &str, tags: &[&str], caps: Vec<serde_json::Value>) -> Principal {
        Principal {
            id: String::new(),
            login_name: login.into(),
            display_name: String::new(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            node_name: String::new(),
            node_id: String::new(),
            source: "100.64.0.5:1".parse().expect("addr"),
            capabilities: [(CAP.to_string(), caps)].into_iter().collect(),
        }
    }

    #[test]
    fn nothing_matches_nothing_granted() {
        let a = Access::resolve(&principal("eve@", &[], vec![]), CAP, &PolicyConfig::default());
        assert!(a.scopes.is_empty());
        assert!(matches!(a.check("x", Some(Scope::SystemRead), None), Decision::Deny(_)));
        assert_eq!(a.check("whoami", None, None), Decision::Allow);
    }

    #[test]
    fn grants_give_roles_scopes_and_tool_rules_with_sources() {
        let p = principal(
            "alice@",
            &[],
            vec![
                json!({"roles": ["viewer"]}),
                json!({"scopes": ["audit:read", "bogus:scope"], "tools": {"deny": ["file_read"], "allow": ["container_restart"]}}),
                json!("not an object"),
            ],
        );
        let a = Access::resolve(&p, CAP, &PolicyConfig::default());
        assert!(a.has(Scope::SystemRead) && a.has(Scope::AuditRead));
        assert!(!a.has(Scope::DockerWrite));
        assert_eq!(a.scopes[&Scope::AuditRead], vec![format!("grant {CAP}[1]")]);
        assert!(a.scopes[&Scope::SystemRead][0].contains("role viewer"));
        assert_eq!(a.ignored.len(), 2, "{:?}", a.ignored);
        assert!(matches!(a.check("file_read", Some(Scope::FilesRead), None), Decision::Deny(_)));
        assert_eq!(a.check("container_restart", Some(Scope::DockerWrite), None), Decision::Allow);
        assert!(matches!(a.check("container_stop", Some(Scope::DockerWrite), None), Decision::Deny(_)));
    }

    #[test]
    fn local_policy_users_groups_tags() {
        let policy = PolicyConfig {
            groups: [("ops".to_string(), vec!["Bob@Example.com".to_string()])].into_iter().collect(),
            rules: vec![
                PolicyRule { groups: vec!["ops".into()], roles: vec![Role::Operator], ..Default::default() },
                PolicyRule { tags: vec!["tag:ci".into()], scopes: vec![Scope::SystemRead], ..Default::default() },
            ],
        };
        let bob = Access::resolve(&principal("bob@example.com", &[], vec![]), CAP, &policy);
        assert!(bob.has(Scope::ServicesWrite));
        assert!(bob.scopes[&Scope::ServicesWrite][0].starts_with("policy rule 0 (group ops)"));
        let ci = Access::resolve(&principal("", &["tag:ci"], vec![]), CAP, &policy);
        assert_eq!(ci.scopes.keys().copied().collect::<Vec<_>>(), vec![Scope::SystemRead]);
        let other = Access::resolve(&principal("carol@", &["tag:web"], vec![]), CAP, &policy);
        assert!(other.scopes.is_empty());
    }

    fn resolve(caps: Vec<serde_json::Value>) -> Access {
        Access::resolve(&principal("alice@", &[], caps), CAP, &PolicyConfig::default())
    }

    fn denied(a: &Access, tool: &str, scope: Scope) -> bool {
        matches!(a.check(tool, Some(scope), None), Decision::Deny(_))
    }

    /// The case: one unknown field used to drop the value whole,
    /// deny included, and the role from another value then allowed the
    /// denied tool.
    /// `files.roots` narrows to the union of roots named; a `files` field
    /// that cannot be read narrows to none (it might have been a
    /// restriction), also in a value that otherwise grants nothing.
    #[test]
    fn file_roots_narrow_and_fail_closed() {
        let names = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<BTreeSet<String>>());
        assert_eq!(resolve(vec![json!({"roles": ["admin"]})]).root_names(), None);
        let a = resolve(vec![
            json!({"roles": ["admin"]}),
            json!({"roles": ["viewer"], "files": {"roots": ["logs"]}}),
            json!({"files": {"roots": ["www", "logs"]}}),
        ]);
        assert_eq!(a.root_names(), names(&["logs", "www"]));
        assert!(a.has(Scope::FilesRead), "the admin value still grants its role");
        for bad in [
            json!({"roles": ["admin"], "files": {"roots": "logs"}}),
            json!({"roles": ["admin"], "files": ["logs"]}),
            json!({"roles": ["admin"], "files": {"roots": ["logs"], "paths": ["x"]}}),
        ] {
            let a = resolve(vec![bad.clone()]);
            assert_eq!(a.root_names(), names(&[]), "{bad}");
            assert!(!a.has(Scope::FilesRead), "a value with an unreadable field grants nothing: {bad}");
        }
        let rule = PolicyRule {
            users: vec!["*".into()],
            roles: vec![Role::Admin],
            files: Some(FilesRule { roots: vec!["logs".into()] }),
            ..Default::default()
        };
        let a = Access::resolve(
            &principal("alice@", &[], vec![]),
            CAP,
            &PolicyConfig { rules: vec![rule], ..Default::default() },
        );
        assert_eq!(a.root_names(), names(&["logs"]));
    }

    #[test]
    fn unknown_field_keeps_the_deny_and_grants_nothing() {
        let a = resolve(vec![
            json!({"roles": ["admin"]}),
            json!({"roles": ["admin"], "expires": "2027-01-01", "tools": {"deny": ["process_signal"]}}),
        ]);
        assert!(denied(&a, "process_signal", Scope::ProcessesSignal), "{a:?}");
        assert!(a.deny_tools["process_signal"] == vec![format!("grant {CAP}[1]")], "{a:?}");
        // The value with the unknown field gave nothing of its own.
        assert!(a.scopes.values().flatten().all(|s| s.starts_with(&format!("grant {CAP}[0]"))), "{a:?}");
        assert_eq!(a.ignored.len(), 1, "{:?}", a.ignored);
        assert!(a.ignored[0].contains("unknown field expires") && a.ignored[0].contains("tools.deny is applied"));
        assert!(a.withheld.is_empty());
        // Only that value is dropped: the admin role of value 0 still works.
        assert_eq!(a.check("container_restart", Some(Scope::DockerWrite), None), Decision::Allow);

        // Unknown field inside `tools`, wrong-typed roles/scopes/allow: same.
        for bad in [
            json!({"roles": ["admin"], "tools": {"deny": ["process_signal"], "deny_prefix": ["container_"]}}),
            json!({"roles": "admin", "tools": {"deny": ["process_signal"]}}),
            json!({"roles": ["admin"], "scopes": [1], "tools": {"deny": ["process_signal"]}}),
            json!({"roles": ["admin"], "tools": {"allow": "x", "deny": ["process_signal"]}}),
        ] {
            let a = resolve(vec![bad.clone()]);
            assert!(a.scopes.is_empty(), "{bad}: grants nothing: {a:?}");
            assert!(a.deny_tools.contains_key("process_signal"), "{bad}: deny kept: {a:?}");
            assert_eq!(a.ignored.len(), 1, "{bad}: {:?}", a.ignored);
        }
    }

    /// A deny list that cannot be read might name any tool, from any
    /// source: the principal gets no access at all (only whoami).
    #[test]
    fn unreadable_deny_withholds_all_access() {
        let policy = PolicyConfig {
            rules: vec![PolicyRule { users: vec!["*".into()], roles: vec![Role::Viewer], ..Default::default() }],
            ..Default::default()
        };
        for bad in [
            json!({"tools": {"deny": "process_signal"}}),
            json!({"tools": {"deny": ["audit_tail", 3]}}),
            json!({"tools": {"deny": null}}),
            json!({"tools": ["process_signal"]}),
            json!({"tools": null}),
            json!({"roles": ["viewer"], "tools": {"deny": {"process_signal": true}}}),
        ] {
            let p =
                principal("alice@", &[], vec![json!({"roles": ["admin"], "tools": {"allow": ["prune"]}}), bad.clone()]);
            let a = Access::resolve(&p, CAP, &policy);
            assert_eq!(a.withheld.len(), 1, "{bad}: {a:?}");
            assert!(a.withheld[0].starts_with(&format!("grant {CAP}[1]: tools")), "{:?}", a.withheld);
            assert!(a.scopes.is_empty() && a.allow_tools.is_empty(), "{bad}: grants and policy dropped: {a:?}");
            for (tool, scope) in [("server_info", Scope::SystemRead), ("prune", Scope::DockerAdmin)] {
                match a.check(tool, Some(scope), None) {
                    Decision::Deny(why) => assert!(why.contains("no access is given"), "{why}"),
                    d => panic!("{bad}: {tool} must be denied, got {d:?}"),
                }
            }
            assert_eq!(a.check("whoami", None, None), Decision::Allow, "whoami still says why");
        }
        // The readable names of a half-readable list are still denies.
        let a = resolve(vec![json!({"tools": {"deny": ["whoami", 3]}})]);
        assert!(matches!(a.check("whoami", None, None), Decision::Deny(_)));
    }

    /// Adding anything to a grant value never removes a readable deny.
    #[test]
    fn no_extra_field_removes_a_deny() {
        let extras = [
            ("note", json!("x")),
            ("roles", json!("admin")),
            ("roles", json!(["admin", 7])),
            ("scopes", json!({"a": 1})),
            ("tools_v2", json!({"deny": []})),
            ("", json!(null)),
        ];
        let tool_extras =
            [("allow", json!(5)), ("allow", json!(["prune"])), ("deny_regex", json!(".*")), ("x", json!(null))];
        for (k, v) in &extras {
            for (tk, tv) in &tool_extras {
                let mut tools = serde_json::Map::new();
                tools.insert("deny".into(), json!(["process_signal"]));
                tools.insert((*tk).into(), tv.clone());
                let mut value = serde_json::Map::new();
                value.insert("tools".into(), serde_json::Value::Object(tools));
                value.insert((*k).into(), v.clone());
                let a = resolve(vec![json!({"roles": ["admin"]}), serde_json::Value::Object(value.clone())]);
                assert!(denied(&a, "process_signal", Scope::ProcessesSignal), "{value:?}: {a:?}");
            }
        }
    }

    #[test]
    fn deny_ignores_case_and_blanks_allow_does_not() {
        let a =
            resolve(vec![json!({"roles": ["admin"], "tools": {"deny": [" Process_Signal\t"], "allow": ["Prune"]}})]);
        assert!(denied(&a, "process_signal", Scope::ProcessesSignal), "{a:?}");
        assert!(a.deny_tools.contains_key("process_signal"));
        let v = resolve(vec![json!({"roles": ["viewer"], "tools": {"allow": ["Prune"]}})]);
        assert!(denied(&v, "prune", Scope::DockerAdmin), "an allow is exact: {v:?}");
    }

    #[test]
    fn unknown_tool_names_are_reported_with_their_source() {
        let policy = PolicyConfig {
            rules: vec![PolicyRule {
                users: vec!["*".into()],
                tools: ToolRules { allow: vec!["whoami".into()], deny: vec!["procss_signal".into()] },
                ..Default::default()
            }],
            ..Default::default()
        };
        let p = principal(
            "alice@",
            &[],
            vec![json!({"roles": ["viewer"], "tools": {"allow": ["conatiner_restart", "prune"], "deny": ["Nope"]}})],
        );
        let a = Access::resolve(&p, CAP, &policy);
        let known = |n: &str| ["whoami", "prune", "process_signal", "container_restart"].contains(&n);
        let u = a.unknown_tools(known);
        assert_eq!(u.keys().map(String::as_str).collect::<Vec<_>>(), ["conatiner_restart", "nope", "procss_signal"]);
        assert_eq!(u["conatiner_restart"], vec![format!("grant {CAP}[0] tools.allow")]);
        assert_eq!(u["nope"], vec![format!("grant {CAP}[0] tools.deny")]);
        assert_eq!(u["procss_signal"], vec!["policy rule 0 (user *) tools.deny".to_string()]);
    }

    #[test]
    fn policy_warnings_name_what_matches_nothing() {
        let policy = PolicyConfig {
            groups: [("ops".to_string(), vec!["bob@".to_string()])].into_iter().collect(),
            rules: vec![
                PolicyRule {
                    groups: vec!["ops".into(), "contractors".into()],
                    tools: ToolRules {
                        allow: vec!["server_info".into(), "sever_info".into()],
                        deny: vec!["Prune ".into(), "procss_signal".into()],
                    },
                    ..Default::default()
                },
                PolicyRule {
                    tools: ToolRules { deny: vec!["prune".into()], ..Default::default() },
                    ..Default::default()
                },
            ],
        };
        let w = policy.warnings(|n| ["server_info", "prune", "process_signal"].contains(&n));
        assert_eq!(
            w,
            vec![
                "policy rule 0: tools.allow names no tool: \"sever_info\"",
                "policy rule 0: tools.deny names no tool: \"procss_signal\"",
                "policy rule 0: group \"contractors\" is not defined in [policy.groups]",
                "policy rule 1: no users, groups or tags, so it matches nobody",
            ]
        );
        assert!(PolicyConfig::default().warnings(|_| false).is_empty());
    }

    #[test]
    fn token_narrows_and_asks_for_step_up() {
        let a = Access::fixed(&[Role::Admin], &[], "test");
        let token: BTreeSet<Scope> = [Scope::SystemRead].into_iter().collect();
        assert_eq!(a.check("t", Some(Scope::SystemRead), Some(&token)), Decision::Allow);
        assert_eq!(a.check("t", Some(Scope::FilesWrite), Some(&token)), Decision::StepUp(Scope::FilesWrite));
        let viewer = Access::fixed(&[Role::Viewer], &[], "test");
        assert!(matches!(viewer.check("t", Some(Scope::FilesWrite), Some(&token)), Decision::Deny(_)));
    }
}
