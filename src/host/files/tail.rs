//! The last lines of a file, read backwards from the end in blocks: a
//! multi-GB log costs as many blocks as its last N lines span, never the
//! whole file. Only whole lines are returned (the partial first line of
//! the window is dropped), so redaction always sees a line from its start.

use std::fs::File;
use std::io;

use super::content::{BLOCK, read_window};

/// The last lines of a file.
#[derive(Debug, PartialEq, Eq)]
pub struct Tail {
    /// The lines, oldest first, without their `\n`.
    pub lines: Vec<Vec<u8>>,
    /// Byte offset of the first returned line.
    pub start: u64,
    /// Byte offset just past the last complete line (after its `\n`).
    /// Bytes after it (`size - end`) are a last line without a newline
    /// (returned in `lines` only when `include_partial` was asked).
    pub end: u64,
    /// Bytes read from the file.
    pub bytes_read: u64,
    /// The byte cap stopped the backwards read before `n` lines were
    /// found (fewer lines than asked, and the file has more).
    pub cut: bool,
}

/// The last `n` lines of the file's first `size` bytes, reading back at
/// most `max_bytes`. A last line without a final `\n` counts as a line
/// when `include_partial` (a plain tail); a follower leaves it out and
/// reads it once it is complete.
pub fn last_lines(file: &File, size: u64, n: usize, max_bytes: usize, include_partial: bool) -> io::Result<Tail> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut pos = size;
    let mut newlines = 0usize;
    let mut read = 0usize;
    // The final byte's `\n` ends the last line; it does not start one.
    let mut skip_final = true;
    // n lines need n+1 line ends before them (the one ending the line
    // before the first), or the start of the file.
    while pos > 0 && newlines <= n && read < max_bytes {
        let len = BLOCK.min(max_bytes - read).min(usize::try_from(pos).unwrap_or(BLOCK));
        let from = pos - len as u64;
        let buf = read_window(file, from, len)?;
        if buf.len() != len {
            // The file shrank under us: stop at what is certain.
            break;
        }
        let mut count = buf.iter().filter(|&&b| b == b'\n').count();
        if skip_final {
            if buf.last() == Some(&b'\n') {
                count -= 1;
            }
            skip_final = false;
        }
        newlines += count;
        read += len;
        pos = from;
        blocks.push(buf);
    }
    let mut data = Vec::with_capacity(read);
    for b in blocks.iter().rev() {
        data.extend_from_slice(b);
    }
    let mut start = pos;
    let mut body: &[u8] = &data;
    let mut cut = false;
    if pos > 0 {
        // The window starts mid-line (or at a line start we cannot tell
        // from mid-line): drop up to the first `\n`.
        match body.iter().position(|&b| b == b'\n') {
            Some(i) => {
                body = &body[i + 1..];
                start += i as u64 + 1;
            }
            None => {
                body = &[];
                start = size;
            }
        }
    }
    let complete = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let end = start + complete as u64;
    let mut lines: Vec<Vec<u8>> = body[..complete]
        .strip_suffix(b"\n")
        .map(|b| b.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect())
        .unwrap_or_default();
    if include_partial && complete < body.len() {
        lines.push(body[complete..].to_vec());
    }
    if lines.len() > n {
        let drop = lines.len() - n;
        for l in &lines[..drop] {
            start += l.len() as u64 + 1;
        }
        lines.drain(..drop);
    }
    if lines.is_empty() {
        start = end;
    }
    if pos > 0 && lines.len() < n {
        cut = true;
    }
    Ok(Tail { lines, start, end, bytes_read: read as u64, cut })
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

    fn strs(t: &Tail) -> Vec<String> {
        t.lines.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect()
    }

    #[test]
    fn last_lines_with_and_without_final_newline() {
        let f = file(b"a\nb\nc\n");
        let t = last_lines(&f, 6, 2, 1 << 20, true).expect("io");
        assert_eq!((strs(&t), t.start, t.end, t.cut), (vec!["b".to_string(), "c".into()], 2, 6, false));
        let t = last_lines(&f, 6, 10, 1 << 20, true).expect("io");
        assert_eq!((strs(&t), t.start), (vec!["a".to_string(), "b".into(), "c".into()], 0));
        let f = file(b"a\nb\nc");
        let t = last_lines(&f, 5, 2, 1 << 20, true).expect("io");
        assert_eq!((strs(&t), t.end), (vec!["b".to_string(), "c".into()], 4));
        let t = last_lines(&f, 5, 2, 1 << 20, false).expect("io");
        assert_eq!((strs(&t), t.end), (vec!["a".to_string(), "b".into()], 4), "a follower leaves the partial line");
        let t = last_lines(&file(b""), 0, 5, 100, true).expect("io");
        assert!(t.lines.is_empty());
        let t = last_lines(&file(b"x\n"), 2, 0, 100, true).expect("io");
        assert!(t.lines.is_empty());
        let f = file(b"\n\n");
        assert_eq!(strs(&last_lines(&f, 2, 5, 100, true).expect("io")), vec!["", ""]);
    }

    #[test]
    fn reads_only_the_end_of_a_big_file() {
        let mut content = vec![b'x'; 10 * BLOCK];
        content.push(b'\n');
        for i in 0..100 {
            content.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        let f = file(&content);
        let t = last_lines(&f, content.len() as u64, 3, 1 << 30, true).expect("io");
        assert_eq!(strs(&t), vec!["line 97", "line 98", "line 99"]);
        assert!(t.bytes_read <= BLOCK as u64, "one block: {}", t.bytes_read);
        assert_eq!(t.start as usize, content.len() - "line 97\nline 98\nline 99\n".len());
    }

    #[test]
    fn byte_cap_returns_whole_lines_only() {
        let f = file(b"first line\nsecond\nthird\n");
        // 13 bytes back: "second\nthird\n" exactly; the line before is cut.
        let t = last_lines(&f, 24, 5, 13, true).expect("io");
        assert_eq!(
            (strs(&t), t.cut),
            (vec!["third".to_string()], true),
            "the window starts at 's': no line end before it"
        );
        let t = last_lines(&f, 24, 5, 14, true).expect("io");
        assert_eq!((strs(&t), t.cut), (vec!["second".to_string(), "third".into()], true));
        let t = last_lines(&f, 24, 2, 14, true).expect("io");
        assert_eq!((strs(&t), t.cut), (vec!["second".to_string(), "third".into()], false), "enough lines found");
        // One line longer than the cap: nothing, cut.
        let f = file(b"a very long line\n");
        let t = last_lines(&f, 17, 1, 4, true).expect("io");
        assert!(t.lines.is_empty() && t.cut, "{t:?}");
    }
}
