//! Reading a regular file's bytes, already opened by [`super::Root`]:
//! text-or-binary detection, byte windows, line ranges, whole-line
//! snapping (so redaction always sees whole lines), and a streamed sha256.
//! Every read is a positioned `pread` on the fd; nothing here opens a path.
//!
//! Limits are the caller's (passed in): this module only promises never to
//! read more than it was told.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

/// Bytes at the start of a file looked at to call it text or binary.
pub const PROBE_BYTES: usize = 8 * 1024;
/// Block size of every read loop here.
pub const BLOCK: usize = 64 * 1024;

/// Binary: a NUL byte, or bytes that are not UTF-8 (a multi-byte
/// character cut at the end of `buf` still counts as text).
pub fn looks_binary(buf: &[u8]) -> bool {
    if buf.contains(&0) {
        return true;
    }
    match std::str::from_utf8(buf) {
        Ok(_) => false,
        Err(e) => e.error_len().is_some(),
    }
}

/// Whether the file's first [`PROBE_BYTES`] look binary (the same answer
/// whatever offset a caller asks for).
pub fn is_binary(file: &File) -> io::Result<bool> {
    Ok(looks_binary(&read_window(file, 0, PROBE_BYTES)?))
}

/// Up to `len` bytes from `offset` (fewer at end of file).
pub fn read_window(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0usize;
    while got < len {
        let at = offset.saturating_add(got as u64);
        match file.read_at(&mut buf[got..], at) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// The start of the line holding `offset`: the byte after the last `\n`
/// before it, searched back at most `max_back` bytes (`None` when the
/// line starts further back than that).
pub fn line_start(file: &File, offset: u64, max_back: usize) -> io::Result<Option<u64>> {
    let mut end = offset;
    let floor = offset.saturating_sub(max_back as u64);
    while end > floor {
        let from = end.saturating_sub(BLOCK as u64).max(floor);
        let len = usize::try_from(end - from).unwrap_or(BLOCK);
        let buf = read_window(file, from, len)?;
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(from + i as u64 + 1));
        }
        end = from;
    }
    Ok((end == 0).then_some(0))
}

/// The offset just past the next `\n` at or after `from`, searched at
/// most `max` bytes; `None` when there is none that close (or the file
/// ends first: then the line runs to the end of the file).
pub fn after_next_newline(file: &File, from: u64, max: usize) -> io::Result<Option<u64>> {
    let mut at = from;
    let limit = from.saturating_add(max as u64);
    while at < limit {
        let len = usize::try_from(limit - at).unwrap_or(BLOCK).min(BLOCK);
        let buf = read_window(file, at, len)?;
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            return Ok(Some(at + i as u64 + 1));
        }
        if buf.len() < len {
            return Ok(None);
        }
        at += buf.len() as u64;
    }
    Ok(None)
}

/// Lines `from..=to` (1-based) of a file, as bytes with their `\n`s.
#[derive(Debug, PartialEq, Eq)]
pub struct Lines {
    /// Byte offset of the first returned line.
    pub start: u64,
    /// Byte offset just past the last returned byte.
    pub end: u64,
    pub bytes: Vec<u8>,
    /// Number of the first and last line returned (`last < first` when
    /// none was: `from` is past the end of the file).
    pub first: u64,
    pub last: u64,
    /// The byte cap stopped the window before `to`.
    pub cut: bool,
}

/// Why [`lines`] could not answer.
#[derive(Debug, PartialEq, Eq)]
pub enum LinesError {
    /// Line `from` starts beyond the first `max_scan` bytes.
    TooFar,
    /// Line `from` alone is longer than the byte cap.
    LineTooLong,
}

/// Lines `from..=to` (1-based), at most `max_bytes` of whole lines,
/// scanning at most `max_scan` bytes to find line `from`.
pub fn lines(
    file: &File,
    from: u64,
    to: u64,
    max_bytes: usize,
    max_scan: u64,
) -> io::Result<Result<Lines, LinesError>> {
    // Find the start of line `from`.
    let mut line = 1u64;
    let mut at = 0u64;
    while line < from {
        if at >= max_scan {
            return Ok(Err(LinesError::TooFar));
        }
        let len = usize::try_from(max_scan - at).unwrap_or(BLOCK).min(BLOCK);
        let buf = read_window(file, at, len)?;
        if buf.is_empty() {
            // Past the end: nothing to return.
            return Ok(Ok(Lines { start: at, end: at, bytes: Vec::new(), first: from, last: from - 1, cut: false }));
        }
        let mut used = buf.len();
        for (i, &b) in buf.iter().enumerate() {
            if b == b'\n' {
                line += 1;
                if line == from {
                    used = i + 1;
                    break;
                }
            }
        }
        at += used as u64;
    }
    let start = at;
    // Read whole lines up to `to` within the cap.
    let mut out = Vec::new();
    let mut last = from - 1;
    let mut cut = false;
    loop {
        let buf = read_window(file, at, BLOCK)?;
        if buf.is_empty() {
            break;
        }
        let eof = buf.len() < BLOCK;
        let mut consumed = 0usize;
        let mut stop = false;
        while let Some(i) = buf[consumed..].iter().position(|&b| b == b'\n') {
            let len = i + 1;
            if out.len().saturating_add(len) > max_bytes {
                cut = true;
                stop = true;
                break;
            }
            out.extend_from_slice(&buf[consumed..consumed + len]);
            consumed += len;
            last += 1;
            if last == to {
                stop = true;
                break;
            }
        }
        if stop {
            break;
        }
        if consumed < buf.len() && eof {
            // The last line, without a final newline.
            let len = buf.len() - consumed;
            if out.len().saturating_add(len) > max_bytes {
                cut = true;
            } else {
                out.extend_from_slice(&buf[consumed..]);
                last += 1;
            }
            break;
        }
        if consumed == 0 {
            // A line longer than one block: find its end within the room.
            let room = max_bytes.saturating_sub(out.len());
            match after_next_newline(file, at, room.saturating_add(1))? {
                Some(e) => {
                    let len = usize::try_from(e - at).unwrap_or(usize::MAX);
                    if len > room {
                        cut = true;
                        break;
                    }
                    out.extend_from_slice(&read_window(file, at, len)?);
                    at = e;
                    last += 1;
                    if last == to {
                        break;
                    }
                    continue;
                }
                None => {
                    let rest = read_window(file, at, room.saturating_add(1))?;
                    if rest.len() > room {
                        cut = true;
                    } else if !rest.is_empty() {
                        out.extend_from_slice(&rest);
                        last += 1;
                    }
                    break;
                }
            }
        }
        at += consumed as u64;
    }
    if out.is_empty() && cut {
        return Ok(Err(LinesError::LineTooLong));
    }
    Ok(Ok(Lines { start, end: start + out.len() as u64, bytes: out, first: from, last, cut }))
}

/// sha256 of the file's first `max` bytes (all of it when smaller),
/// streamed in blocks; `keep_going` is asked between blocks (cancellation,
/// deadline). Returns the digest and the bytes hashed, or `None` when
/// stopped.
pub fn sha256(file: &File, max: u64, mut keep_going: impl FnMut() -> bool) -> io::Result<Option<(String, u64)>> {
    let mut h = Sha256::new();
    let mut at = 0u64;
    let mut buf = vec![0u8; BLOCK * 4];
    while at < max {
        if !keep_going() {
            return Ok(None);
        }
        let want = usize::try_from(max - at).unwrap_or(buf.len()).min(buf.len());
        let n = match file.read_at(&mut buf[..want], at) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok(Some((hex::encode(h.finalize()), at)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(content: &[u8]) -> File {
        let mut f = tempfile::tempfile().expect("tmp");
        f.write_all(content).expect("write");
        f
    }

    #[test]
    fn binary_is_nul_or_not_utf8_but_a_cut_character_is_text() {
        assert!(!looks_binary(b"plain text\n"));
        assert!(looks_binary(b"a\0b"));
        assert!(looks_binary(&[0x66, 0xff, 0x66]));
        let e = "é".as_bytes();
        assert!(!looks_binary(&e[..1]), "a character cut at the end of the probe is still text");
        // NUL after the probe does not count.
        let mut big = vec![b'a'; PROBE_BYTES];
        big.push(0);
        assert!(!is_binary(&file(&big)).expect("probe"));
        big[PROBE_BYTES - 1] = 0;
        assert!(is_binary(&file(&big)).expect("probe"));
    }

    #[test]
    fn line_start_and_next_newline() {
        let f = file(b"one\ntwo\nthree");
        assert_eq!(line_start(&f, 0, 100).expect("r"), Some(0));
        assert_eq!(line_start(&f, 2, 100).expect("r"), Some(0));
        assert_eq!(line_start(&f, 4, 100).expect("r"), Some(4));
        assert_eq!(line_start(&f, 6, 100).expect("r"), Some(4));
        assert_eq!(line_start(&f, 10, 100).expect("r"), Some(8));
        assert_eq!(line_start(&f, 10, 1).expect("r"), None, "the line starts further back than allowed");
        assert_eq!(after_next_newline(&f, 0, 100).expect("r"), Some(4));
        assert_eq!(after_next_newline(&f, 4, 100).expect("r"), Some(8));
        assert_eq!(after_next_newline(&f, 8, 100).expect("r"), None);
        assert_eq!(after_next_newline(&f, 0, 2).expect("r"), None);
    }

    #[test]
    fn line_ranges_are_whole_lines_within_the_cap() {
        let f = file(b"l1\nl2\nl3\nl4 no newline");
        let r = lines(&f, 2, 3, 100, 1 << 20).expect("io").expect("ok");
        assert_eq!((r.bytes.as_slice(), r.start, r.first, r.last, r.cut), (&b"l2\nl3\n"[..], 3, 2, 3, false));
        let r = lines(&f, 3, 100, 100, 1 << 20).expect("io").expect("ok");
        assert_eq!((r.bytes.as_slice(), r.last, r.cut), (&b"l3\nl4 no newline"[..], 4, false));
        // Cap at its edge: "l1\n" + "l2\n" is 6 bytes.
        let r = lines(&f, 1, 10, 6, 1 << 20).expect("io").expect("ok");
        assert_eq!((r.bytes.as_slice(), r.last, r.cut), (&b"l1\nl2\n"[..], 2, true));
        let r = lines(&f, 1, 2, 6, 1 << 20).expect("io").expect("ok");
        assert_eq!((r.last, r.cut), (2, false), "exactly the cap, nothing more wanted");
        let r = lines(&f, 1, 10, 5, 1 << 20).expect("io").expect("ok");
        assert_eq!((r.bytes.as_slice(), r.last, r.cut), (&b"l1\n"[..], 1, true));
        assert_eq!(lines(&f, 1, 10, 2, 1 << 20).expect("io"), Err(LinesError::LineTooLong));
        // Past the end.
        let r = lines(&f, 9, 10, 100, 1 << 20).expect("io").expect("ok");
        assert!(r.bytes.is_empty() && r.last < r.first);
        // Scan budget.
        assert_eq!(lines(&f, 3, 3, 100, 2).expect("io"), Err(LinesError::TooFar));
    }

    #[test]
    fn long_lines_across_blocks() {
        let mut c = vec![b'x'; BLOCK * 2 + 10];
        c.push(b'\n');
        c.extend_from_slice(b"short\n");
        let f = file(&c);
        let r = lines(&f, 1, 2, BLOCK * 3, 1 << 30).expect("io").expect("ok");
        assert_eq!((r.last, r.bytes.len(), r.cut), (2, c.len(), false));
        let r = lines(&f, 2, 2, 100, 1 << 30).expect("io").expect("ok");
        assert_eq!(r.bytes, b"short\n");
        assert_eq!(lines(&f, 1, 1, BLOCK, 1 << 30).expect("io"), Err(LinesError::LineTooLong));
    }

    #[test]
    fn sha256_streams_and_stops() {
        let f = file(b"abc");
        let (h, n) = sha256(&f, u64::MAX, || true).expect("io").expect("done");
        assert_eq!(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(n, 3);
        assert_eq!(sha256(&f, 2, || true).expect("io").map(|x| x.1), Some(2));
        assert_eq!(sha256(&f, 3, || false).expect("io"), None);
    }
}
