//! Docker's use of the one redaction module (`crate::redact`): the same
//! rules, with the output caps of the Docker views applied first (only what
//! will be shown is redacted and returned).

use std::collections::{BTreeMap, HashMap};

use super::limits::{MAX_ARGV, MAX_ENTRIES};
pub(super) use crate::redact::redact_line;

/// `NAME=value` env entries (at most [`MAX_ENTRIES`]); values hidden except
/// for a few harmless names. Returns the entries and how many were hidden.
pub(super) fn redact_env(env: &[String], reveal: bool) -> (Vec<String>, usize) {
    crate::redact::redact_env(&env[..env.len().min(MAX_ENTRIES)], reveal)
}

/// Labels (at most [`MAX_ENTRIES`]), secret-named values hidden.
pub(super) fn redact_labels(labels: &HashMap<String, String>, reveal: bool) -> BTreeMap<String, String> {
    crate::redact::redact_labels(labels.iter().take(MAX_ENTRIES), reveal)
}

/// A command vector (at most [`MAX_ARGV`] arguments), secrets redacted.
pub(super) fn redact_argv(args: &[String], reveal: bool) -> Vec<String> {
    crate::redact::redact_command(&args[..args.len().min(MAX_ARGV)], reveal)
}
