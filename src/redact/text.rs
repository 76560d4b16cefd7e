//! Free text (log lines, shell scripts, one argument of a command line):
//! every rule of the module run over one string, as byte spans to redact.

use std::ops::Range;

use super::argv;
use super::names::{is_name_char, is_secret_name};
use super::tokens;

/// How deep quoted strings inside quoted strings are read as commands
/// (`sh -c "su -c 'mysql -pX'"`).
const MAX_DEPTH: usize = 4;

/// URL query parameters that carry a signature or credential although
/// their names do not look secret (`?sig=` of an Azure SAS URL).
const QUERY_SECRETS: &[&str] = &["sig", "code", "x-amz-credential", "x-goog-credential"];

/// Auth schemes kept visible before a redacted credential
/// (`Authorization: Bearer [REDACTED]`).
const AUTH_SCHEMES: &[&str] = &["bearer", "basic", "token", "digest", "negotiate", "ntlm", "apikey", "key", "sso-key"];

/// Every span of `s` to redact.
pub(super) fn spans(s: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    tokens::vendor_tokens(s, &mut out);
    tokens::pem_blocks(s, &mut out);
    tokens::url_passwords(s, &mut out);
    key_values(s, &mut out);
    auth_schemes(s, &mut out);
    word_spans(s, 0, 0, &mut out);
    out
}

/// One word of a line: its text (outer quotes left out) and where it
/// starts in the line.
struct Word<'a> {
    text: &'a str,
    start: usize,
}

/// Where quotes can close: for each byte position, the next `'` and the
/// next unescaped `"` that end a word (followed by whitespace, the end, or
/// `;|&),`). Built once per string so finding a closing quote is O(1):
/// a line full of unbalanced quotes stays linear.
struct Closers {
    single: Vec<usize>,
    double: Vec<usize>,
}

impl Closers {
    fn new(b: &[u8]) -> Closers {
        let n = b.len();
        let ends_word = |i: usize| {
            b.get(i + 1).is_none_or(|c| c.is_ascii_whitespace() || matches!(c, b';' | b'|' | b'&' | b')' | b','))
        };
        let mut escaped = vec![false; n];
        let mut backslashes = 0usize;
        for (i, c) in b.iter().enumerate() {
            escaped[i] = backslashes % 2 == 1;
            backslashes = if *c == b'\\' { backslashes + 1 } else { 0 };
        }
        let mut single = vec![usize::MAX; n + 1];
        let mut double = vec![usize::MAX; n + 1];
        for i in (0..n).rev() {
            single[i] = if b[i] == b'\'' && ends_word(i) { i } else { single[i + 1] };
            double[i] = if b[i] == b'"' && !escaped[i] && ends_word(i) { i } else { double[i + 1] };
        }
        Closers { single, double }
    }

    /// Index of the quote closing the one at `open`.
    fn close(&self, b: &[u8], open: usize) -> Option<usize> {
        let table = if b[open] == b'"' { &self.double } else { &self.single };
        table.get(open + 1).copied().filter(|&j| j != usize::MAX)
    }
}

/// Shell-like words: whitespace separates, a quoted string (at the start
/// of a word, or right after `=`/`:`) is one word even with spaces in it.
/// An unbalanced quote is just a character (`it's`).
fn words(s: &str) -> Vec<Word<'_>> {
    let b = s.as_bytes();
    let closers = Closers::new(b);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if matches!(b[i], b'"' | b'\'')
            && let Some(close) = closers.close(b, i)
        {
            out.push(Word { text: &s[i + 1..close], start: i + 1 });
            i = close + 1;
            continue;
        }
        let start = i;
        let mut j = i;
        while j < b.len() && !b[j].is_ascii_whitespace() {
            if matches!(b[j], b'"' | b'\'')
                && j > start
                && matches!(b[j - 1], b'=' | b':')
                && let Some(close) = closers.close(b, j)
            {
                j = close + 1;
                continue;
            }
            j += 1;
        }
        // A stray quote at either end (`'-pX`, `-pX"`) is not part of the word.
        let (mut ts, mut te) = (start, j);
        while ts < te && matches!(b[ts], b'"' | b'\'') {
            ts += 1;
        }
        if te > ts
            && matches!(b[te - 1], b'"' | b'\'')
            && b[ts..te].iter().filter(|c| **c == b[te - 1]).count() % 2 == 1
        {
            te -= 1;
        }
        // `-pX;` is the word `-pX` and the separator `;`.
        if te - ts > 1 && b[te - 1] == b';' {
            out.push(Word { text: &s[ts..te - 1], start: ts });
            out.push(Word { text: &s[te - 1..te], start: te - 1 });
        } else if ts < te {
            out.push(Word { text: &s[ts..te], start: ts });
        }
        i = j;
    }
    out
}

/// The command-line rules ([`argv::marks`]) over the words of `s`, and
/// again inside each quoted string that holds several words.
fn word_spans(s: &str, base: usize, depth: usize, out: &mut Vec<Range<usize>>) {
    let ws = words(s);
    let texts: Vec<&str> = ws.iter().map(|w| w.text).collect();
    for (wi, r) in argv::marks(&texts) {
        let at = base + ws[wi].start;
        out.push(at + r.start..at + r.end);
    }
    if depth < MAX_DEPTH {
        for w in &ws {
            if w.text.contains(char::is_whitespace) {
                word_spans(w.text, base + w.start, depth + 1, out);
            }
        }
    }
}

/// `name=value`, `name: value`, `"name": "value"`, `name => value`,
/// `<name>value</name>` with a secret-looking name.
///
/// The value is a quoted string (its inside is redacted), or after
/// `name: ` (a header or YAML line) the rest of the line (or of the quoted
/// string the name stands in), an auth scheme word kept visible; or else a
/// bare word, which ends at whitespace, a quote, or the separator that
/// came before the name (`;` in `Server=x;Password=y;`, `,` in
/// `user=u,password=p`, `&` in a query string).
fn key_values(s: &str, out: &mut Vec<Range<usize>>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !is_name_char(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_name_char(b[i]) {
            i += 1;
        }
        let name = &s[start..i];
        let prev = start.checked_sub(1).map(|p| b[p]);
        let prev_ok = prev.is_none_or(|p| p.is_ascii_whitespace() || b"\"'{[(,;&?=|`<:".contains(&p));
        if !prev_ok {
            continue;
        }
        let query = matches!(prev, Some(b'?' | b'&')) && QUERY_SECRETS.contains(&name.to_ascii_lowercase().as_str());
        if !is_secret_name(name) && !query {
            continue;
        }
        if let Some(end) = value_after_name(s, i, prev, out) {
            i = i.max(end);
        }
    }
}

/// The value after a secret name ending at `name_end`: pushes its span,
/// returns where it ends.
fn value_after_name(s: &str, name_end: usize, prev: Option<u8>, out: &mut Vec<Range<usize>>) -> Option<usize> {
    let b = s.as_bytes();
    // `"password": …` (a JSON-style key), not `"Cookie: a=b; c=d"` (a
    // quoted header line).
    let mut k = name_end;
    let quoted_name = matches!(prev, Some(b'"' | b'\'')) && b.get(k).copied() == prev;
    if quoted_name {
        k += 1;
    }
    // XML: <password>value</password>
    if prev == Some(b'<') && b.get(k) == Some(&b'>') {
        let v = k + 1;
        let end = s[v..].find(['<', '\n']).map_or(s.len(), |e| v + e);
        if v < end {
            out.push(v..end);
        }
        return Some(end);
    }
    k += count_blank(&b[k..]);
    let rest = &b[k..];
    let (sep_len, colon) = if rest.starts_with(b"=>") || rest.starts_with(b":=") {
        (2, false)
    } else if rest.starts_with(b"==") || rest.starts_with(b"::") {
        return None;
    } else if rest.first() == Some(&b'=') {
        (1, false)
    } else if rest.first() == Some(&b':') {
        (1, true)
    } else {
        return None;
    };
    let after_sep = k + sep_len;
    let blank = count_blank(&b[after_sep..]);
    let v = after_sep + blank;
    if v >= b.len() || b[v] == b'\n' || b[v] == b'\r' {
        return None;
    }
    // A quoted value: its inside.
    if matches!(b[v], b'"' | b'\'') {
        let q = b[v];
        let close = (v + 1..b.len()).find(|&j| b[j] == q && b[j - 1] != b'\\' || b[j] == b'\n');
        let end = close.unwrap_or(b.len());
        if v + 1 < end {
            out.push(v + 1..end);
        }
        return Some(end);
    }
    // `name: value` (a header, YAML): the rest of the line, or of the
    // quoted string the name opens.
    if colon && blank > 0 && !quoted_name {
        let line_end = s[v..].find(['\n', '\r']).map_or(s.len(), |e| v + e);
        let mut end = line_end;
        if let Some(q) = prev.filter(|p| matches!(p, b'"' | b'\''))
            && let Some(e) = s[v..line_end].find(q as char)
        {
            end = v + e;
        }
        let mut from = v;
        let first_len = b[v..end].iter().take_while(|c| !c.is_ascii_whitespace()).count();
        let first = &s[v..v + first_len];
        if AUTH_SCHEMES.contains(&first.to_ascii_lowercase().as_str()) && v + first_len < end {
            from = v + first_len + count_blank(&b[v + first_len..end]);
        }
        if from < end {
            out.push(from..end);
        }
        return Some(end);
    }
    // A bare value.
    let stop_at = match prev {
        Some(p @ (b';' | b',' | b'&')) => Some(p),
        Some(b'?') => Some(b'&'),
        _ => None,
    };
    let len = b[v..]
        .iter()
        .take_while(|c| !c.is_ascii_whitespace() && !matches!(c, b'"' | b'\'' | b'`') && Some(**c) != stop_at)
        .count();
    let mut end = v + len;
    while end > v && matches!(b[end - 1], b',' | b';' | b')' | b'}' | b'>') {
        end -= 1;
    }
    if v < end {
        out.push(v..end);
    }
    Some(end)
}

fn count_blank(b: &[u8]) -> usize {
    b.iter().take_while(|c| matches!(c, b' ' | b'\t')).count()
}

/// `Bearer <token>` and `Basic <base64 of user:password>` wherever they
/// stand (an `-H` argument, a log line). A Basic value must decode to
/// `user:password`, so "basic setup" and "basic /usr/bin/env" stay.
fn auth_schemes(s: &str, out: &mut Vec<Range<usize>>) {
    let b = s.as_bytes();
    for (scheme, basic) in [("bearer", false), ("basic", true)] {
        let mut from = 0;
        while from < b.len() {
            let Some(rel) = find_ci(&b[from..], scheme.as_bytes()) else { break };
            let at = from + rel;
            from = at + scheme.len();
            let before_ok = at == 0 || !b[at - 1].is_ascii_alphanumeric();
            let blank = count_blank(&b[from..]);
            if !before_ok || blank == 0 {
                continue;
            }
            let v = from + blank;
            let len = b[v..]
                .iter()
                .take_while(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'~' | b'+' | b'/' | b'=' | b'-')
                })
                .count();
            let word = &b[v..v + len];
            let ok = if basic { is_basic_credential(word) } else { len >= 1 };
            if ok {
                out.push(v..v + len);
                from = v + len;
            }
        }
    }
}

/// Base64 of `user:password`: what a Basic credential is (RFC 7617).
fn is_basic_credential(word: &[u8]) -> bool {
    use base64::Engine as _;
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(word) else {
        return false;
    };
    raw.contains(&b':') && raw.iter().all(|c| !c.is_ascii_control())
}

/// Position of `needle` (lower-case ASCII) in `hay`, ignoring ASCII case.
fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle))
}
