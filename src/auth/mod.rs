//! Who may do what, one file per concern:
//! - `identity`: the [`identity::Principal`] from a tailnet WhoIs
//! - `scopes`: scope and role names
//! - `policy`: grants and local policy → [`policy::Access`]
//! - `caller`: principal + access (+ token scopes) attached to a request
//! - `ratelimit`: per-principal rate limits and the repeated-denial block

pub mod caller;
pub mod identity;
pub mod oauth;
pub mod policy;
pub mod ratelimit;
pub mod scopes;
