//! file_read / file_hash bodies against a real root in a temp dir: edges
//! of every cap, and that redaction always sees whole lines.

use std::path::Path;

use super::*;
use crate::host::files::RootConfig;
use crate::host::files::config::DEFAULT_DENY;
use crate::mcp::ErrorCategory;

fn root(dir: &Path, mode: Mode) -> Root {
    let cfg = RootConfig {
        name: "r".into(),
        path: dir.to_path_buf(),
        mode,
        include: vec![],
        exclude: vec![],
        deny: None,
        allow_hard_links: false,
        allow_recursive_delete: false,
    };
    let deny: Vec<String> = DEFAULT_DENY.iter().map(|s| s.to_string()).collect();
    Root::open(&cfg, &deny).expect("root")
}

fn input(path: &str) -> ReadInput {
    ReadInput {
        path: format!("r:{path}"),
        offset: None,
        length: None,
        from_line: None,
        to_line: None,
        encoding: Encoding::Text,
        raw: false,
    }
}

fn rel(s: &str) -> RelPath {
    RelPath::parse(s).expect("rel")
}

const SECRET_FILE: &str = "alpha\npassword=hunter2\nomega\n";

#[test]
fn window_validation_edges() {
    let mut i = input("f");
    i.length = Some(MAX_READ_BYTES);
    assert!(window(&i).is_ok());
    i.length = Some(MAX_READ_BYTES + 1);
    assert_eq!(window(&i).err().map(|e| e.category), Some(ErrorCategory::InvalidInput));
    i.length = Some(0);
    assert!(window(&i).is_err());
    let mut i = input("f");
    i.offset = Some(3);
    i.from_line = Some(1);
    assert!(window(&i).is_err(), "offset with lines");
    let mut i = input("f");
    i.from_line = Some(0);
    assert!(window(&i).is_err(), "line 0");
    i.from_line = Some(3);
    i.to_line = Some(2);
    assert!(window(&i).is_err(), "backwards range");
    i.to_line = Some(3);
    assert!(window(&i).is_ok());
}

#[test]
fn redacted_byte_reads_snap_to_whole_lines() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("s.txt"), SECRET_FILE).expect("w");
    let r = root(tmp.path(), Mode::Read);
    // Every offset into the secret line, every short length: hunter2 never
    // shows, whatever window an attacker picks.
    for off in 0..SECRET_FILE.len() as u64 {
        for len in 1..SECRET_FILE.len() {
            let mut i = input("s.txt");
            i.offset = Some(off);
            i.length = Some(len);
            let out = read_file(&r, &rel("s.txt"), &i, false).expect("read");
            assert!(!out.content.contains("hunter2"), "offset {off} length {len}: {}", out.content);
            assert!(!out.content.contains("hunter"), "offset {off} length {len}: {}", out.content);
        }
    }
    let mut i = input("s.txt");
    i.offset = Some(10);
    let out = read_file(&r, &rel("s.txt"), &i, false).expect("read");
    assert_eq!(out.offset, 6, "widened back to the line start");
    assert!(out.content.starts_with("password=") && out.redacted, "{}", out.content);
    // Raw: exact bytes.
    let out = read_file(&r, &rel("s.txt"), &i, true).expect("read");
    assert_eq!((out.offset, out.content.as_str()), (10, "word=hunter2\nomega\n"));
}

#[test]
fn byte_windows_continue_where_they_stop() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("a.txt"), "one\ntwo\nthree\n").expect("w");
    let r = root(tmp.path(), Mode::Read);
    let mut i = input("a.txt");
    i.length = Some(6);
    let out = read_file(&r, &rel("a.txt"), &i, false).expect("read");
    assert_eq!((out.content.as_str(), out.truncated, out.next_offset), ("one\n", true, Some(4)));
    i.offset = out.next_offset;
    let out = read_file(&r, &rel("a.txt"), &i, false).expect("read");
    assert_eq!((out.content.as_str(), out.next_offset), ("two\n", Some(8)));
    i.offset = Some(8);
    let out = read_file(&r, &rel("a.txt"), &i, false).expect("read");
    assert_eq!((out.content.as_str(), out.truncated, out.next_offset), ("three\n", false, None), "to the end exactly");
    i.offset = Some(14);
    let out = read_file(&r, &rel("a.txt"), &i, false).expect("read at the end");
    assert_eq!((out.content.as_str(), out.truncated), ("", false));
    i.offset = Some(15);
    let e = read_file(&r, &rel("a.txt"), &i, false).expect_err("past the end");
    assert_eq!(e.category, ErrorCategory::InvalidInput);
}

#[test]
fn a_multibyte_character_is_never_split() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("u.txt"), "aé").expect("w");
    let r = root(tmp.path(), Mode::ReadWrite);
    let mut i = input("u.txt");
    i.length = Some(2);
    let out = read_file(&r, &rel("u.txt"), &i, true).expect("read");
    assert_eq!((out.content.as_str(), out.next_offset), ("a", Some(1)));
}

#[test]
fn binary_needs_base64() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("b.bin"), b"\x00\x01\x02password=x").expect("w");
    let r = root(tmp.path(), Mode::Read);
    let e = read_file(&r, &rel("b.bin"), &input("b.bin"), false).expect_err("binary");
    assert_eq!(e.category, ErrorCategory::InvalidInput);
    assert!(e.hint.contains("base64"), "{e:?}");
    let mut i = input("b.bin");
    i.encoding = Encoding::Base64;
    let out = read_file(&r, &rel("b.bin"), &i, false).expect("base64");
    let bytes = base64::engine::general_purpose::STANDARD.decode(&out.content).expect("b64");
    assert_eq!(bytes, b"\x00\x01\x02password=x");
    assert!(out.binary && !out.redacted);
    // A text file in base64 is the redacted text, encoded.
    std::fs::write(tmp.path().join("s.txt"), SECRET_FILE).expect("w");
    let mut i = input("s.txt");
    i.encoding = Encoding::Base64;
    let out = read_file(&r, &rel("s.txt"), &i, false).expect("base64 text");
    let text =
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(&out.content).expect("b64")).expect("u");
    assert!(text.contains("password=") && !text.contains("hunter2"), "{text}");
}

#[test]
fn line_reads() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("l.txt"), "l1\nl2\nl3\nl4\n").expect("w");
    let r = root(tmp.path(), Mode::Read);
    let mut i = input("l.txt");
    i.from_line = Some(2);
    i.to_line = Some(3);
    let out = read_file(&r, &rel("l.txt"), &i, false).expect("read");
    assert_eq!(
        (out.content.as_str(), out.from_line, out.to_line, out.next_line),
        ("l2\nl3\n", Some(2), Some(3), Some(4))
    );
    i.to_line = None;
    i.length = Some(3);
    let out = read_file(&r, &rel("l.txt"), &i, false).expect("read");
    assert_eq!((out.content.as_str(), out.truncated, out.next_line), ("l2\n", true, Some(3)));
}

#[test]
fn hash_of_the_redacted_view_equals_hash_of_what_read_returns() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("s.txt"), SECRET_FILE).expect("w");
    let r = root(tmp.path(), Mode::ReadWrite);
    let shown = read_file(&r, &rel("s.txt"), &input("s.txt"), false).expect("read").content;
    let h = hash_file(&r, &rel("s.txt"), false, &|| true).expect("hash");
    assert_eq!(h.sha256, hex::encode(Sha256::digest(shown.as_bytes())));
    assert_eq!(h.of, "redacted");
    let h = hash_file(&r, &rel("s.txt"), true, &|| true).expect("hash");
    assert_eq!((h.sha256, h.of.as_str()), (hex::encode(Sha256::digest(SECRET_FILE.as_bytes())), "raw"));
    let e = hash_file(&r, &rel("s.txt"), true, &|| false).expect_err("stopped");
    assert_eq!(e.category, ErrorCategory::Timeout);
}

#[test]
fn follow_polls_see_appends_truncation_and_rotation() {
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("tmp");
    let p = tmp.path().join("log");
    std::fs::write(&p, "old\n").expect("w");
    let r = root(tmp.path(), Mode::Read);
    let open = r.open_file(&rel("log")).expect("open");
    let mut f = Follow { open, pos: 4, pending: Vec::new(), truncations: 0, rotations: 0, long_dropped: 0 };
    let mut w = std::fs::OpenOptions::new().append(true).open(&p).expect("append");
    w.write_all(b"new 1\nhalf").expect("w");
    assert_eq!(poll(&r, &rel("log"), &mut f, 1 << 20).expect("poll"), vec![b"new 1".to_vec()]);
    w.write_all(b" done\n").expect("w");
    assert_eq!(poll(&r, &rel("log"), &mut f, 1 << 20).expect("poll"), vec![b"half done".to_vec()]);
    // copytruncate: starts over.
    w.set_len(0).expect("truncate");
    w.write_all(b"x\n").expect("w");
    // Size 2 < pos: restart at 0.
    assert_eq!(poll(&r, &rel("log"), &mut f, 1 << 20).expect("poll"), vec![b"x".to_vec()]);
    assert_eq!(f.truncations, 1);
    // Rotation: rename away, create anew.
    std::fs::rename(&p, tmp.path().join("log.1")).expect("mv");
    std::fs::write(&p, "fresh\n").expect("w");
    assert!(poll(&r, &rel("log"), &mut f, 1 << 20).expect("poll").is_empty(), "switches files");
    assert_eq!(f.rotations, 1);
    assert_eq!(poll(&r, &rel("log"), &mut f, 1 << 20).expect("poll"), vec![b"fresh".to_vec()]);
}
