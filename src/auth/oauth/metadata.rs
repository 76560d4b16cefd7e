//! RFC 9728 OAuth 2.0 protected resource metadata.

use super::OAuthConfig;

/// RFC 9728 protected resource metadata for `cfg`.
pub fn protected_resource_metadata(cfg: &OAuthConfig) -> serde_json::Value {
    let servers: Vec<&str> = if cfg.authorization_servers.is_empty() {
        cfg.issuer.iter().map(String::as_str).collect()
    } else {
        cfg.authorization_servers.iter().map(String::as_str).collect()
    };
    let mut doc = serde_json::json!({
        "resource": cfg.resource,
        "authorization_servers": servers,
        "bearer_methods_supported": ["header"],
        "resource_name": "tailops",
    });
    if !cfg.scopes_supported.is_empty()
        && let Some(obj) = doc.as_object_mut()
    {
        obj.insert("scopes_supported".into(), serde_json::json!(cfg.scopes_supported));
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    use crate::auth::oauth::testkit::{ISSUER, RESOURCE};

    #[test]
    fn metadata_shape() {
        let cfg = OAuthConfig {
            enabled: true,
            resource: RESOURCE.into(),
            authorization_servers: vec![ISSUER.into()],
            scopes_supported: vec!["files:read".into(), "system:read".into()],
            ..OAuthConfig::default()
        };
        assert_eq!(
            protected_resource_metadata(&cfg),
            json!({
                "resource": RESOURCE,
                "authorization_servers": [ISSUER],
                "scopes_supported": ["files:read", "system:read"],
                "bearer_methods_supported": ["header"],
                "resource_name": "tailops",
            })
        );
        // No scopes: the member is left out; no servers: the issuer is used.
        let cfg = OAuthConfig { resource: RESOURCE.into(), issuer: Some(ISSUER.into()), ..OAuthConfig::default() };
        let doc = protected_resource_metadata(&cfg);
        assert_eq!(doc["authorization_servers"], json!([ISSUER]));
        assert!(doc.get("scopes_supported").is_none());
    }
}
