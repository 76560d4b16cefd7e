//! Who may do what: identity from the tailnet (`identity`), and in later
//! steps policy (grants, app caps, local policy → scopes) and OAuth.

pub mod identity;
