//! Command lines read as words: the generic flag rules (`--password x`,
//! `--token=x`, `API_KEY=x`) and the per-program rules for flags that mean
//! a secret only for some programs (`mysql -pX`, `redis-cli -a X`,
//! `curl -u user:X`, `htpasswd -b file user X`, …).
//!
//! The engine reads a list of words (an argv, or the words of a line of
//! text) and returns *marks*: (word index, byte range inside that word)
//! to redact. A word naming a known program (its basename, anywhere in the
//! list: `sudo mysql`, `docker exec db mysql`, `sh -c 'mysql …'`) starts
//! that program's rules; a shell separator (`;`, `&&`, `||`, `|`, `&`)
//! ends them.

use std::ops::Range;

use super::names::{is_secret_flag, is_secret_name};

/// One redaction inside one word: (word index, byte range in the word).
pub(super) type Mark = (usize, Range<usize>);

/// Where a program flag's value may stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Take {
    /// Only in the same word: `-pSECRET`, `--password=SECRET`, `/p:SECRET`
    /// (mysql's `-p` alone prompts; the next word is the database).
    Attached,
    /// Only the next word (`-k SECRET`; `-kfile` is another flag).
    Next,
    /// In the same word or the next one: `-aSECRET`, `-a SECRET`.
    Both,
    /// Never: a switch whose name looks secret (psql `--password` = prompt).
    Never,
}

/// Which part of a value is the secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Whole,
    /// After the first `c`: `user:SECRET` (curl -u), `user%SECRET`
    /// (smbclient -U), `user,SECRET` (lftp -u). No `c`: no secret (the
    /// program prompts).
    AfterFirst(char),
    /// After the last `c`: `hmac-sha256:name:SECRET` (dig -y).
    AfterLast(char),
    /// Only when the value starts with this: `pass:SECRET` (openssl
    /// `-passin`; `env:VAR`, `file:PATH` name where the secret is).
    AfterPrefix(&'static str),
    /// Between the first `a` and the next `b` (or the end):
    /// `user/SECRET@db` (sqlplus).
    Between(char, char),
}

struct FlagRule {
    flag: &'static str,
    take: Take,
    part: Part,
    /// Only after this subcommand word (`docker login -p`; `docker run -p`
    /// is a port).
    after: Option<&'static str>,
}

/// Rules on positional words (words not starting with `-`).
enum Positional {
    /// When a short-flag cluster holds this letter, the last word
    /// (`htpasswd -b file user SECRET`, `htpasswd -nbB user SECRET`).
    LastIf(char),
    /// The n-th positional word (0-based, the program itself not counted).
    Nth(usize, Part),
    /// After the word `keyword` (any case): skip `skip` positional words,
    /// then redact `count` of them (`rabbitmqctl add_user NAME SECRET`,
    /// `redis-cli AUTH …`).
    After { keyword: &'static str, skip: usize, count: usize },
    /// After the word `keyword` (empty: anywhere), `NAME VALUE` pairs
    /// whose name looks secret (`nmcli … wifi-sec.psk SECRET`,
    /// `aws configure set aws_secret_access_key SECRET`).
    Pairs(&'static str),
}

struct Program {
    names: &'static [&'static str],
    flags: &'static [FlagRule],
    positional: &'static [Positional],
    /// The program runs another command, its first positional word
    /// (`sshpass -p S ssh -p 2222 host`: the second `-p` is ssh's port).
    wraps: bool,
}

const fn f(flag: &'static str, take: Take, part: Part) -> FlagRule {
    FlagRule { flag, take, part, after: None }
}
const fn after(flag: &'static str, take: Take, sub: &'static str) -> FlagRule {
    FlagRule { flag, take, part: Part::Whole, after: Some(sub) }
}

use Part::*;
use Take::*;

/// The per-program rules. Each line says what the program's manual says
/// the flag takes.
const PROGRAMS: &[Program] = &[
    Program {
        // `-pSECRET` only attached; `-p` alone prompts and `--password X`
        // leaves X as the database name. `-P` is the port.
        names: &[
            "mysql",
            "mariadb",
            "mysqldump",
            "mariadb-dump",
            "mysqladmin",
            "mariadb-admin",
            "mysqlimport",
            "mysqlcheck",
            "mysqlshow",
            "mysqlpump",
            "mysqlslap",
            "mysqlbinlog",
        ],
        flags: &[f("-p", Attached, Whole), f("--password", Attached, Whole)],
        // mysqladmin … password NEWSECRET
        positional: &[Positional::After { keyword: "password", skip: 0, count: 1 }],
        wraps: false,
    },
    Program {
        // `-W`/`--password` force a prompt; `-p` is the port.
        names: &[
            "psql",
            "pg_dump",
            "pg_dumpall",
            "pg_restore",
            "pg_basebackup",
            "createdb",
            "dropdb",
            "createuser",
            "dropuser",
            "vacuumdb",
            "reindexdb",
            "clusterdb",
            "pgbench",
            "pg_isready",
        ],
        flags: &[f("-W", Never, Whole), f("--password", Never, Whole)],
        positional: &[],
        wraps: false,
    },
    Program {
        // `-a SECRET`; `-p` is the port; AUTH [user] SECRET as a command.
        names: &["redis-cli", "valkey-cli", "keydb-cli"],
        flags: &[f("-a", Both, Whole)],
        positional: &[
            Positional::After { keyword: "auth", skip: 0, count: usize::MAX },
            Positional::After { keyword: "requirepass", skip: 0, count: 1 },
            Positional::After { keyword: "masterauth", skip: 0, count: 1 },
        ],
        wraps: false,
    },
    Program { names: &["sshpass"], flags: &[f("-p", Both, Whole)], positional: &[], wraps: true },
    Program {
        names: &["curl"],
        flags: &[
            f("-u", Both, AfterFirst(':')),
            f("--user", Both, AfterFirst(':')),
            f("-U", Both, AfterFirst(':')),
            f("--proxy-user", Both, AfterFirst(':')),
            f("-E", Both, AfterFirst(':')),
            f("--cert", Both, AfterFirst(':')),
            f("--proxy-cert", Both, AfterFirst(':')),
            f("-b", Both, Whole),
            f("--cookie", Both, Whole),
        ],
        positional: &[],
        wraps: false,
    },
    Program { names: &["etcdctl"], flags: &[f("--user", Both, AfterFirst(':'))], positional: &[], wraps: false },
    Program { names: &["htpasswd"], flags: &[], positional: &[Positional::LastIf('b')], wraps: false },
    Program {
        // `login -p SECRET`; `run -p 8080:80` is a port.
        names: &["docker", "podman", "nerdctl", "buildah", "helm", "oras", "crane", "regctl", "skopeo"],
        flags: &[after("-p", Both, "login")],
        positional: &[],
        wraps: false,
    },
    Program { names: &["az"], flags: &[after("-p", Both, "login")], positional: &[], wraps: false },
    Program {
        names: &[
            "mongo",
            "mongosh",
            "mongodump",
            "mongorestore",
            "mongoexport",
            "mongoimport",
            "mongostat",
            "mongotop",
            "mongofiles",
        ],
        flags: &[f("-p", Both, Whole)],
        positional: &[],
        wraps: false,
    },
    Program {
        names: &[
            "ldapsearch",
            "ldapadd",
            "ldapmodify",
            "ldapdelete",
            "ldapwhoami",
            "ldapcompare",
            "ldapmodrdn",
            "ldapexop",
        ],
        flags: &[f("-w", Both, Whole)],
        positional: &[],
        wraps: false,
    },
    Program {
        // -w bind secret, -s new secret, -a old secret.
        names: &["ldappasswd"],
        flags: &[f("-w", Both, Whole), f("-s", Both, Whole), f("-a", Both, Whole)],
        positional: &[],
        wraps: false,
    },
    Program { names: &["sqlcmd", "bcp", "osql"], flags: &[f("-P", Both, Whole)], positional: &[], wraps: false },
    Program {
        names: &["ipmitool"],
        flags: &[f("-P", Both, Whole), f("-k", Next, Whole)],
        positional: &[],
        wraps: false,
    },
    Program {
        names: &["mosquitto_pub", "mosquitto_sub", "mosquitto_rr"],
        flags: &[f("-P", Both, Whole)],
        positional: &[],
        wraps: false,
    },
    Program {
        names: &["smbclient", "smbget", "smbcacls", "smbtree", "rpcclient", "net", "mount.cifs"],
        flags: &[f("-U", Both, AfterFirst('%')), f("--user", Both, AfterFirst('%'))],
        positional: &[],
        wraps: false,
    },
    Program {
        names: &["xfreerdp", "wlfreerdp", "sdl-freerdp", "xfreerdp3", "sdl-freerdp3"],
        flags: &[f("/p:", Attached, Whole), f("/password:", Attached, Whole), f("/gp:", Attached, Whole)],
        positional: &[],
        wraps: false,
    },
    Program { names: &["rdesktop"], flags: &[f("-p", Both, Whole)], positional: &[], wraps: false },
    Program {
        // -N new passphrase, -P old passphrase.
        names: &["ssh-keygen"],
        flags: &[f("-N", Both, Whole), f("-P", Both, Whole)],
        positional: &[],
        wraps: false,
    },
    Program {
        names: &["zip", "zipcloak", "unzip", "funzip"],
        flags: &[f("-P", Both, Whole)],
        positional: &[],
        wraps: false,
    },
    Program {
        // `-pSECRET` attached; `-p` alone prompts.
        names: &["7z", "7za", "7zr", "rar", "unrar"],
        flags: &[f("-p", Attached, Whole)],
        positional: &[],
        wraps: false,
    },
    Program {
        names: &["openssl"],
        flags: &[
            f("-k", Next, Whole),
            f("-pass", Next, AfterPrefix("pass:")),
            f("-passin", Next, AfterPrefix("pass:")),
            f("-passout", Next, AfterPrefix("pass:")),
        ],
        positional: &[],
        wraps: false,
    },
    Program {
        // -c community, -A auth passphrase, -X privacy passphrase.
        names: &[
            "snmpwalk",
            "snmpget",
            "snmpgetnext",
            "snmpset",
            "snmpbulkwalk",
            "snmpbulkget",
            "snmptable",
            "snmptrap",
            "snmpinform",
            "snmpdf",
            "snmpstatus",
            "snmpnetstat",
        ],
        flags: &[f("-c", Both, Whole), f("-A", Both, Whole), f("-X", Both, Whole)],
        positional: &[],
        wraps: false,
    },
    Program {
        // -p takes the (hashed) password.
        names: &["useradd", "usermod"],
        flags: &[f("-p", Both, Whole)],
        positional: &[],
        wraps: false,
    },
    Program {
        // user/SECRET@db as the first positional.
        names: &["sqlplus", "sqlldr", "expdp", "impdp", "exp", "imp"],
        flags: &[],
        positional: &[Positional::Nth(0, Between('/', '@'))],
        wraps: false,
    },
    Program { names: &["lftp"], flags: &[f("-u", Both, AfterFirst(','))], positional: &[], wraps: false },
    Program {
        names: &["ncftp", "ncftpget", "ncftpput", "ncftpls", "cqlsh", "cypher-shell"],
        flags: &[f("-p", Both, Whole)],
        positional: &[],
        wraps: false,
    },
    Program { names: &["dig", "nsupdate"], flags: &[f("-y", Both, AfterLast(':'))], positional: &[], wraps: false },
    Program { names: &["nmcli"], flags: &[], positional: &[Positional::Pairs("")], wraps: false },
    Program { names: &["wpa_passphrase"], flags: &[], positional: &[Positional::Nth(1, Whole)], wraps: false },
    Program {
        names: &["rabbitmqctl"],
        flags: &[],
        positional: &[
            Positional::After { keyword: "add_user", skip: 1, count: 1 },
            Positional::After { keyword: "change_password", skip: 1, count: 1 },
            Positional::After { keyword: "authenticate_user", skip: 1, count: 1 },
        ],
        wraps: false,
    },
    Program { names: &["aws"], flags: &[], positional: &[Positional::Pairs("set")], wraps: false },
    Program {
        // mc alias set NAME URL ACCESS SECRET / mc config host add NAME URL ACCESS SECRET
        names: &["mc", "mcli"],
        flags: &[],
        positional: &[
            Positional::After { keyword: "set", skip: 2, count: 2 },
            Positional::After { keyword: "add", skip: 2, count: 2 },
        ],
        wraps: false,
    },
    Program {
        names: &["vault", "bao"],
        flags: &[],
        positional: &[Positional::After { keyword: "login", skip: 0, count: 1 }],
        wraps: false,
    },
    Program { names: &["keytool"], flags: &[f("-new", Next, Whole)], positional: &[], wraps: false },
];

/// Every program name with rules, for the module docs' tests.
#[cfg(test)]
pub(super) fn program_names() -> impl Iterator<Item = &'static str> {
    PROGRAMS.iter().flat_map(|p| p.names.iter().copied())
}

fn program_of(word: &str) -> Option<&'static Program> {
    let base = word.rsplit('/').next().unwrap_or(word);
    if base.is_empty() {
        return None;
    }
    PROGRAMS.iter().find(|p| p.names.contains(&base))
}

/// Shell separators between commands.
fn is_separator(w: &str) -> bool {
    matches!(w, ";" | "&&" | "||" | "|" | "&" | "|&" | "(" | ")" | "{" | "}" | "then" | "do" | "else")
}

/// The span of the secret in `value` (which starts at byte `at` of its
/// word), quotes around the whole value left out.
fn part_span(value: &str, at: usize, part: Part) -> Option<Range<usize>> {
    let (inner, q) = strip_quotes(value);
    let base = at + q;
    let r = match part {
        Whole => 0..inner.len(),
        AfterFirst(c) => inner.find(c).map(|i| i + 1..inner.len())?,
        AfterLast(c) => inner.rfind(c).map(|i| i + 1..inner.len())?,
        AfterPrefix(p) => inner.starts_with(p).then_some(p.len()..inner.len())?,
        Between(a, b) => {
            let s = inner.find(a)? + 1;
            let e = inner[s..].find(b).map_or(inner.len(), |i| s + i);
            s..e
        }
    };
    (r.start < r.end).then(|| base + r.start..base + r.end)
}

/// `"x"` / `'x'` → (`x`, 1); anything else unchanged.
pub(super) fn strip_quotes(v: &str) -> (&str, usize) {
    let b = v.as_bytes();
    if b.len() >= 2 && matches!(b[0], b'"' | b'\'') && b[b.len() - 1] == b[0] {
        (&v[1..v.len() - 1], 1)
    } else {
        (v, 0)
    }
}

/// Marks of the secrets in `words` (an argv, or the words of a line).
pub(super) fn marks(words: &[&str]) -> Vec<Mark> {
    let mut out = Vec::new();
    let mut prog: Option<&'static Program> = None;
    let mut seg_start = 0;
    // Subcommand words of the current program that some flag rule waits
    // for (`login`), kept as they pass so the check stays linear.
    let mut seen: Vec<&'static str> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if let Some(p) = prog
            && let Some(sub) = p.flags.iter().filter_map(|r| r.after).find(|sub| *sub == w)
            && !seen.contains(&sub)
        {
            seen.push(sub);
        }
        if is_separator(w) {
            positional(prog, words, seg_start, i, &mut out);
            prog = None;
            i += 1;
            continue;
        }
        if prog.is_some_and(|p| p.wraps) && !w.starts_with('-') {
            positional(prog, words, seg_start, i, &mut out);
            prog = None;
        }
        if let Some(p) = program_of(w) {
            positional(prog, words, seg_start, i, &mut out);
            prog = Some(p);
            seg_start = i;
            seen.clear();
            i += 1;
            continue;
        }
        i += flag_rule(prog, words, &seen, i, &mut out).unwrap_or_else(|| generic(words, i, &mut out));
    }
    positional(prog, words, seg_start, words.len(), &mut out);
    out
}

/// The program's flag rule at word `i`: how many words it used, or `None`
/// when no rule of the program applies (the generic rules then do).
fn flag_rule(
    prog: Option<&'static Program>,
    words: &[&str],
    seen: &[&'static str],
    i: usize,
    out: &mut Vec<Mark>,
) -> Option<usize> {
    let p = prog?;
    let w = words[i];
    for r in p.flags {
        if let Some(sub) = r.after
            && !seen.contains(&sub)
        {
            continue;
        }
        if w == r.flag {
            if matches!(r.take, Next | Both)
                && let Some(next) = words.get(i + 1)
                && !is_separator(next)
            {
                out.extend(part_span(next, 0, r.part).map(|s| (i + 1, s)));
                return Some(2);
            }
            return Some(1);
        }
        let attached = if r.flag.starts_with("--") { format!("{}=", r.flag) } else { r.flag.to_string() };
        if w.len() > attached.len() && w.starts_with(&attached) {
            if matches!(r.take, Attached | Both) {
                out.extend(part_span(&w[attached.len()..], attached.len(), r.part).map(|s| (i, s)));
            } else if r.flag.starts_with("--") {
                // `--password=x` for a switch: still a value, still hidden.
                out.extend(part_span(&w[attached.len()..], attached.len(), Whole).map(|s| (i, s)));
            } else {
                continue;
            }
            return Some(1);
        }
    }
    None
}

/// The rules for every program: `--name=value` / `--name:value` and
/// `--name value` with a secret-looking name, and `NAME=value` env
/// assignments.
fn generic(words: &[&str], i: usize, out: &mut Vec<Mark>) -> usize {
    let w = words[i];
    if w.starts_with('-')
        && let Some(sep) = w.find(['=', ':'])
    {
        let name = &w[..sep];
        if is_secret_flag(name) {
            out.extend(part_span(&w[sep + 1..], sep + 1, Whole).map(|s| (i, s)));
        }
        return 1;
    }
    if is_secret_flag(w) {
        // A program name after the flag is the next command, not a value
        // (and redacting it would change how a second pass reads the line).
        if let Some(next) = words.get(i + 1)
            && !is_separator(next)
            && program_of(next).is_none()
        {
            out.extend(part_span(next, 0, Whole).map(|s| (i + 1, s)));
            return 2;
        }
        return 1;
    }
    if let Some(eq) = w.find('=') {
        let name = &w[..eq];
        let ident = name.bytes().next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
            && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
        if ident && is_secret_name(name) {
            // An unquoted value ends at whitespace: `sh -c 'PGPASSWORD=x
            // pg_dump …'` is one argument, and the script after the value
            // stays readable.
            let value = &w[eq + 1..];
            let value = match strip_quotes(value) {
                (_, 1) => value,
                _ => value.split(char::is_whitespace).next().unwrap_or_default(),
            };
            out.extend(part_span(value, eq + 1, Whole).map(|s| (i, s)));
        }
    }
    1
}

/// Positional words of `words[from..to]`: not flags, not the values of
/// the program's own value-taking flags.
fn positionals(p: &Program, words: &[&str], from: usize, to: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = from;
    while i < to {
        let w = words[i];
        if w.starts_with('-') && w.len() > 1 {
            let takes_next = p.flags.iter().any(|r| r.flag == w && matches!(r.take, Next | Both)) || is_secret_flag(w);
            i += if takes_next { 2 } else { 1 };
            continue;
        }
        out.push(i);
        i += 1;
    }
    out
}

fn positional(prog: Option<&'static Program>, words: &[&str], seg_start: usize, end: usize, out: &mut Vec<Mark>) {
    let Some(p) = prog else { return };
    if p.positional.is_empty() || seg_start + 1 >= end {
        return;
    }
    let pos = positionals(p, words, seg_start + 1, end);
    for rule in p.positional {
        match *rule {
            Positional::LastIf(letter) => {
                // The last word, whatever it looks like: the password may
                // well start with `-`.
                let last = end - 1;
                let cluster = words[seg_start + 1..last]
                    .iter()
                    .any(|w| w.starts_with('-') && !w.starts_with("--") && w[1..].contains(letter));
                if cluster {
                    out.extend(part_span(words[last], 0, Whole).map(|s| (last, s)));
                }
            }
            Positional::Nth(n, part) => {
                if let Some(&at) = pos.get(n) {
                    out.extend(part_span(words[at], 0, part).map(|s| (at, s)));
                }
            }
            Positional::After { keyword, skip, count } => {
                if let Some(k) = pos.iter().position(|&x| words[x].eq_ignore_ascii_case(keyword)) {
                    for &at in pos.iter().skip(k + 1 + skip).take(count) {
                        out.extend(part_span(words[at], 0, Whole).map(|s| (at, s)));
                    }
                }
            }
            Positional::Pairs(keyword) => {
                let from = if keyword.is_empty() {
                    0
                } else {
                    match pos.iter().position(|&x| words[x].eq_ignore_ascii_case(keyword)) {
                        Some(k) => k + 1,
                        None => continue,
                    }
                };
                let mut j = from;
                while j + 1 < pos.len() {
                    if is_secret_name(words[pos[j]]) {
                        let at = pos[j + 1];
                        out.extend(part_span(words[at], 0, Whole).map(|s| (at, s)));
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
            }
        }
    }
}
