//! Which names (object keys, env vars, flags, `key=value` keys) hold a
//! secret. One decision used by every rule of the module.

/// Substrings of a lower-cased name that make it secret.
const SECRET_SUBSTRINGS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "cookie",
    "bearer",
    "apikey",
    "privatekey",
    "accesskey",
    "authkey",
    "oauth",
    // keytool/jarsigner `-storepass`, `-keypass`, `-srcstorepass`.
    "storepass",
    "keypass",
];

/// Whole words (after splitting on `_`, `-`, `.`, spaces and camelCase) that
/// make a name secret.
const SECRET_WORDS: &[&str] =
    &["key", "keys", "pass", "pwd", "pw", "auth", "creds", "cred", "psk", "signature", "sas", "dsn"];

/// Words starting with `auth` that are not secret.
const AUTH_NOT_SECRET: &[&str] = &["author", "authors", "authored", "authoring", "authority", "authorities"];

/// A name whose last word is one of these names *where* the secret is, or
/// what kind it is, not the secret itself: `--password-file /run/pw`,
/// `TOKEN_PATH`, `--auth-type basic`, `password_min_length`. Showing those
/// values is what makes a command line readable.
const NOT_SECRET_LAST_WORDS: &[&str] = &[
    "file",
    "files",
    "path",
    "dir",
    "directory",
    "stdin",
    "fd",
    "env",
    "url",
    "uri",
    "endpoint",
    "type",
    "method",
    "mode",
    "length",
    "len",
    "size",
    "min",
    "max",
    "ttl",
    "timeout",
    "expiry",
    "expires",
    "expiration",
    "prompt",
    "helper",
    "cmd",
    "command",
    "policy",
    "algorithm",
    "alg",
    "format",
    "name",
    "count",
    "limit",
    "version",
    "hint",
    "required",
    "server",
    "host",
    "port",
    "database",
    "db",
];

/// A name whose first word is one of these is a switch about a secret,
/// not a secret: `--no-password`, `--ask-pass`, `--ask-become-pass`.
const NOT_SECRET_FIRST_WORDS: &[&str] = &["no", "ask", "without"];

/// Env names that look secret by their words but are not: the shell's
/// working directory (`PWD`, `OLDPWD`).
const NOT_SECRET_EXACT: &[&str] = &["PWD", "OLDPWD"];

/// Whether an object key, env var name or flag name looks like it holds a
/// secret: `password`, `DB_PASSWORD`, `api_key`, `apiKey`, `key`,
/// `Authorization`, `session_token`, `--pw`, … (but not `monkey`, `author`,
/// `KEYMAP`, `password_file`, `--no-password`, `PWD`).
pub fn is_secret_name(name: &str) -> bool {
    let name = name.trim_start_matches('-');
    if NOT_SECRET_EXACT.contains(&name) {
        return false;
    }
    let words = split_words(name);
    if let (Some(first), Some(last)) = (words.first(), words.last())
        && words.len() > 1
        && (NOT_SECRET_LAST_WORDS.contains(&last.as_str()) || NOT_SECRET_FIRST_WORDS.contains(&first.as_str()))
    {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    if SECRET_SUBSTRINGS.iter().any(|s| lower.contains(s)) {
        return true;
    }
    words.iter().any(|w| {
        SECRET_WORDS.contains(&w.as_str()) || (w.starts_with("auth") && !AUTH_NOT_SECRET.contains(&w.as_str()))
    })
}

/// Splits `fooBar_baz-QUX.key` into lower-case words `foo bar baz qux key`.
pub(super) fn split_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// `--password` / `-token`-style flag without `=value` whose name looks
/// secret: the argument after it is its value. Short one-letter flags
/// (`-p`, `-P`, `-a`) mean a secret only for some programs: those are the
/// per-program rules' business.
pub fn is_secret_flag(s: &str) -> bool {
    let bare = s.trim_start_matches('-');
    s.starts_with('-')
        && !s.contains('=')
        && bare.len() > 1
        && bare.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && is_secret_name(bare)
}

/// Characters of a name in `name=value` / `name: value` forms.
pub(super) fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for name in [
            "password",
            "PASSWORD",
            "db_password",
            "DB_PASSWD",
            "passphrase",
            "client_secret",
            "token",
            "session_token",
            "accessToken",
            "key",
            "KEY",
            "api_key",
            "apikey",
            "apiKey",
            "API-KEY",
            "private_key",
            "privateKey",
            "access_key",
            "ssh.key",
            "auth",
            "Authorization",
            "auth_header",
            "x-auth",
            "credentials",
            "cookie",
            "Set-Cookie",
            "bearer",
            "MYSQL_PASS",
            "MYSQL_PWD",
            "TS_AUTHKEY",
            "oauth_state",
            "pw",
            "--pw",
            "x-api-key",
            "src-creds",
            "wifi-sec.psk",
            "storepass",
            "AccountKey",
            "AWS_ACCESS_KEY_ID",
        ] {
            assert!(is_secret_name(name), "{name} should be secret");
        }
        for name in [
            "monkey",
            "keyboard",
            "KEYMAP",
            "author",
            "authorName",
            "authority",
            "user",
            "path",
            "name",
            "hostname",
            "passenger",
            "n",
            "",
            "password-file",
            "password_file",
            "token-file",
            "TOKEN_PATH",
            "no-password",
            "ask-pass",
            "password-stdin",
            "auth-type",
            "PWD",
            "OLDPWD",
            "secret_name",
            "authenticationDatabase",
        ] {
            assert!(!is_secret_name(name), "{name} should not be secret");
        }
    }

    #[test]
    fn secret_flags() {
        for f in ["--password", "-password", "--token", "--api-key", "--pw", "-storepass", "--passphrase"] {
            assert!(is_secret_flag(f), "{f}");
        }
        for f in ["-p", "-P", "-a", "--password=x", "password", "--password-file", "--no-auth", "-", "--"] {
            assert!(!is_secret_flag(f), "{f}");
        }
    }
}
