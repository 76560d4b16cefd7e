//! Secrets recognised by their own shape, wherever they stand: vendor
//! token prefixes (`ghp_…`, `AKIA…`, `xoxb-…`, `sk_live_…`, `AIza…`,
//! `eyJ….….…` JWTs, `tskey-…`, …), PEM private-key blocks, and the
//! password in a URL's userinfo (`scheme://user:password@host`).

use std::ops::Range;

use super::REDACTED;

/// A token family: its literal prefix, the characters of its body, and the
/// shortest body that counts (short bodies are words, not tokens).
struct Prefix {
    prefix: &'static str,
    body: fn(u8) -> bool,
    min_body: usize,
    /// The body has exactly this length (AWS key ids).
    exact_len: Option<usize>,
    /// The body must look random (a digit and both cases): for short
    /// prefixes that also start ordinary words or host names (`sk-`).
    mixed: bool,
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}
fn alnum_us(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}
fn url_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')
}
fn upper_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}
fn slack(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}
/// `tskey-…`: up to whitespace, a quote or a separator (its old rule).
fn tskey(b: u8) -> bool {
    !b.is_ascii_whitespace() && !matches!(b, b'"' | b'\'' | b',' | b';' | b'`' | b')')
}

/// Vendor token prefixes. Sources: each vendor's documented token format
/// (GitHub, GitLab, AWS, Slack, Stripe, Google, npm, PyPI, Hugging Face,
/// Vault, DigitalOcean, SendGrid, OpenAI/Anthropic, Tailscale, age).
const PREFIXES: &[Prefix] = &[
    Prefix { prefix: "ghp_", body: alnum, min_body: 30, exact_len: None, mixed: false },
    Prefix { prefix: "gho_", body: alnum, min_body: 30, exact_len: None, mixed: false },
    Prefix { prefix: "ghu_", body: alnum, min_body: 30, exact_len: None, mixed: false },
    Prefix { prefix: "ghs_", body: alnum, min_body: 30, exact_len: None, mixed: false },
    Prefix { prefix: "ghr_", body: alnum, min_body: 30, exact_len: None, mixed: false },
    Prefix { prefix: "github_pat_", body: alnum_us, min_body: 20, exact_len: None, mixed: false },
    Prefix { prefix: "glpat-", body: url_safe, min_body: 20, exact_len: None, mixed: false },
    Prefix { prefix: "gldt-", body: url_safe, min_body: 20, exact_len: None, mixed: false },
    Prefix { prefix: "glrt-", body: url_safe, min_body: 20, exact_len: None, mixed: false },
    // AWS access key ids: 4-letter kind + 16 upper-case letters/digits.
    Prefix { prefix: "AKIA", body: upper_digit, min_body: 16, exact_len: Some(16), mixed: false },
    Prefix { prefix: "ASIA", body: upper_digit, min_body: 16, exact_len: Some(16), mixed: false },
    Prefix { prefix: "AIDA", body: upper_digit, min_body: 16, exact_len: Some(16), mixed: false },
    Prefix { prefix: "AROA", body: upper_digit, min_body: 16, exact_len: Some(16), mixed: false },
    Prefix { prefix: "AGPA", body: upper_digit, min_body: 16, exact_len: Some(16), mixed: false },
    Prefix { prefix: "xoxb-", body: slack, min_body: 10, exact_len: None, mixed: false },
    Prefix { prefix: "xoxp-", body: slack, min_body: 10, exact_len: None, mixed: false },
    Prefix { prefix: "xoxa-", body: slack, min_body: 10, exact_len: None, mixed: false },
    Prefix { prefix: "xoxo-", body: slack, min_body: 10, exact_len: None, mixed: false },
    Prefix { prefix: "xoxr-", body: slack, min_body: 10, exact_len: None, mixed: false },
    Prefix { prefix: "xoxs-", body: slack, min_body: 10, exact_len: None, mixed: false },
    Prefix { prefix: "xapp-", body: slack, min_body: 10, exact_len: None, mixed: false },
    Prefix { prefix: "sk_live_", body: alnum, min_body: 10, exact_len: None, mixed: false },
    Prefix { prefix: "sk_test_", body: alnum, min_body: 10, exact_len: None, mixed: false },
    Prefix { prefix: "rk_live_", body: alnum, min_body: 10, exact_len: None, mixed: false },
    Prefix { prefix: "rk_test_", body: alnum, min_body: 10, exact_len: None, mixed: false },
    Prefix { prefix: "whsec_", body: alnum, min_body: 10, exact_len: None, mixed: false },
    Prefix { prefix: "AIza", body: url_safe, min_body: 30, exact_len: None, mixed: false },
    Prefix { prefix: "ya29.", body: url_safe, min_body: 20, exact_len: None, mixed: true },
    Prefix { prefix: "GOCSPX-", body: url_safe, min_body: 20, exact_len: None, mixed: false },
    Prefix { prefix: "npm_", body: alnum, min_body: 30, exact_len: None, mixed: true },
    Prefix { prefix: "pypi-", body: url_safe, min_body: 30, exact_len: None, mixed: true },
    Prefix { prefix: "hf_", body: alnum, min_body: 30, exact_len: None, mixed: true },
    Prefix { prefix: "hvs.", body: url_safe, min_body: 20, exact_len: None, mixed: true },
    Prefix { prefix: "hvb.", body: url_safe, min_body: 20, exact_len: None, mixed: true },
    Prefix { prefix: "dop_v1_", body: alnum, min_body: 40, exact_len: None, mixed: false },
    Prefix { prefix: "sk-", body: url_safe, min_body: 20, exact_len: None, mixed: true },
    Prefix { prefix: "SG.", body: |b| url_safe(b) || b == b'.', min_body: 30, exact_len: None, mixed: true },
    Prefix { prefix: "tskey-", body: tskey, min_body: 1, exact_len: None, mixed: false },
    Prefix { prefix: "AGE-SECRET-KEY-", body: upper_digit, min_body: 20, exact_len: None, mixed: false },
];

/// Spans of every vendor token in `s` (the whole token, prefix included).
pub(super) fn vendor_tokens(s: &str, out: &mut Vec<Range<usize>>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // A token starts where a word starts: not inside another word.
        if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
            i += 1;
            continue;
        }
        let mut matched = 0;
        for p in PREFIXES {
            if !b[i..].starts_with(p.prefix.as_bytes()) {
                continue;
            }
            let start = i + p.prefix.len();
            let len = b[start..].iter().take_while(|c| (p.body)(**c)).count();
            let body = &b[start..start + len];
            let ok = len >= p.min_body && p.exact_len.is_none_or(|n| len == n) && (!p.mixed || looks_random(body));
            if ok {
                matched = p.prefix.len() + len;
                break;
            }
        }
        if matched == 0 && b[i..].starts_with(b"eyJ") {
            matched = jwt_len(&b[i..]);
        }
        if matched > 0 {
            out.push(i..i + matched);
            i += matched;
        } else {
            i += 1;
        }
    }
}

/// A digit, an upper-case and a lower-case letter: a generated token, not
/// a word or a host name.
pub(super) fn looks_random(b: &[u8]) -> bool {
    b.iter().any(u8::is_ascii_digit) && b.iter().any(u8::is_ascii_uppercase) && b.iter().any(u8::is_ascii_lowercase)
}

/// Length of a JWT (`eyJ<header>.<payload>.<signature>`) at the start of
/// `b`, 0 if there is none. The signature may be empty (`alg: none`).
fn jwt_len(b: &[u8]) -> usize {
    let seg = |from: usize| b[from..].iter().take_while(|c| url_safe(**c)).count();
    let h = seg(0);
    if h < 10 || b.get(h) != Some(&b'.') {
        return 0;
    }
    let p = seg(h + 1);
    if p < 4 || b.get(h + 1 + p) != Some(&b'.') {
        return 0;
    }
    let end = h + 1 + p + 1;
    end + seg(end)
}

/// PEM private-key blocks: everything after `-----BEGIN … PRIVATE KEY-----`
/// (also `PGP PRIVATE KEY BLOCK`) up to and including its `-----END …-----`
/// marker, or to the end of `s` when there is no end marker. The BEGIN
/// marker stays, so a reader sees that a key was there.
pub(super) fn pem_blocks(s: &str, out: &mut Vec<Range<usize>>) {
    let mut from = 0;
    while let Some(rel) = s[from..].find("-----BEGIN ") {
        let begin = from + rel;
        let label_start = begin + "-----BEGIN ".len();
        let Some(label_len) = s[label_start..].find("-----") else {
            return;
        };
        let label = &s[label_start..label_start + label_len];
        let body_start = label_start + label_len + "-----".len();
        if !label.contains("PRIVATE KEY") || label.contains('\n') {
            from = body_start;
            continue;
        }
        // Already redacted (the END marker went with the body): the block
        // ends there, or a second pass would take the rest of `s` too.
        if s[body_start..].starts_with(REDACTED) {
            out.push(body_start..body_start + REDACTED.len());
            from = body_start + REDACTED.len();
            continue;
        }
        match s[body_start..].find("-----END ") {
            Some(rel_end) => {
                // The END marker goes too: had another rule eaten part
                // of it, a second pass would read the block as unended.
                let marker = body_start + rel_end + "-----END ".len();
                let end = s[marker..].find("-----").map_or(s.len(), |e| marker + e + "-----".len());
                out.push(body_start..end);
                from = end;
            }
            None => {
                if body_start < s.len() {
                    out.push(body_start..s.len());
                }
                return;
            }
        }
    }
}

/// Whether `line` opens a PEM private-key block that does not end on it.
pub(super) fn opens_pem_block(line: &str) -> bool {
    let Some(i) = line.rfind("-----BEGIN ") else {
        return false;
    };
    let rest = &line[i..];
    rest.contains("PRIVATE KEY") && !rest.contains("-----END ")
}

/// `scheme://user:password@host…` → the span of `password`. Scheme is
/// letters, digits, `+`, `-`, `.` (so `postgresql+psycopg://` and
/// `redis://` both count); the userinfo ends at the last `@` before the
/// path.
pub(super) fn url_passwords(s: &str, out: &mut Vec<Range<usize>>) {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(rel) = s[from..].find("://") {
        let sep = from + rel;
        from = sep + 3;
        let scheme_len =
            b[..sep].iter().rev().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')).count();
        if scheme_len == 0 {
            continue;
        }
        let auth_start = sep + 3;
        let auth_len = b[auth_start..]
            .iter()
            .take_while(|c| {
                !matches!(c, b'/' | b'?' | b'#' | b'"' | b'\'' | b'`' | b'<' | b'>') && !c.is_ascii_whitespace()
            })
            .count();
        let authority = &s[auth_start..auth_start + auth_len];
        let Some(at) = authority.rfind('@') else {
            continue;
        };
        let Some(colon) = authority[..at].find(':') else {
            continue;
        };
        if colon + 1 < at {
            out.push(auth_start + colon + 1..auth_start + at);
        }
    }
}

/// A line that is only a long run of mixed-case base64 (a PEM body line,
/// a key blob) seen without its BEGIN line, e.g. when a log tail starts
/// inside a key. Hex digests (one case) and words do not count.
pub(super) fn is_base64_blob_line(line: &str) -> bool {
    let t = line.trim();
    let body = t.trim_end_matches('=');
    body.len() >= 40
        && t.len() - body.len() <= 2
        && body.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/'))
        && body.bytes().any(|c| c.is_ascii_uppercase())
        && body.bytes().any(|c| c.is_ascii_lowercase())
        && body.bytes().any(|c| c.is_ascii_digit())
}
