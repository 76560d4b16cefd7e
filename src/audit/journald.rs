//! The optional second copy of every audit record in the systemd journal.
//!
//! Why: the JSONL chain shows tampering, but someone who can write the file
//! can also rewrite it whole. A journal sealed with Forward Secure Sealing
//! (`journalctl --setup-keys`, checked by `journalctl --verify`) is an
//! independent store that root on the host cannot silently rewrite after the
//! fact, and each entry carries the record's `seq` and `hash`: comparing
//! them with the JSONL file proves the file is the one that was written.
//!
//! The entry is sent over journald's native protocol: one unix datagram to
//! `/run/systemd/journal/socket`, made of `KEY=value\n` lines, or for a value
//! containing a newline the binary-safe form `KEY\n` + 64-bit little-endian
//! length + value + `\n` (so a caller-chosen tool name with a newline cannot
//! forge a field). Sends never block the writer (`MSG_DONTWAIT`): when the
//! socket is full or gone the entry is counted as dropped and the JSONL log
//! is unaffected. Entries hold no arguments (the journal is often readable
//! by a wider group than the 0600 audit file), and every value is capped at
//! [`MAX_FIELD_BYTES`](super::MAX_FIELD_BYTES) by the record format, so an
//! entry stays far below the datagram size limit and the memfd fallback of
//! the protocol is never needed.
//!
//! Hand-written (about 40 lines) rather than a crate: `tracing-journald` and
//! `systemd-journal-logger` are loggers for a facade (no per-entry drop
//! count, blocking sends), `libsystemd` pulls in `nix`; what we need is one
//! non-blocking `sendto`.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::AuditError;

/// Where journald listens for native-protocol datagrams.
pub const DEFAULT_JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";

/// `SYSLOG_IDENTIFIER` of every entry (`journalctl -t tailops-audit`).
pub const SYSLOG_IDENTIFIER: &str = "tailops-audit";

/// `[audit] journald`.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JournaldMode {
    /// Copy to the journal when its socket exists at start.
    #[default]
    Auto,
    /// Copy to the journal; start fails when the socket does not exist.
    On,
    /// No copy.
    Off,
}

/// The fields of one record the journal entry carries.
pub(super) struct Entry<'a> {
    pub seq: u64,
    pub hash: &'a str,
    pub prev: &'a str,
    pub kind: &'a str,
    pub principal: Option<&'a str>,
    pub tool: Option<&'a str>,
    pub decision: Option<&'a str>,
    pub outcome: Option<&'a str>,
}

/// A connected-by-path datagram socket to journald.
pub(super) struct Journal {
    sock: UnixDatagram,
    socket: PathBuf,
}

impl Journal {
    /// The journal to copy to, per `mode`; `None` when off (or `auto` and no
    /// socket).
    pub(super) fn from_config(mode: JournaldMode, socket: &Path) -> Result<Option<Journal>, AuditError> {
        let present = std::fs::metadata(socket).is_ok_and(|m| m.file_type().is_socket());
        match (mode, present) {
            (JournaldMode::Off, _) | (JournaldMode::Auto, false) => return Ok(None),
            (JournaldMode::On, false) => {
                return Err(AuditError::Config(format!(
                    "journald = \"on\" but {} is not a socket (is systemd-journald running? set journald = \"auto\" or \"off\")",
                    socket.display()
                )));
            }
            _ => {}
        }
        let sock = UnixDatagram::unbound()?;
        // MSG_DONTWAIT for every send: the writer never waits for journald.
        sock.set_nonblocking(true)?;
        tracing::info!(socket = %socket.display(), "audit records are copied to the systemd journal");
        Ok(Some(Journal { sock, socket: socket.to_path_buf() }))
    }

    pub(super) fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends one entry; an error means it was dropped.
    pub(super) fn send(&self, e: &Entry<'_>) -> io::Result<()> {
        let n = self.sock.send_to(&encode(e), &self.socket)?;
        if n == 0 { Err(io::Error::other("short datagram send")) } else { Ok(()) }
    }
}

/// The datagram for `e` in the native protocol.
pub(super) fn encode(e: &Entry<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let seq = e.seq.to_string();
    let priority = match (e.kind, e.decision) {
        ("anomaly", _) => "4",
        (_, Some("deny" | "rate_limited" | "step_up")) => "5",
        _ => "6",
    };
    let mut message = format!("audit seq={seq} {}", e.kind);
    for (k, v) in [("tool", e.tool), ("principal", e.principal), ("decision", e.decision), ("outcome", e.outcome)] {
        if let Some(v) = v {
            message.push_str(&format!(" {k}={v}"));
        }
    }
    // MESSAGE is one line whatever a caller put in a tool name.
    let message: String = message.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    field(&mut out, "SYSLOG_IDENTIFIER", SYSLOG_IDENTIFIER);
    field(&mut out, "PRIORITY", priority);
    field(&mut out, "MESSAGE", &message);
    field(&mut out, "TAILOPS_SEQ", &seq);
    field(&mut out, "TAILOPS_HASH", e.hash);
    field(&mut out, "TAILOPS_PREV", e.prev);
    field(&mut out, "TAILOPS_KIND", e.kind);
    for (k, v) in [
        ("TAILOPS_PRINCIPAL", e.principal),
        ("TAILOPS_TOOL", e.tool),
        ("TAILOPS_DECISION", e.decision),
        ("TAILOPS_OUTCOME", e.outcome),
    ] {
        if let Some(v) = v {
            field(&mut out, k, v);
        }
    }
    out
}

/// One field: `KEY=value\n`, or the length-prefixed form when the value has
/// a newline.
fn field(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parser journald applies (see systemd's `journald-native.c`).
    fn parse(mut d: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        while !d.is_empty() {
            let nl = d.iter().position(|b| *b == b'\n').expect("line end");
            let line = &d[..nl];
            if let Some(eq) = line.iter().position(|b| *b == b'=') {
                out.push((String::from_utf8(line[..eq].to_vec()).expect("key"), line[eq + 1..].to_vec()));
                d = &d[nl + 1..];
            } else {
                let key = String::from_utf8(line.to_vec()).expect("key");
                let len = u64::from_le_bytes(d[nl + 1..nl + 9].try_into().expect("len")) as usize;
                let v = &d[nl + 9..nl + 9 + len];
                assert_eq!(d[nl + 9 + len], b'\n');
                out.push((key, v.to_vec()));
                d = &d[nl + 10 + len..];
            }
        }
        out
    }

    #[test]
    fn newline_in_a_value_cannot_forge_fields() {
        let tool = "x\nTAILOPS_DECISION=allow\nPRIORITY=0";
        let e = Entry {
            seq: 7,
            hash: "ab",
            prev: "cd",
            kind: "decision",
            principal: Some("local:dev"),
            tool: Some(tool),
            decision: Some("deny"),
            outcome: None,
        };
        let fields = parse(&encode(&e));
        let get = |k: &str| fields.iter().filter(|(key, _)| key == k).map(|(_, v)| v.clone()).collect::<Vec<_>>();
        assert_eq!(get("TAILOPS_TOOL"), vec![tool.as_bytes().to_vec()]);
        assert_eq!(get("TAILOPS_DECISION"), vec![b"deny".to_vec()]);
        assert_eq!(get("PRIORITY"), vec![b"5".to_vec()]);
        assert_eq!(get("TAILOPS_SEQ"), vec![b"7".to_vec()]);
        let msg = String::from_utf8(get("MESSAGE").remove(0)).expect("utf8");
        assert!(!msg.contains('\n') && msg.contains("tool=x?TAILOPS_DECISION=allow?PRIORITY=0"), "{msg}");
        assert!(get("TAILOPS_OUTCOME").is_empty());
    }

    #[test]
    fn modes() {
        let dir = tempfile::tempdir().expect("tmp");
        let missing = dir.path().join("nope");
        assert!(Journal::from_config(JournaldMode::Auto, &missing).expect("auto").is_none());
        assert!(Journal::from_config(JournaldMode::Off, &missing).expect("off").is_none());
        let err = Journal::from_config(JournaldMode::On, &missing).err().expect("on without socket");
        assert!(err.to_string().contains("not a socket"), "{err}");
        // A regular file is not a journal.
        std::fs::write(&missing, b"").expect("file");
        assert!(Journal::from_config(JournaldMode::Auto, &missing).expect("auto").is_none());
        let path = dir.path().join("sock");
        let rx = UnixDatagram::bind(&path).expect("bind");
        let j = Journal::from_config(JournaldMode::Auto, &path).expect("auto").expect("present");
        let e = Entry {
            seq: 1,
            hash: "h",
            prev: "p",
            kind: "lifecycle",
            principal: None,
            tool: None,
            decision: None,
            outcome: None,
        };
        j.send(&e).expect("send");
        let mut buf = [0u8; 4096];
        let n = rx.recv(&mut buf).expect("recv");
        let fields = parse(&buf[..n]);
        assert!(fields.contains(&("SYSLOG_IDENTIFIER".into(), b"tailops-audit".to_vec())), "{fields:?}");
        // A full socket drops instead of blocking.
        let mut dropped = false;
        for _ in 0..100_000 {
            if let Err(e) = j.send(&e) {
                assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
                dropped = true;
                break;
            }
        }
        assert!(dropped, "an undrained socket must fill and drop");
    }
}
