//! Changing files (`files:write`, only in `read_write` roots; none of these
//! tools is offered when no root is `read_write`): `file_write` (atomic
//! create/overwrite, append, compare-and-swap, mode bits), `file_mkdir`,
//! `file_move` (within one root, no replace unless asked), `file_delete`
//! (recursive only where the root allows it). The work is done by
//! [`crate::host::files::write`] on fds from `Root::open_parent`; the spine
//! writes the intent record before any of it runs, and `file_write`'s
//! `audit` output (path, bytes, old and new sha256) lands in the
//! completion record (see [`crate::mcp::contract::AUDIT_OUTPUT_KEY`]).

use base64::Engine as _;
use rmcp::handler::server::common::Extension;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::caller::Caller;
use crate::auth::scopes::Scope;
use crate::host::files::write::{self as fw, MAX_WRITE_BYTES, WriteMode};
use crate::host::files::{Kind, RelPath, Root};
use crate::mcp::{ToolError, ToolSpec};
use crate::tools::TailopsServer;

pub const SPECS: &[ToolSpec] = &[
    ToolSpec { name: "file_write", domain: "files", scope: Some(Scope::FilesWrite), writes: true },
    ToolSpec { name: "file_mkdir", domain: "files", scope: Some(Scope::FilesWrite), writes: true },
    ToolSpec { name: "file_move", domain: "files", scope: Some(Scope::FilesWrite), writes: true },
    ToolSpec { name: "file_delete", domain: "files", scope: Some(Scope::FilesWrite), writes: true },
];

/// How `content` is written in the request.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// UTF-8 text, written as is (default).
    #[default]
    Text,
    /// Standard base64 (with padding): any bytes (uploads).
    Base64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteInput {
    /// `root:relative/path` of the file (its directory must exist).
    pub path: String,
    /// The content, as `encoding` says (at most 16 MiB once decoded).
    pub content: String,
    /// `text` (default) or `base64`.
    #[serde(default)]
    pub encoding: Encoding,
    /// `create` (default; fails if the file exists), `overwrite` (atomic
    /// replace, creates when missing) or `append` (not atomic).
    #[serde(default)]
    pub mode: WriteMode,
    /// Permission bits in octal, e.g. `"0644"` (at most 0777: no setuid,
    /// setgid or sticky). Default: the old file's bits on overwrite, 0644
    /// for a new file; append changes them only when given.
    #[serde(default)]
    pub permissions: Option<String>,
    /// Compare-and-swap: the sha256 the current content must have (else
    /// `conflict`, naming the current sha256). Not with `create`.
    #[serde(default)]
    pub expected_sha256: Option<String>,
}

/// What `file_write` recorded in the audit log.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WriteAudit {
    pub path: String,
    pub bytes_written: u64,
    pub old_sha256: Option<String>,
    pub new_sha256: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct WriteOutput {
    pub summary: String,
    pub path: String,
    pub mode: WriteMode,
    pub bytes_written: u64,
    /// True when the file did not exist before.
    pub created: bool,
    /// sha256 of the content before (None when new, or over 256 MiB).
    pub old_sha256: Option<String>,
    /// sha256 of the content now (None only for an append to a file over
    /// 256 MiB).
    pub new_sha256: Option<String>,
    /// Permission bits now, octal.
    pub permissions: String,
    /// The part of this result the audit log's completion record carries.
    pub audit: WriteAudit,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MkdirInput {
    /// `root:relative/dir` to create.
    pub path: String,
    /// Also create missing directories above it (up to 64 levels); an
    /// existing directory is then fine.
    #[serde(default)]
    pub parents: bool,
    /// Permission bits in octal (default `"0755"`, at most 0777).
    #[serde(default)]
    pub permissions: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MkdirOutput {
    pub summary: String,
    /// Directories created, shallowest first (empty when all existed).
    pub created: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveInput {
    /// `root:relative/path` to move (a symlink is moved, not followed).
    pub from: String,
    /// `root:relative/path` to move it to, in the same root.
    pub to: String,
    /// Replace an existing destination (a file, or an empty directory).
    /// Default false: an existing destination is a `conflict`.
    #[serde(default)]
    pub overwrite: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MoveOutput {
    pub summary: String,
    pub from: String,
    pub to: String,
    pub kind: Kind,
    /// True when an existing destination was replaced.
    pub replaced: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteInput {
    /// `root:relative/path` of a file, symlink (the link itself) or
    /// directory.
    pub path: String,
    /// Delete a non-empty directory with everything in it (only on roots
    /// with `allow_recursive_delete`; at most 10,000 entries, all visible).
    #[serde(default)]
    pub recursive: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeleteOutput {
    pub summary: String,
    pub path: String,
    pub kind: Kind,
    /// Entries removed, the named one included.
    pub entries_removed: usize,
}

/// The bytes `input.content` stands for, refused before decoding when it
/// cannot fit [`MAX_WRITE_BYTES`].
fn decode(input: &WriteInput) -> Result<Vec<u8>, ToolError> {
    let too_big = |n: usize| {
        ToolError::invalid_input(
            format!("content is {n} bytes"),
            format!("file_write writes at most {MAX_WRITE_BYTES} bytes per call (append the rest)"),
        )
    };
    match input.encoding {
        Encoding::Text => {
            if input.content.len() > MAX_WRITE_BYTES {
                return Err(too_big(input.content.len()));
            }
            Ok(input.content.as_bytes().to_vec())
        }
        Encoding::Base64 => {
            // 4 characters carry 3 bytes: anything longer than this cannot
            // decode to MAX_WRITE_BYTES or less.
            let max_chars = MAX_WRITE_BYTES.div_ceil(3).saturating_mul(4);
            if input.content.len() > max_chars {
                return Err(too_big(input.content.len() / 4 * 3));
            }
            let data = base64::engine::general_purpose::STANDARD.decode(input.content.as_bytes()).map_err(|e| {
                ToolError::invalid_input(
                    format!("content is not valid base64 ({e})"),
                    "use standard base64 with padding",
                )
            })?;
            if data.len() > MAX_WRITE_BYTES {
                return Err(too_big(data.len()));
            }
            Ok(data)
        }
    }
}

fn join_err(e: tokio::task::JoinError) -> ToolError {
    ToolError::internal(e.to_string())
}

fn show_all(root: &Root, rels: &[RelPath]) -> Vec<String> {
    rels.iter().map(|r| root.show(r)).collect()
}

#[tool_router(router = files_write_router, vis = "pub(crate)")]
impl TailopsServer {
    #[tool(
        name = "file_write",
        description = "Write a file in a read_write root: mode create (default, fails if it exists), overwrite (atomic: the file is always entirely old or entirely new) or append. Content as text or base64 (uploads), at most 16 MiB. Optional expected_sha256 for compare-and-swap, optional permission bits. Returns bytes written and the old and new sha256.",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn file_write(
        &self,
        Parameters(input): Parameters<WriteInput>,
        Extension(caller): Extension<Caller>,
    ) -> Result<Json<WriteOutput>, ToolError> {
        let perm = input.permissions.as_deref().map(fw::parse_mode).transpose()?;
        let expected = input.expected_sha256.as_deref().map(fw::parse_sha256).transpose()?;
        let data = decode(&input)?;
        let (root, rel) = self.file_path(&caller, &input.path)?;
        let how = input.mode;
        tokio::task::spawn_blocking(move || {
            let w = fw::write_file(&root, &rel, &data, how, perm, expected.as_deref())?;
            let path = root.show(&rel);
            let summary = format!(
                "{} {} bytes to {path}{}",
                match how {
                    WriteMode::Append => "appended",
                    _ if w.created => "created with",
                    _ => "replaced with",
                },
                w.bytes,
                if w.created && how == WriteMode::Append { " (new file)" } else { "" }
            );
            Ok(Json(WriteOutput {
                summary,
                path: path.clone(),
                mode: how,
                bytes_written: w.bytes,
                created: w.created,
                old_sha256: w.old_sha256.clone(),
                new_sha256: w.new_sha256.clone(),
                permissions: format!("{:04o}", w.mode),
                audit: WriteAudit { path, bytes_written: w.bytes, old_sha256: w.old_sha256, new_sha256: w.new_sha256 },
            }))
        })
        .await
        .map_err(join_err)?
    }

    #[tool(
        name = "file_mkdir",
        description = "Create a directory in a read_write root; with parents: true also the missing ones above it (like mkdir -p, up to 64 levels). Optional permission bits (default 0755).",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn file_mkdir(
        &self,
        Parameters(input): Parameters<MkdirInput>,
        Extension(caller): Extension<Caller>,
    ) -> Result<Json<MkdirOutput>, ToolError> {
        let perm = input.permissions.as_deref().map(fw::parse_mode).transpose()?;
        let (root, rel) = self.file_path(&caller, &input.path)?;
        tokio::task::spawn_blocking(move || {
            let made = fw::mkdir(&root, &rel, input.parents, perm)?;
            let summary = match made.len() {
                0 => format!("{} already exists", root.show(&rel)),
                n => format!("created {n} director{} up to {}", if n == 1 { "y" } else { "ies" }, root.show(&rel)),
            };
            Ok(Json(MkdirOutput { summary, created: show_all(&root, &made) }))
        })
        .await
        .map_err(join_err)?
    }

    #[tool(
        name = "file_move",
        description = "Move or rename a file, symlink or directory within one read_write root. An existing destination is a conflict unless overwrite: true (then a file replaces a file, a directory only an empty directory). Never moves the root or a directory into itself.",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn file_move(
        &self,
        Parameters(input): Parameters<MoveInput>,
        Extension(caller): Extension<Caller>,
    ) -> Result<Json<MoveOutput>, ToolError> {
        let (root, from) = self.file_path(&caller, &input.from)?;
        let (to_root, to) = self.file_path(&caller, &input.to)?;
        if to_root.name != root.name {
            return Err(ToolError::invalid_input(
                format!("{} and {} are in different roots", root.show(&from), to_root.show(&to)),
                "file_move moves within one root; copy with file_read and file_write across roots",
            ));
        }
        tokio::task::spawn_blocking(move || {
            let m = fw::rename(&root, &from, &to, input.overwrite)?;
            let (f, t) = (root.show(&from), root.show(&to));
            let summary = format!("moved {f} to {t}{}", if m.replaced { " (replaced what was there)" } else { "" });
            Ok(Json(MoveOutput { summary, from: f, to: t, kind: m.kind, replaced: m.replaced }))
        })
        .await
        .map_err(join_err)?
    }

    #[tool(
        name = "file_delete",
        description = "Delete a file, a symlink (the link, never its target) or an empty directory in a read_write root. A non-empty directory only with recursive: true on a root that allows it (at most 10,000 entries, none hidden, never following symlinks).",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn file_delete(
        &self,
        Parameters(input): Parameters<DeleteInput>,
        Extension(caller): Extension<Caller>,
    ) -> Result<Json<DeleteOutput>, ToolError> {
        let (root, rel) = self.file_path(&caller, &input.path)?;
        tokio::task::spawn_blocking(move || {
            let d = fw::delete(&root, &rel, input.recursive)?;
            let path = root.show(&rel);
            let summary = format!("deleted {path} ({} entr{})", d.entries, if d.entries == 1 { "y" } else { "ies" });
            Ok(Json(DeleteOutput { summary, path, kind: d.kind, entries_removed: d.entries }))
        })
        .await
        .map_err(join_err)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::ErrorCategory;

    fn input(content: String, encoding: Encoding) -> WriteInput {
        WriteInput {
            path: "w:f".into(),
            content,
            encoding,
            mode: WriteMode::Create,
            permissions: None,
            expected_sha256: None,
        }
    }

    #[test]
    fn content_size_at_the_cap_in_both_encodings() {
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
        assert_eq!(decode(&input("a".repeat(MAX_WRITE_BYTES), Encoding::Text)).expect("at").len(), MAX_WRITE_BYTES);
        let e = decode(&input("a".repeat(MAX_WRITE_BYTES + 1), Encoding::Text)).expect_err("over");
        assert_eq!(e.category, ErrorCategory::InvalidInput);
        assert_eq!(decode(&input(b64(MAX_WRITE_BYTES), Encoding::Base64)).expect("at").len(), MAX_WRITE_BYTES);
        let e = decode(&input(b64(MAX_WRITE_BYTES + 1), Encoding::Base64)).expect_err("over");
        assert_eq!(e.category, ErrorCategory::InvalidInput);
        let e = decode(&input("not base64!".into(), Encoding::Base64)).expect_err("garbage");
        assert_eq!(e.category, ErrorCategory::InvalidInput);
    }
}
