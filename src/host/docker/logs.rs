//! `container_logs`: the daemon's log stream cut into lines, redacted,
//! filtered by grep, the newest kept within a byte cap.

use std::collections::VecDeque;

use bollard::query_parameters as qp;
use futures::StreamExt;

use super::client::{Docker, unavailable};
use super::convert::name_of;
use super::limits::{MAX_LINE_BYTES, MAX_LOG_SCAN_BYTES};
use super::types::{LogLine, LogsOutput};
use crate::mcp::contract::ToolError;
use crate::redact::LineRedactor;

/// A `container_logs` request, its bounds already checked by the caller.
#[derive(Debug)]
pub struct LogsQuery {
    /// Container name or id.
    pub container: String,
    /// The last N lines.
    pub tail: usize,
    /// Only lines after / before this, Unix seconds.
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Streams to include (at least one).
    pub stdout: bool,
    pub stderr: bool,
    /// Return each line's timestamp.
    pub timestamps: bool,
    /// Only lines containing this text (matched after redaction).
    pub grep: Option<String>,
    /// Match `grep` case-insensitively.
    pub ignore_case: bool,
    /// Byte cap of the returned lines; the newest lines are kept.
    pub max_bytes: usize,
}

/// Collects log frames into lines, keeps the newest within a byte cap.
struct LogCollector {
    max_bytes: usize,
    grep: Option<String>,
    ignore_case: bool,
    timestamps: bool,
    lines: VecDeque<LogLine>,
    bytes: usize,
    truncated: bool,
    scanned_bytes: usize,
    scanned_lines: usize,
    /// Partial line per stream (stdout, stderr, console).
    partial: [Vec<u8>; 3],
    /// Redaction state per stream: a PEM key's lines stay hidden up to its
    /// END line.
    redactors: [LineRedactor; 3],
}

impl LogCollector {
    fn push(&mut self, idx: usize, data: &[u8]) {
        self.scanned_bytes += data.len();
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let mut line = std::mem::take(&mut self.partial[idx]);
            line.extend_from_slice(&rest[..nl]);
            self.line(idx, &line);
            rest = &rest[nl + 1..];
        }
        let p = &mut self.partial[idx];
        let room = (MAX_LINE_BYTES + 64).saturating_sub(p.len());
        p.extend_from_slice(&rest[..rest.len().min(room)]);
    }

    fn finish(&mut self) {
        for idx in 0..3 {
            let line = std::mem::take(&mut self.partial[idx]);
            if !line.is_empty() {
                self.line(idx, &line);
            }
        }
    }

    fn line(&mut self, idx: usize, raw: &[u8]) {
        self.scanned_lines += 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let mut text = String::from_utf8_lossy(&raw[..raw.len().min(MAX_LINE_BYTES + 40)]).into_owned();
        let mut timestamp = None;
        if self.timestamps
            && let Some((ts, rest)) = text.split_once(' ')
            && ts.len() >= 20
            && ts.as_bytes()[4] == b'-'
        {
            timestamp = Some(ts.to_string());
            text = rest.to_string();
        }
        if text.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str(" …[line cut]");
        }
        let text = self.redactors[idx].line(&text);
        if let Some(g) = &self.grep {
            let hit = if self.ignore_case { text.to_lowercase().contains(g) } else { text.contains(g.as_str()) };
            if !hit {
                return;
            }
        }
        self.bytes += text.len();
        let stream = ["stdout", "stderr", "console"][idx].to_string();
        self.lines.push_back(LogLine { stream, timestamp, text });
        while self.bytes > self.max_bytes {
            match self.lines.pop_front() {
                Some(l) => {
                    self.bytes -= l.text.len();
                    self.truncated = true;
                }
                None => break,
            }
        }
    }
}

impl Docker {
    /// A container's log lines as `q` asks, redacted, the newest kept
    /// within `q.max_bytes`.
    pub async fn container_logs(&self, q: LogsQuery) -> Result<LogsOutput, ToolError> {
        let c = self.conn().await?;
        let i = self.inspect(&c, &q.container).await?;
        let id = i.id.clone().unwrap_or_default();
        let opts = qp::LogsOptions {
            follow: false,
            stdout: q.stdout,
            stderr: q.stderr,
            since: i32::try_from(q.since.unwrap_or(0)).unwrap_or(i32::MAX),
            until: i32::try_from(q.until.unwrap_or(0)).unwrap_or(i32::MAX),
            timestamps: q.timestamps,
            tail: q.tail.to_string(),
        };
        let mut col = LogCollector {
            max_bytes: q.max_bytes,
            grep: q.grep.as_ref().map(|g| if q.ignore_case { g.to_lowercase() } else { g.clone() }),
            ignore_case: q.ignore_case,
            timestamps: q.timestamps,
            lines: VecDeque::new(),
            bytes: 0,
            truncated: false,
            scanned_bytes: 0,
            scanned_lines: 0,
            partial: Default::default(),
            redactors: Default::default(),
        };
        let deadline = tokio::time::Instant::now() + self.timeout();
        let mut stream = c.api.logs(&id, Some(opts));
        loop {
            let next = match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => {
                    self.set_hung(true);
                    return Err(unavailable(format!(
                        "the Docker daemon did not send the logs within {} s",
                        self.timeout().as_secs()
                    )));
                }
                Ok(n) => n,
            };
            match next {
                None => break,
                Some(Err(e)) => return Err(self.classify(&c, e)),
                Some(Ok(frame)) => {
                    use bollard::container::LogOutput;
                    let (idx, data) = match &frame {
                        LogOutput::StdOut { message } => (0, &message[..]),
                        LogOutput::StdErr { message } => (1, &message[..]),
                        LogOutput::Console { message } => (2, &message[..]),
                        LogOutput::StdIn { .. } => continue,
                    };
                    col.push(idx, data);
                    if col.scanned_bytes > MAX_LOG_SCAN_BYTES {
                        col.truncated = true;
                        break;
                    }
                }
            }
        }
        col.finish();
        let name = name_of(&i);
        let summary = format!(
            "{} lines ({} bytes) of {name}{}",
            col.lines.len(),
            col.bytes,
            if col.truncated { ", older lines dropped to fit the byte cap" } else { "" }
        );
        Ok(LogsOutput {
            summary,
            container: name,
            bytes: col.bytes,
            truncated: col.truncated,
            scanned_lines: col.scanned_lines,
            lines: col.lines.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_collector_keeps_newest_within_cap() {
        let mut col = LogCollector {
            max_bytes: 20,
            grep: None,
            ignore_case: false,
            timestamps: false,
            lines: VecDeque::new(),
            bytes: 0,
            truncated: false,
            scanned_bytes: 0,
            scanned_lines: 0,
            partial: Default::default(),
            redactors: Default::default(),
        };
        col.push(0, b"line-1\nline-2\nli");
        col.push(0, b"ne-3\nline-4");
        col.finish();
        let texts: Vec<&str> = col.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["line-2", "line-3", "line-4"]);
        assert!(col.truncated && col.bytes <= 20 && col.scanned_lines == 4);
    }

    #[test]
    fn grep_sees_only_redacted_text() {
        let mut col = LogCollector {
            max_bytes: 1000,
            grep: Some("hunter2".into()),
            ignore_case: false,
            timestamps: true,
            lines: VecDeque::new(),
            bytes: 0,
            truncated: false,
            scanned_bytes: 0,
            scanned_lines: 0,
            partial: Default::default(),
            redactors: Default::default(),
        };
        col.push(1, b"2026-01-02T03:04:05.123456789Z DB_PASSWORD=hunter2\n");
        assert!(col.lines.is_empty(), "grep must not be an oracle for redacted secrets");
        col.grep = Some("db_password".into());
        col.ignore_case = true;
        col.push(1, b"2026-01-02T03:04:05.123456789Z DB_PASSWORD=hunter2\n");
        assert_eq!(col.lines.len(), 1);
        assert_eq!(col.lines[0].timestamp.as_deref(), Some("2026-01-02T03:04:05.123456789Z"));
        assert_eq!(col.lines[0].stream, "stderr");
    }
}
