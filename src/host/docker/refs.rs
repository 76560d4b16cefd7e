//! Checks of the Docker references a caller names: container names and
//! ids, image references, label filters. Each returns the cleaned value or
//! an `invalid_input` error saying which form is expected.

use super::limits::MAX_REF_LEN;
use crate::mcp::contract::ToolError;

/// A container name or id: `[A-Za-z0-9][A-Za-z0-9_.-]*`, a leading `/`
/// allowed (Docker's own name form).
pub(super) fn container_ref(s: &str) -> Result<String, ToolError> {
    let t = s.trim().trim_start_matches('/');
    let ok = !t.is_empty()
        && t.len() <= MAX_REF_LEN
        && t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(t.to_string())
    } else {
        Err(ToolError::invalid_input(
            format!("{s:?} is not a container name or id"),
            "use a name or id from container_list",
        ))
    }
}

/// An image reference or id: `name[:tag][@digest]` with registry host and
/// path components; no `..`, no empty components.
pub(super) fn image_ref(s: &str) -> Result<String, ToolError> {
    let t = s.trim();
    let ok = !t.is_empty()
        && t.len() <= MAX_REF_LEN
        && t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | ':' | '@'))
        && !t.contains("..")
        && !t.contains("//")
        && !t.ends_with('/');
    if ok {
        Ok(t.to_string())
    } else {
        Err(ToolError::invalid_input(
            format!("{s:?} is not an image reference"),
            "use name[:tag] or name@sha256:…, e.g. registry.example:5000/team/app:1.2",
        ))
    }
}

/// `key` or `key=value` label filters.
pub(super) fn label_filters(labels: &[String]) -> Result<Vec<String>, ToolError> {
    labels
        .iter()
        .map(|l| {
            let key = l.split('=').next().unwrap_or_default();
            if key.is_empty() || l.len() > MAX_REF_LEN || l.chars().any(|c| c.is_control()) {
                Err(ToolError::invalid_input(format!("bad label filter {l:?}"), "use key or key=value"))
            } else {
                Ok(l.clone())
            }
        })
        .collect()
}

/// Splits `name[:tag]` / `name@digest` into (name, tag-or-digest).
pub(super) fn split_reference(r: &str) -> (String, String) {
    if let Some((name, digest)) = r.split_once('@') {
        return (name.to_string(), digest.to_string());
    }
    let slash = r.rfind('/').map(|i| i + 1).unwrap_or(0);
    match r[slash..].rfind(':') {
        Some(i) => (r[..slash + i].to_string(), r[slash + i + 1..].to_string()),
        None => (r.to_string(), "latest".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_validated() {
        assert_eq!(container_ref("/web-1").ok(), Some("web-1".into()));
        assert!(container_ref("a/../../images").is_err());
        assert!(container_ref("").is_err());
        assert!(container_ref("x?y").is_err());
        assert!(image_ref("127.0.0.1:5000/team/app:1.2").is_ok());
        assert!(image_ref("busybox@sha256:0123abcd").is_ok());
        assert!(image_ref("../etc").is_err());
        assert!(image_ref("a/../b").is_err());
        assert!(image_ref("a b").is_err());
    }

    #[test]
    fn references_split() {
        assert_eq!(split_reference("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(split_reference("127.0.0.1:5000/x/y:2"), ("127.0.0.1:5000/x/y".into(), "2".into()));
        assert_eq!(split_reference("127.0.0.1:5000/x/y"), ("127.0.0.1:5000/x/y".into(), "latest".into()));
        assert_eq!(split_reference("a/b@sha256:ab"), ("a/b".into(), "sha256:ab".into()));
    }
}
