//! From identity to permissions: ACL-grant app capabilities and the local
//! policy, merged into one [`Access`] with the source of every scope.
//!
//! Two sources, unioned:
//! - **Grants** (tailnet ACL): each value of the app capability
//!   (`capability`, default `tailops.dev/cap/tailops`) is an object
//!   `{"roles": [..], "scopes": [..], "tools": {"allow": [..], "deny": [..]}}`.
//! - **Local policy** (`[policy]` in the config file), for tailnets without
//!   grants: rules matching users, groups of users, or tags.
//!
//! Deny by default: no match, no scope. A tool is callable when its scope is
//! held (or the tool is explicitly allowed by name) and no source denies it
//! by name. With an OAuth token, the token's scopes narrow that further.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::identity::Principal;
use super::scopes::{Role, Scope};

/// `[policy]` in the config file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Named groups of user logins: `ops = ["alice@example.com"]`.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Rules, each granting roles/scopes to matching callers.
    pub rules: Vec<PolicyRule>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
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
}

/// Per-tool exceptions by tool name.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ToolRules {
    /// Tools callable even without their scope.
    pub allow: Vec<String>,
    /// Tools never callable, whatever the scopes.
    pub deny: Vec<String>,
}

/// One grant value as it arrives in the CapMap.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct GrantValue {
    roles: Vec<String>,
    scopes: Vec<String>,
    tools: ToolRules,
}

/// What a principal may do, and why.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Access {
    /// Each held scope with the sources that gave it.
    pub scopes: BTreeMap<Scope, Vec<String>>,
    pub allow_tools: BTreeMap<String, Vec<String>>,
    pub deny_tools: BTreeMap<String, Vec<String>>,
    /// Grant values or names that were ignored, with the reason.
    pub ignored: Vec<String>,
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
            match serde_json::from_value::<GrantValue>(raw.clone()) {
                Ok(g) => {
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
                    a.add_tools(&g.tools, &source);
                }
                Err(e) => a.ignored.push(format!("{source}: not a tailops grant value ({e})")),
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
                a.add_tools(&rule.tools, &source);
            }
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

    fn add_tools(&mut self, t: &ToolRules, source: &str) {
        for name in &t.allow {
            self.allow_tools.entry(name.clone()).or_default().push(source.to_string());
        }
        for name in &t.deny {
            self.deny_tools.entry(name.clone()).or_default().push(source.to_string());
        }
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
