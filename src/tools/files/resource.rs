//! Files as MCP resources: a `file://{root}/{+path}` template per root the
//! caller can see; `resources/read` of such a URI is `file_read` of
//! `root:path` (same admission, audit, root narrowing, deny list and
//! redaction — raw is never served through resources); and
//! `resources/subscribe` watches the file (inotify on its parent, see
//! `host::files::watch`) and sends `notifications/resources/updated`, at
//! most one per [`UPDATE_MIN_INTERVAL`] per subscription.
//!
//! URIs: `file://ROOT/REL/PATH`, path components percent-decoded (`%20`).
//! The root name is the URI's authority, so `file:///etc/passwd` (empty
//! authority) names no root.

use std::time::Duration;

use base64::Engine;
use rmcp::ErrorData;
use rmcp::RoleServer;
use rmcp::model::{MetaObject, ResourceContents, ResourceTemplate, ResourceUpdatedNotificationParam};
use rmcp::service::Peer;
use serde_json::json;

use super::read::{Encoding, MAX_READ_BYTES, ReadInput, read_file};
use crate::auth::caller::Caller;
use crate::auth::policy::Decision;
use crate::auth::scopes::Scope;
use crate::mcp::{ErrorCategory, ToolError};
use crate::tools::TailopsServer;

pub const SCHEME: &str = "file://";
/// The tool whose scope and spec authorize (and whose limits bound)
/// reading and subscribing to file resources.
pub const TOOL: &str = "file_read";
/// Least time between two `resources/updated` of one subscription (a
/// busy log wakes its subscribers at most this often).
pub const UPDATE_MIN_INTERVAL: Duration = Duration::from_millis(250);
/// How often a subscription checks that its session still exists (a
/// session that ended frees its subscriptions within this time even when
/// the file never changes).
pub const LIVENESS_CHECK: Duration = Duration::from_secs(10);

/// Whether `uri` is a file resource URI.
pub fn owns(uri: &str) -> bool {
    uri.starts_with(SCHEME)
}

/// `file://root/rel` → `root:rel`.
pub fn tool_path(uri: &str) -> Result<String, ToolError> {
    let bad = |why: &str| {
        ToolError::invalid_input(
            why.to_string(),
            "file resource URIs are file://ROOT/relative/path (resources/templates/list shows the roots)",
        )
    };
    let rest = uri.strip_prefix(SCHEME).ok_or_else(|| bad("not a file:// URI"))?;
    if rest.contains(['?', '#']) {
        return Err(bad("file resource URIs take no query or fragment"));
    }
    let (root, rel) = rest.split_once('/').unwrap_or((rest, ""));
    if root.is_empty() {
        return Err(bad("the URI names no root (file:///… is a host path, not a root)"));
    }
    Ok(format!("{}:{}", decode(root)?, decode(rel)?))
}

/// Percent-decoding; a `%` not followed by two hex digits, or bytes that
/// are not UTF-8, are refused.
fn decode(s: &str) -> Result<String, ToolError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let v = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(|| {
                ToolError::invalid_input("bad percent-escape in the URI", "escape bytes as %XX (two hex digits)")
            })?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ToolError::invalid_input("the URI's path is not UTF-8", ""))
}

/// The resource errors as JSON-RPC errors: not_found is -32002 (resource
/// not found), bad input -32602, everything else by category in `data`.
pub fn error_data(e: &ToolError, uri: &str) -> ErrorData {
    let data = Some(json!({"uri": uri, "category": e.category.as_str(), "hint": e.hint}));
    match e.category {
        ErrorCategory::NotFound => ErrorData::resource_not_found(e.message.clone(), data),
        ErrorCategory::InvalidInput => ErrorData::invalid_params(e.message.clone(), data),
        ErrorCategory::PermissionDenied | ErrorCategory::Conflict => {
            ErrorData::invalid_request(e.message.clone(), data)
        }
        _ => ErrorData::internal_error(e.message.clone(), data),
    }
}

impl TailopsServer {
    /// One template per root the caller can see (none without files:read).
    pub(crate) fn file_templates(&self, caller: &Caller) -> Vec<ResourceTemplate> {
        if self.spine.spec(TOOL).is_none() || caller.check(TOOL, Some(Scope::FilesRead)) != Decision::Allow {
            return Vec::new();
        }
        let allowed = caller.access.root_names();
        self.files()
            .visible(allowed.as_ref())
            .map(|r| {
                ResourceTemplate::new(format!("{SCHEME}{}/{{+path}}", r.name), format!("files-{}", r.name))
                    .with_title(format!("Files in root {}", r.name))
                    .with_description(format!(
                        "A file in root {} ({:?}): text redacted as file_read returns it (first 1 MiB), binary files as base64. Subscribe for changes.",
                        r.name, r.mode
                    ))
            })
            .collect()
    }

    /// `resources/read` of a file URI (already admitted as `file_read`).
    pub(crate) async fn read_file_resource(
        &self,
        caller: &Caller,
        uri: &str,
    ) -> Result<Vec<ResourceContents>, ToolError> {
        let path = tool_path(uri)?;
        let (root, rel) = self.file_path(caller, &path)?;
        let input = ReadInput {
            path,
            offset: None,
            length: Some(MAX_READ_BYTES),
            from_line: None,
            to_line: None,
            encoding: Encoding::Base64,
            raw: false,
        };
        let out = tokio::task::spawn_blocking(move || read_file(&root, &rel, &input, false))
            .await
            .map_err(|e| ToolError::internal(e.to_string()))??;
        let mut meta = serde_json::Map::new();
        meta.insert("truncated".into(), json!(out.truncated));
        meta.insert("size".into(), json!(out.size));
        if let Some(n) = out.next_offset {
            meta.insert("next_offset".into(), json!(n));
        }
        let contents = if out.binary {
            ResourceContents::BlobResourceContents {
                uri: uri.to_string(),
                mime_type: Some("application/octet-stream".into()),
                blob: out.content,
                meta: Some(MetaObject(meta)),
            }
        } else {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&out.content)
                .map_err(|e| ToolError::internal(e.to_string()))?;
            ResourceContents::TextResourceContents {
                uri: uri.to_string(),
                mime_type: Some("text/plain".into()),
                text: String::from_utf8_lossy(&bytes).into_owned(),
                meta: Some(MetaObject(meta)),
            }
        };
        Ok(vec![contents])
    }

    /// `resources/subscribe`: watches the file for `session` and sends
    /// `notifications/resources/updated` to `peer` on changes.
    pub(crate) async fn subscribe_file(
        &self,
        caller: &Caller,
        session: &str,
        uri: &str,
        peer: Peer<RoleServer>,
    ) -> Result<(), ToolError> {
        let path = tool_path(uri)?;
        let (root, rel) = self.file_path(caller, &path)?;
        let host = self.host.clone();
        let (session, uri) = (session.to_string(), uri.to_string());
        let (s2, u2) = (session.clone(), uri.clone());
        let sub = tokio::task::spawn_blocking(move || {
            // The file must be one this caller may read now; its parent
            // is watched as the root resolved it.
            let open = root.open_file(&rel)?;
            let name = open.resolved.file_name().unwrap_or_default().to_string();
            let parent = open.resolved.parent().unwrap_or_default();
            let dir = root.open_dir(&parent)?;
            host.files.watcher()?.subscribe(&s2, &u2, &dir, &name)
        })
        .await
        .map_err(|e| ToolError::internal(e.to_string()))??;
        let host = self.host.clone();
        tokio::spawn(async move {
            let mut liveness = tokio::time::interval(LIVENESS_CHECK);
            loop {
                tokio::select! {
                    _ = sub.ended.cancelled() => break,
                    _ = sub.changed.notified() => {}
                    _ = liveness.tick() => {
                        if peer.is_transport_closed() {
                            // The session ended (closed, idled out): its
                            // subscriptions stop counting against the caps.
                            if let Ok(w) = host.files.watcher() {
                                w.end_session(&session);
                            }
                            break;
                        }
                        continue;
                    }
                }
                if peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri.clone())).await.is_err() {
                    // The client is gone: its subscriptions go too.
                    if let Ok(w) = host.files.watcher() {
                        w.end_session(&session);
                    }
                    break;
                }
                tokio::time::sleep(UPDATE_MIN_INTERVAL).await;
            }
        });
        Ok(())
    }

    /// `resources/unsubscribe`; false when there was no such subscription.
    pub(crate) fn unsubscribe_file(&self, session: &str, uri: &str) -> bool {
        self.files().watcher().map(|w| w.unsubscribe(session, uri)).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_map_to_tool_paths() {
        assert_eq!(tool_path("file://logs/app/x.log").expect("ok"), "logs:app/x.log");
        assert_eq!(tool_path("file://logs/a%20b.txt").expect("ok"), "logs:a b.txt");
        assert_eq!(tool_path("file://logs").expect("ok"), "logs:");
        for bad in [
            "file:///etc/passwd",
            "http://logs/x",
            "file://logs/x?y=1",
            "file://logs/x#f",
            "file://logs/%zz",
            "file://logs/%2",
            "file://logs/%ff",
        ] {
            assert_eq!(tool_path(bad).expect_err(bad).category, ErrorCategory::InvalidInput, "{bad}");
        }
        // Escapes decode into what the path parser then refuses.
        assert_eq!(tool_path("file://logs/%2e%2e/x").expect("decodes"), "logs:../x");
        assert!(crate::host::files::ToolPath::parse("logs:../x").is_err());
        assert!(crate::host::files::ToolPath::parse(&tool_path("file://logs/a%00b").expect("decodes")).is_err());
    }
}
