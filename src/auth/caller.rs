//! The caller of one request: who (Principal), what they may do (Access),
//! and, when an OAuth token was presented, the token's scopes.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::identity::Principal;
use super::policy::{Access, Decision};
use super::scopes::Scope;

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
