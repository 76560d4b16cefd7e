//! Secret redaction: ONE module for every output and the audit log.
//!
//! Everything a caller may see — process command lines (`process_list`,
//! `process_info`), container commands, env, labels, logs and exec output,
//! daemon messages, and the audit log's `args` and `detail` — passes
//! through here, and every filter (`cmdline_contains`, `grep`) matches the
//! redacted text, so a filter is never an oracle for the hidden part.
//! Secrets are always replaced by the same [`REDACTED`] marker; adjacent
//! redacted spans merge into one marker. The rules run to a fixed point,
//! so redaction is idempotent.
//!
//! The functions differ only in the shape they read:
//!
//! - [`redact_args`]: a JSON value (tool arguments and details in the audit
//!   log, JSON log lines);
//! - [`redact_argv`], [`redact_command`]: a command line as argv;
//! - [`redact_env`], [`redact_labels`]: `NAME=value` env entries and
//!   key/value labels;
//! - [`redact_line`], [`redact_text`], [`LineRedactor`]: free text (log
//!   lines, exec output, daemon error messages).
//!
//! # Rules
//!
//! **Names.** A name is secret ([`is_secret_name`]) when, lower-cased, it
//! contains `password`, `passwd`, `passphrase`, `secret`, `token`,
//! `credential`, `cookie`, `bearer`, `apikey`, `privatekey`, `accesskey`,
//! `authkey`, `oauth`, `storepass`, `keypass`, or has a word (split on
//! `_ - .`, spaces and camelCase) `key`, `keys`, `pass`, `pwd`, `pw`,
//! `auth*` (not `author`, `authority`), `creds`, `cred`, `psk`,
//! `signature`, `sas`, `dsn`. Not secret: names whose last word says where
//! or what kind the secret is (`file`, `path`, `dir`, `stdin`, `fd`, `env`,
//! `url`, `type`, `mode`, `length`, `name`, `host`, `port`, …:
//! `--password-file /run/pw`, `TOKEN_PATH`), switches (`--no-password`,
//! `--ask-pass`), and `PWD`/`OLDPWD`.
//!
//! **JSON** ([`redact_args`]): the value of a secret key (any type but
//! null and booleans); `{"name": "DB_PASSWORD", "value": …}` pairs; arrays
//! of strings are read as a command line; every string as free text.
//!
//! **Command lines** (argv, and the words of free text; see `argv.rs`):
//! - `--name value`, `--name=value`, `--name:value`, `-name value` with a
//!   secret name (`--password`, `--token`, `--api-key`, `--pw`,
//!   `-storepass`, `-Dx.keyStorePassword=…`);
//! - env assignments `NAME=value` with a secret name (`PGPASSWORD=…`,
//!   `export API_TOKEN=…`, `FOO_SECRET=…`);
//! - per program, for flags that mean a secret only there. A word naming
//!   the program (its basename) anywhere starts its rules — `sudo mysql`,
//!   `docker exec db mysql`, `sh -c 'mysql …'` — until `;`, `&&`, `||`,
//!   `|` (for sshpass: until the command it runs). `S` is the secret:
//!   - mysql, mariadb, mysqldump, mariadb-dump, mysqladmin, mariadb-admin,
//!     mysqlimport, mysqlcheck, mysqlshow, mysqlpump, mysqlslap,
//!     mysqlbinlog: `-pS`, `--password=S` attached only (`-p` alone
//!     prompts and the next word is the database; `-P` is the port);
//!     `password S` (mysqladmin's command);
//!   - psql, pg_dump, pg_dumpall, pg_restore, pg_basebackup, createdb,
//!     dropdb, createuser, dropuser, vacuumdb, reindexdb, clusterdb,
//!     pgbench, pg_isready: `-W`/`--password` are switches (prompt), `-p`
//!     is the port; the password is in URIs and `password=` (below);
//!   - redis-cli, valkey-cli, keydb-cli: `-a S`; `AUTH [user] S`,
//!     `requirepass S`, `masterauth S`; `-p` is the port;
//!   - sshpass: `-p S` / `-pS`; the command it runs gets its own rules;
//!   - curl: `-u`/`--user`/`-U`/`--proxy-user user:S` (no `:`, no secret:
//!     curl prompts), `-E`/`--cert`/`--proxy-cert file:S`, `-b`/`--cookie S`;
//!     etcdctl: `--user user:S`;
//!   - htpasswd: with `-b` in a flag cluster, the last positional word;
//!   - docker, podman, nerdctl, buildah, helm, oras, crane, regctl,
//!     skopeo, az: `-p S` only after `login` (`run -p 8080:80` is a port);
//!   - mongo, mongosh, mongodump, mongorestore, mongoexport, mongoimport,
//!     mongostat, mongotop, mongofiles: `-p S`;
//!   - ldapsearch, ldapadd, ldapmodify, ldapdelete, ldapwhoami,
//!     ldapcompare, ldapmodrdn, ldapexop: `-w S`; ldappasswd: `-w S`,
//!     `-s S`, `-a S`;
//!   - sqlcmd, bcp, osql: `-P S`; ipmitool: `-P S`, `-k S`; mosquitto_pub,
//!     mosquitto_sub, mosquitto_rr: `-P S`;
//!   - smbclient, smbget, smbcacls, smbtree, rpcclient, net, mount.cifs:
//!     `-U user%S`, `--user user%S`;
//!   - xfreerdp, wlfreerdp, sdl-freerdp, xfreerdp3, sdl-freerdp3: `/p:S`,
//!     `/password:S`, `/gp:S`; rdesktop: `-p S`;
//!   - ssh-keygen: `-N S`, `-P S` (passphrases); zip, zipcloak, unzip,
//!     funzip: `-P S`; 7z, 7za, 7zr, rar, unrar: `-pS` attached only;
//!   - openssl: `-k S`, `-pass`/`-passin`/`-passout pass:S` (`env:`,
//!     `file:` name where the secret is);
//!   - snmpwalk, snmpget, snmpgetnext, snmpset, snmpbulkwalk, snmpbulkget,
//!     snmptable, snmptrap, snmpinform, snmpdf, snmpstatus, snmpnetstat:
//!     `-c S` (community), `-A S`, `-X S`;
//!   - useradd, usermod: `-p S` (the hash); sqlplus, sqlldr, expdp, impdp,
//!     exp, imp: `user/S@db`; lftp: `-u user,S`; ncftp, ncftpget,
//!     ncftpput, ncftpls, cqlsh, cypher-shell: `-p S`; dig, nsupdate:
//!     `-y alg:name:S`;
//!   - nmcli: `NAME S` pairs with a secret name (`password S`,
//!     `wifi-sec.psk S`); wpa_passphrase: `ssid S`; rabbitmqctl:
//!     `add_user u S`, `change_password u S`, `authenticate_user u S`; aws:
//!     `configure set aws_secret_access_key S`; mc, mcli: `alias set NAME
//!     URL ACCESS S`, `config host add NAME URL ACCESS S`; vault, bao:
//!     `login S`; keytool: `-new S`.
//!
//!   `ssh -p`, `scp -P`, `nc -p`, `docker run -p`, `psql -p`,
//!   `redis-cli -p`, `mysql -P` stay readable.
//!
//! **Free text** (see `text.rs`, `tokens.rs`): all command-line rules on
//! its shell words (quoted strings are words, and are read again as
//! commands: `sh -c 'export API_TOKEN=…'`); `name=value`, `name: value`
//! (a header or YAML line: the rest of the line, auth scheme kept:
//! `Authorization: Bearer [REDACTED]`), `"name": "value"`, `name => v`,
//! `<name>v</name>`, connection strings (`Server=…;Password=…;`),
//! `user=u,password=p` option lists, query strings (`?sig=…&token=…`);
//! `Bearer …`, `Basic <base64>`; the password of URL userinfo
//! (`postgres://u:S@h`); vendor tokens by shape (`ghp_ gho_ ghu_ ghs_ ghr_
//! github_pat_ glpat- AKIA/ASIA… xox?- xapp- sk_live_ sk_test_ rk_ whsec_
//! AIza ya29. GOCSPX- npm_ pypi- hf_ hvs. dop_v1_ sk- SG. tskey-
//! AGE-SECRET-KEY-`, JWTs `eyJ….….…`); PEM private-key blocks (the body
//! between BEGIN and END). [`LineRedactor`] carries a PEM block across
//! lines and hides a line that is only a long mixed-case base64 blob (a
//! key body whose BEGIN line was cut off by a tail).
//!
//! The corpus of secret forms and of non-secrets that must stay readable
//! is data: `tests/data/redaction-corpus.toml`, run by the unit tests here
//! and by the e2e tests against `process_list`, `process_info`,
//! `container_inspect`, `container_logs` and the audit log.
//!
//! Output limits (how many entries or arguments are shown) are the caller's:
//! it passes only what it will show. `reveal` is the caller's decision that
//! this caller may see secrets (e.g. `reveal_secrets` with `docker:admin`);
//! values then come back unchanged.

use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::Value;

mod argv;
mod names;
mod text;
mod tokens;

#[cfg(test)]
mod tests;

pub use names::{is_secret_flag, is_secret_name};

/// Replacement for redacted values.
pub const REDACTED: &str = "[REDACTED]";

/// Env names whose values are shown by [`redact_env`] (besides `LC_*`): they
/// say how the program runs, not what it may access.
pub const ENV_SHOWN: &[&str] =
    &["PATH", "HOME", "HOSTNAME", "TERM", "LANG", "LANGUAGE", "TZ", "PWD", "SHLVL", "USER", "container"];

/// `s` with each span replaced by [`REDACTED`]; overlapping and touching
/// spans become one marker.
fn render(s: &str, mut spans: Vec<Range<usize>>) -> String {
    if spans.is_empty() {
        return s.to_string();
    }
    spans.sort_by_key(|r| (r.start, r.end));
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    let mut cur: Option<Range<usize>> = None;
    let flush = |r: Range<usize>, out: &mut String, pos: &mut usize| {
        // Spans are found at ASCII delimiters; widen defensively to char
        // boundaries so slicing can never panic.
        let mut start = r.start.min(s.len());
        while !s.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = r.end.min(s.len());
        while !s.is_char_boundary(end) {
            end += 1;
        }
        let start = start.max(*pos);
        if start >= end {
            return;
        }
        out.push_str(&s[*pos..start]);
        out.push_str(REDACTED);
        *pos = end;
    };
    for r in spans.into_iter().filter(|r| r.start < r.end) {
        cur = match cur {
            Some(c) if r.start <= c.end => Some(c.start..c.end.max(r.end)),
            Some(c) => {
                flush(c, &mut out, &mut pos);
                Some(r)
            }
            None => Some(r),
        };
    }
    if let Some(c) = cur {
        flush(c, &mut out, &mut pos);
    }
    out.push_str(&s[pos..]);
    out
}

/// Most passes of the rules over one value. One pass can change how the
/// next one reads a line (a redacted word was a program name, a quote
/// went with a value), so the rules run again until nothing changes:
/// redaction is idempotent, and whatever a second look would find is
/// found. Two passes settle every input the tests have found; the bound
/// only keeps a pathological input from looping.
const MAX_PASSES: usize = 4;

/// Free text with every rule applied (no JSON parsing), to a fixed point.
fn redact_free_text(s: &str) -> String {
    let first = text::spans(s);
    if first.is_empty() {
        // Nothing to hide: a second pass would find the same nothing (most
        // strings — every audit record's tool name — end here).
        return s.to_string();
    }
    let mut cur = render(s, first);
    for _ in 1..MAX_PASSES {
        let next = render(&cur, text::spans(&cur));
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

/// Returns a copy of `v` with secrets replaced by `"[REDACTED]"` (see the
/// module docs): the values of secret keys, `{"name": …, "value": …}`
/// pairs with a secret name, arrays of strings read as a command line,
/// every other string read as free text.
pub fn redact_args(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let pair_name = ["name", "Name", "key", "Key"]
                .iter()
                .filter_map(|k| map.get(*k).and_then(Value::as_str))
                .any(is_secret_name);
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, val) in map {
                let redact = is_secret_name(k) || (pair_name && (k == "value" || k == "Value"));
                let new = if redact && !matches!(val, Value::Null | Value::Bool(_)) {
                    Value::String(REDACTED.into())
                } else {
                    redact_args(val)
                };
                out.insert(k.clone(), new);
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            // Strings are the words of a command line; anything else
            // stands between them as an empty word.
            let words: Vec<&str> = items.iter().map(|x| x.as_str().unwrap_or_default()).collect();
            let redacted = redact_words(&words);
            items
                .iter()
                .zip(redacted)
                .map(|(item, r)| if item.is_string() { Value::String(r) } else { redact_args(item) })
                .collect()
        }
        Value::String(s) => Value::String(redact_free_text(s)),
        other => other.clone(),
    }
}

/// Each word with the command-line rules over all words and the free-text
/// rules inside each word, to a fixed point (see [`MAX_PASSES`]).
fn redact_words(words: &[&str]) -> Vec<String> {
    let mut cur = words_pass(words);
    for _ in 1..MAX_PASSES {
        let refs: Vec<&str> = cur.iter().map(String::as_str).collect();
        let next = words_pass(&refs);
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

fn words_pass(words: &[&str]) -> Vec<String> {
    let mut per_word: Vec<Vec<Range<usize>>> = words.iter().map(|w| text::spans(w)).collect();
    for (i, r) in argv::marks(words) {
        if let Some(v) = per_word.get_mut(i) {
            v.push(r);
        }
    }
    words.iter().zip(per_word).map(|(w, spans)| render(w, spans)).collect()
}

/// A command line as argv: the command-line rules over the arguments and
/// the free-text rules inside each argument (`-H 'Authorization: …'`,
/// `sh -c '…'`).
pub fn redact_argv(args: &[String]) -> Vec<String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    redact_words(&words)
}

/// A command (container command, health check): [`redact_argv`], or the
/// arguments unchanged when `reveal`.
pub fn redact_command(args: &[String], reveal: bool) -> Vec<String> {
    if reveal {
        return args.to_vec();
    }
    redact_argv(args)
}

/// `NAME=value` env entries: values hidden except for [`ENV_SHOWN`] and
/// `LC_*` names (and always for secret-looking ones). Returns the entries and
/// how many values were hidden.
pub fn redact_env(env: &[String], reveal: bool) -> (Vec<String>, usize) {
    let mut hidden = 0;
    let out = env
        .iter()
        .map(|e| {
            if reveal {
                return e.clone();
            }
            let (name, value) = e.split_once('=').unwrap_or((e.as_str(), ""));
            let shown = (ENV_SHOWN.contains(&name) || name.starts_with("LC_")) && !is_secret_name(name);
            if shown || value.is_empty() {
                redact_line(e)
            } else {
                hidden += 1;
                format!("{name}={REDACTED}")
            }
        })
        .collect();
    (out, hidden)
}

/// Key/value labels: the value of a secret-looking key is hidden, other
/// values are read as free text ([`redact_line`]).
pub fn redact_labels<'a>(
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
    reveal: bool,
) -> BTreeMap<String, String> {
    labels
        .into_iter()
        .map(|(k, v)| {
            let v = if reveal {
                v.clone()
            } else if is_secret_name(k) {
                REDACTED.to_string()
            } else {
                redact_line(v)
            };
            (k.clone(), v)
        })
        .collect()
}

/// Multi-line text (exec output): [`LineRedactor`] over its lines; a
/// final `\n` is kept.
pub fn redact_text(s: &str, reveal: bool) -> String {
    if reveal {
        return s.to_string();
    }
    let mut r = LineRedactor::default();
    s.split('\n').map(|l| r.line(l)).collect::<Vec<_>>().join("\n")
}

/// Redacts secrets inside one line of free text (log lines, a health
/// check's output): a JSON object structurally ([`redact_args`]),
/// otherwise every free-text rule (module docs). Multi-line text in one
/// string (a PEM key in an argument) is handled too.
pub fn redact_line(line: &str) -> String {
    let t = line.trim_start();
    if t.starts_with('{')
        && let Ok(v) = serde_json::from_str::<Value>(t)
        && v.is_object()
    {
        let r = redact_args(&v);
        return if r == v { line.to_string() } else { r.to_string() };
    }
    redact_free_text(line)
}

/// Redacts a stream of lines (container logs, exec output) with the
/// context one line lacks: inside a PEM private-key block every line is
/// hidden until its END line, and a line that is only a long mixed-case
/// base64 blob is hidden (a key body whose BEGIN line was cut off).
#[derive(Debug, Default)]
pub struct LineRedactor {
    in_pem: bool,
}

impl LineRedactor {
    /// One line (without its `\n`).
    pub fn line(&mut self, line: &str) -> String {
        if self.in_pem {
            if let Some(end) = line.find("-----END ") {
                self.in_pem = false;
                let head = if end > 0 { REDACTED } else { "" };
                return format!("{head}{}", redact_line(&line[end..]));
            }
            return if line.is_empty() { String::new() } else { REDACTED.to_string() };
        }
        if tokens::is_base64_blob_line(line) {
            return REDACTED.to_string();
        }
        if tokens::opens_pem_block(line) {
            self.in_pem = true;
        }
        redact_line(line)
    }
}
