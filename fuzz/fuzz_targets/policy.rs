//! The policy/grant reader (`tailops::auth::policy`): whatever the grant
//! values and local policy say, the resolved access never holds more than
//! its input names, deny is never lost, and unreadable input fails closed.
//!
//! Input: JSON `{"grants": [..], "policy": {..}, "login": "..", "tags": [..]}`
//! (or a bare list of grant values). The policy part goes through the
//! config's own serde reader, so malformed rules are rejected as they are
//! at load time.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tailops::auth::identity::Principal;
use tailops::auth::policy::{Access, Decision, PolicyConfig};
use tailops::auth::scopes::{Role, Scope};

const CAP: &str = "tailops.dev/cap/tailops";

/// Every string anywhere in `v` (keys and values).
fn strings(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                out.insert(k.clone());
                strings(x, out);
            }
        }
        _ => {}
    }
}

/// Deny names a grant value carries in a readable `tools.deny` list.
fn grant_denies(v: &Value) -> Vec<String> {
    v.pointer("/tools/deny")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

fn clean_grant(v: &Value) -> bool {
    let Some(o) = v.as_object() else { return false };
    o.keys().all(|k| matches!(k.as_str(), "roles" | "scopes" | "tools" | "files"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<Value>(data) else { return };
    let (grants, policy_v, login, tags) = match &input {
        Value::Array(a) => (a.clone(), None, "alice@example.com".to_string(), Vec::new()),
        Value::Object(o) => (
            o.get("grants").and_then(Value::as_array).cloned().unwrap_or_default(),
            o.get("policy").cloned(),
            o.get("login").and_then(Value::as_str).unwrap_or("alice@example.com").to_string(),
            o.get("tags")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
        ),
        _ => return,
    };
    let policy = match policy_v {
        None => PolicyConfig::default(),
        Some(p) => match serde_json::from_value::<PolicyConfig>(p) {
            Ok(p) => p,
            Err(_) => return,
        },
    };
    let p = Principal {
        id: format!("user:{login}"),
        login_name: login.clone(),
        display_name: String::new(),
        tags: tags.clone(),
        node_name: "n".into(),
        node_id: "1".into(),
        source: "100.64.0.9:1234".parse().expect("addr"),
        capabilities: BTreeMap::from([(CAP.to_string(), grants.clone())]),
    };
    let a = Access::resolve(&p, CAP, &policy);

    // Everything the input names (grant strings; the policy's typed
    // roles/scopes and names, serialized back).
    let mut named = BTreeSet::new();
    strings(&Value::Array(grants.clone()), &mut named);
    strings(&serde_json::to_value(&policy).expect("policy serializes"), &mut named);
    let mut reachable: BTreeSet<Scope> = BTreeSet::new();
    for n in &named {
        if let Ok(s) = n.parse::<Scope>() {
            reachable.insert(s);
        }
        if let Ok(r) = n.parse::<Role>() {
            reachable.extend(r.scopes());
        }
    }
    for s in a.scopes.keys() {
        assert!(reachable.contains(s), "scope {s} held but no input names it or a role giving it");
    }
    for t in a.allow_tools.keys() {
        assert!(named.contains(t), "tool {t:?} allowed but not named");
    }
    if let Some(roots) = &a.file_roots {
        for r in roots.keys() {
            assert!(named.contains(r), "file root {r:?} visible but not named");
        }
    }
    // A grant value with an unknown field grants nothing itself.
    for (i, g) in grants.iter().enumerate() {
        let src = format!("grant {CAP}[{i}]");
        if !clean_grant(g) {
            for (s, sources) in &a.scopes {
                assert!(
                    !sources.iter().any(|x| x == &src || x.starts_with(&format!("{src} "))),
                    "unreadable grant value {i} gave scope {s}"
                );
            }
        }
        // Deny is never lost, and wins over any scope or allow.
        for d in grant_denies(g) {
            let key = d.trim().to_ascii_lowercase();
            assert!(a.deny_tools.contains_key(&key), "deny {d:?} of grant {i} lost");
            for scope in [None, Some(Scope::SystemRead)] {
                assert!(matches!(a.check(&key, scope, None), Decision::Deny(_)), "denied tool {key:?} allowed");
            }
        }
    }
    // Fail closed: withheld access holds nothing.
    if !a.withheld.is_empty() {
        assert!(a.scopes.is_empty() && a.allow_tools.is_empty(), "withheld access still holds scopes");
    }
    // A token narrows, never widens.
    let empty = BTreeSet::new();
    for s in a.scopes.keys() {
        assert!(!matches!(a.check("x_tool", Some(*s), Some(&empty)), Decision::Allow), "empty token allowed {s}");
    }
});
