//! The caller of one request: who (Principal), what they may do (Access),
//! and, when an OAuth token was presented, the token's scopes.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;

use super::identity::Principal;
use super::policy::{Access, Decision};
use super::scopes::{Role, Scope};

/// `[local]`: the fixed principal of local modes (stdio, dev-listen), where
/// there is no tailnet to say who is calling.
#[derive(Clone, Debug, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LocalPrincipal {
    /// Shown as `local:<name>` in whoami and the audit log.
    pub name: String,
    pub roles: Vec<Role>,
    pub scopes: Vec<Scope>,
    /// Narrows the file roots it sees (`files = { roots = ["logs"] }`).
    pub files: Option<super::policy::FilesRule>,
}

impl Default for LocalPrincipal {
    fn default() -> Self {
        Self { name: "local".into(), roles: vec![Role::Viewer], scopes: Vec::new(), files: None }
    }
}

#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Arc<Principal>,
    pub access: Arc<Access>,
    /// Scopes of the validated OAuth token, if one was presented.
    pub token_scopes: Option<Arc<BTreeSet<Scope>>>,
}

impl Caller {
    pub fn new(principal: Arc<Principal>, access: Arc<Access>) -> Self {
        Self { principal, access, token_scopes: None }
    }

    /// The caller of local modes (dev-listen, stdio), from `[local]`.
    pub fn local(l: &LocalPrincipal, source: SocketAddr) -> Self {
        let principal = Principal {
            id: format!("local:{}", l.name),
            login_name: l.name.clone(),
            display_name: l.name.clone(),
            tags: Vec::new(),
            node_name: "local".into(),
            node_id: String::new(),
            source,
            capabilities: Default::default(),
        };
        let mut access = Access::fixed(&l.roles, &l.scopes, "config [local]");
        if let Some(files) = &l.files {
            access.narrow_roots(&files.roots, "config [local]");
        }
        Self::new(Arc::new(principal), Arc::new(access))
    }

    /// The key of this caller's rate limits, repeated-denial block and
    /// session ownership: the principal AND its node. Tagged nodes share
    /// one principal id (`tags:tag:ci`), so keying by the id alone would let
    /// one noisy node block every node with that tag and use their sessions;
    /// policy still matches on the principal (user or tags).
    pub fn rate_key(&self) -> String {
        let p = &self.principal;
        if p.node_id.is_empty() { p.id.clone() } else { format!("{}@{}", p.id, p.node_id) }
    }

    /// The authorization decision for one tool.
    pub fn check(&self, tool: &str, scope: Option<Scope>) -> Decision {
        self.access.check(tool, scope, self.token_scopes.as_deref())
    }

    /// Effective scopes: identity scopes, narrowed by the token if any.
    pub fn effective_scopes(&self) -> BTreeSet<Scope> {
        self.access
            .scopes
            .keys()
            .copied()
            .filter(|s| self.token_scopes.as_ref().is_none_or(|t| t.contains(s)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(node_id: &str) -> Caller {
        let principal = Principal {
            id: "tags:tag:ci".into(),
            login_name: String::new(),
            display_name: String::new(),
            tags: vec!["tag:ci".into()],
            node_name: format!("{node_id}.tailnet.test"),
            node_id: node_id.into(),
            source: "100.64.0.7:1".parse().expect("addr"),
            capabilities: Default::default(),
        };
        Caller::new(Arc::new(principal), Arc::new(Access::default()))
    }

    /// Two nodes with one tag are one principal for policy but two keys
    /// for limits, blocks and sessions.
    #[test]
    fn rate_key_separates_nodes_of_one_principal() {
        let (a, b) = (tagged("nA1"), tagged("nB2"));
        assert_eq!(a.principal.id, b.principal.id);
        assert_ne!(a.rate_key(), b.rate_key());
        assert_eq!(a.rate_key(), "tags:tag:ci@nA1");
        assert_eq!(a.rate_key(), tagged("nA1").rate_key(), "stable for one node");
        let local = Caller::local(&LocalPrincipal::default(), "127.0.0.1:1".parse().expect("addr"));
        assert_eq!(local.rate_key(), "local:local", "no node id: the principal id");
    }
}
