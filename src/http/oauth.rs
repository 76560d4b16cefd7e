//! The OAuth 2.1 resource-server face of the HTTP side: the
//! `WWW-Authenticate` challenge and the RFC 9728 metadata routes. Token
//! validation itself lives in `auth::oauth`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{AppState, error, rpc_error};
use crate::auth::oauth::{Connector, OAuthConfig, TokenValidator, protected_resource_metadata, www_authenticate};

/// The OAuth resource-server part, when enabled.
pub struct OAuthGate {
    pub validator: TokenValidator,
    pub cfg: OAuthConfig,
    /// URL of our RFC 9728 metadata, for `WWW-Authenticate`.
    pub metadata_url: String,
}

impl OAuthGate {
    /// `resource` must already be filled in.
    pub fn new(cfg: OAuthConfig, connector: Arc<dyn Connector>) -> Result<Self, String> {
        let origin = match cfg.resource.find("://").map(|i| i + 3) {
            Some(start) => {
                let end = cfg.resource[start..].find('/').map(|e| start + e).unwrap_or(cfg.resource.len());
                cfg.resource[..end].to_string()
            }
            None => return Err(format!("oauth.resource {:?} is not a URL", cfg.resource)),
        };
        let metadata_url = format!("{origin}/.well-known/oauth-protected-resource/mcp");
        let validator = TokenValidator::new(cfg.clone(), connector)?;
        Ok(Self { validator, cfg, metadata_url })
    }

    pub(super) fn challenge(
        &self,
        status: StatusCode,
        scope: Option<&str>,
        error: Option<(&str, &str)>,
        message: &str,
    ) -> Response {
        let mut r = rpc_error(status, Value::Null, -32001, message, Value::Null);
        if let Ok(h) = HeaderValue::from_str(&www_authenticate(&self.metadata_url, scope, error)) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, h);
        }
        r
    }
}

/// RFC 9728 metadata (404 when OAuth is off).
pub(super) async fn resource_metadata(State(state): State<AppState>) -> Response {
    match &state.oauth {
        Some(o) => Json(protected_resource_metadata(&o.cfg)).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "OAuth is not enabled on this server", ""),
    }
}
