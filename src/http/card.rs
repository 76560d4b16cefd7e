//! The MCP Server Card (SEP-2127) at `/.well-known/mcp/server-card.json`:
//! what this server is, where its MCP endpoint is, which protocol
//! revisions it speaks and how callers are authenticated — so a client
//! that knows only the node's name can set itself up.
//!
//! Served on the tailnet listener only: in dev-listen mode it answers 404
//! (a loopback dev server is nobody's discovery target). Like every route
//! it sits behind the identity middleware, so only tailnet peers with a
//! known identity read it (WhoIs first); it names no tool and no grant.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AppState, IdentitySource, error};

/// The published schema the card follows.
pub const SCHEMA: &str = "https://static.modelcontextprotocol.io/schemas/v1/server-card.schema.json";
/// Protocol revisions `/mcp` serves.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2026-07-28"];
/// Where our own fields live in `_meta`.
const META: &str = "dev.tailops/auth";

/// `GET /.well-known/mcp/server-card.json`.
pub(super) async fn server_card(
    State(state): State<AppState>,
    tls: Option<axum::Extension<super::tls::Https>>,
    headers: HeaderMap,
) -> Response {
    if !matches!(&*state.identity, IdentitySource::Tailnet(_)) {
        return error(StatusCode::NOT_FOUND, "not_found", "the server card is served on the tailnet only", "");
    }
    // The Host header already passed the allow-list (identify middleware).
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or(&state.spine.node_name).to_string();
    let oauth = state.oauth.as_ref().map(|o| (o.cfg.resource.as_str(), o.metadata_url.as_str()));
    Json(card(&state.spine.node_name, &host, tls.is_some(), oauth)).into_response()
}

/// The card for node `node` (MagicDNS name) reached as `host` (over TLS
/// when `https`); `oauth` is the resource and its RFC 9728 metadata URL
/// when OAuth is on.
pub fn card(node: &str, host: &str, https: bool, oauth: Option<(&str, &str)>) -> Value {
    let reversed: Vec<&str> = node.split('.').filter(|p| !p.is_empty()).rev().collect();
    let url = format!("{}://{host}/mcp", if https { "https" } else { "http" });
    let mut auth = json!({
        "tailnet_identity": {
            "required": true,
            "how": "the caller's tailnet identity (WhoIs: user login or tags, node, app capabilities from ACL grants) decides its roles and scopes; there is no login step",
        },
    });
    auth["oauth"] = match oauth {
        Some((resource, metadata)) => json!({
            "required": true,
            "resource": if resource.is_empty() { url.as_str() } else { resource },
            "protected_resource_metadata": metadata,
            "narrows": "a bearer token's scopes narrow what the tailnet identity grants; they never widen it",
        }),
        None => json!({ "required": false }),
    };
    json!({
        "$schema": SCHEMA,
        "name": format!("{}/tailops", reversed.join(".")),
        "title": format!("TailOps on {node}"),
        "description": "Operate this Linux host over MCP: system metrics, processes, systemd services and journal, Docker, files in configured roots; every call authorized by tailnet identity, rate limited and audited.",
        "version": env!("CARGO_PKG_VERSION"),
        "remotes": [{
            "type": "streamable-http",
            "url": url,
            "supportedProtocolVersions": PROTOCOL_VERSIONS,
        }],
        "_meta": { META: auth },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_names_the_node_endpoint_and_auth() {
        let c = card("ops1.tailnet.test", "ops1.tailnet.test", false, None);
        assert_eq!(c["name"], "test.tailnet.ops1/tailops");
        assert_eq!(c["remotes"][0]["url"], "http://ops1.tailnet.test/mcp");
        assert_eq!(c["remotes"][0]["type"], "streamable-http");
        assert_eq!(c["_meta"][META]["oauth"]["required"], false);
        assert_eq!(c["_meta"][META]["tailnet_identity"]["required"], true);
        let c = card("ops1.tailnet.test", "ops1.tailnet.test", true, None);
        assert_eq!(c["remotes"][0]["url"], "https://ops1.tailnet.test/mcp");
    }
}
