//! `tailops config example`: every configuration key with its default and
//! its documentation, generated from the `Config` types themselves (their
//! JSON schema for names and doc comments, `Config::default()` for values)
//! so the example cannot drift from the code. A unit test parses the
//! output back and checks it equals `Config::default()`.
//!
//! Keys without a default (unset `Option`s) and the shape of array tables
//! (`[[policy.rules]]`, `[[sampler.alerts]]`) are shown commented out.

use serde_json::{Map, Value};

use crate::config::Config;

/// The example file, as TOML text.
pub fn example() -> String {
    let schema = schemars::schema_for!(Config);
    let root = schema.as_value();
    let empty = Value::Object(Map::new());
    let defs = root.get("$defs").unwrap_or(&empty);
    let value = serde_json::to_value(Config::default()).unwrap_or(Value::Null);
    let mut out = String::from(
        "# tailops configuration: every key with its default (`tailops config example`).\n\
         # Precedence: this file < TAILOPS_* environment variables < flags.\n\
         # Unknown keys are errors. Check a file with `tailops config check FILE`.\n",
    );
    let no_values = Map::new();
    table(&mut out, "", root, value.as_object().unwrap_or(&no_values), defs);
    out
}

/// Follows `$ref` (and a one-element `allOf`) into `$defs`.
fn resolve<'a>(s: &'a Value, defs: &'a Value) -> &'a Value {
    if let Some(name) = s.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/"))
        && let Some(d) = defs.get(name)
    {
        return resolve(d, defs);
    }
    if let Some([one]) = s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
        return resolve(one, defs);
    }
    s
}

fn description<'a>(s: &'a Value, defs: &'a Value) -> Option<&'a str> {
    s.get("description").and_then(Value::as_str).or_else(|| resolve(s, defs).get("description").and_then(Value::as_str))
}

fn is_table(s: &Value, defs: &Value) -> bool {
    resolve(s, defs).get("properties").is_some_and(Value::is_object)
}

/// `[[a.b]]` candidates: arrays whose items are tables.
fn item_table<'a>(s: &'a Value, defs: &'a Value) -> Option<&'a Value> {
    let items = resolve(s, defs).get("items")?;
    is_table(items, defs).then(|| resolve(items, defs))
}

fn comment(out: &mut String, text: &str, prefix: &str) {
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            out.push_str(&format!("{prefix}#\n"));
        } else {
            out.push_str(&format!("{prefix}# {line}\n"));
        }
    }
}

/// A JSON value as an inline TOML value.
fn inline(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(toml::Value::String(s.clone()).to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().filter_map(inline).collect();
            Some(format!("[{}]", items.join(", ")))
        }
        Value::Object(m) => {
            let items: Vec<String> =
                m.iter().filter_map(|(k, v)| inline(v).map(|v| format!("{} = {v}", key(k)))).collect();
            Some(format!("{{ {} }}", items.join(", ")))
        }
    }
}

/// A bare key when TOML allows one, else a quoted one.
fn key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        k.to_string()
    } else {
        toml::Value::String(k.to_string()).to_string()
    }
}

/// What an unset key holds, for its commented line.
fn type_hint(s: &Value, defs: &Value) -> String {
    let r = resolve(s, defs);
    let types: Vec<&str> = match r.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect(),
        _ => Vec::new(),
    };
    match types.first().copied() {
        Some("string") => "\"…\"".into(),
        Some("integer") | Some("number") => "0".into(),
        Some("boolean") => "false".into(),
        Some("array") => "[]".into(),
        _ => "…".into(),
    }
}

fn table(out: &mut String, path: &str, schema: &Value, values: &Map<String, Value>, defs: &Value) {
    let schema = resolve(schema, defs);
    let Some(props) = schema.get("properties").and_then(Value::as_object) else { return };
    let join = |k: &str| if path.is_empty() { key(k) } else { format!("{path}.{}", key(k)) };
    // Plain keys first (they belong to this table), then sub-tables.
    for (k, ps) in props {
        if is_table(ps, defs) || item_table(ps, defs).is_some() {
            continue;
        }
        out.push('\n');
        if let Some(d) = description(ps, defs) {
            comment(out, d, "");
        }
        let r = resolve(ps, defs);
        let is_map = r.get("additionalProperties").is_some_and(Value::is_object) && r.get("properties").is_none();
        match values.get(k).and_then(inline) {
            Some(v) if is_map && v == "{  }" => out.push_str(&format!("{} = {{}}\n", key(k))),
            Some(v) => out.push_str(&format!("{} = {v}\n", key(k))),
            None => out.push_str(&format!("# {} = {}    # unset by default\n", key(k), type_hint(ps, defs))),
        }
    }
    for (k, ps) in props {
        if is_table(ps, defs) {
            out.push('\n');
            if let Some(d) = description(ps, defs) {
                comment(out, d, "");
            }
            let full = join(k);
            out.push_str(&format!("[{full}]\n"));
            let no_values = Map::new();
            let sub = values.get(k).and_then(Value::as_object).unwrap_or(&no_values);
            table(out, &full, ps, sub, defs);
        } else if let Some(item) = item_table(ps, defs) {
            array_of_tables(out, &join(k), ps, item, values.get(k), defs);
        }
    }
}

/// `[[path]]`: the default entries (usually none), then the shape of one
/// entry, commented out.
fn array_of_tables(out: &mut String, path: &str, ps: &Value, item: &Value, values: Option<&Value>, defs: &Value) {
    out.push('\n');
    if let Some(d) = description(ps, defs) {
        comment(out, d, "");
    }
    for v in values.and_then(Value::as_array).into_iter().flatten() {
        out.push_str(&format!("[[{path}]]\n"));
        for (k, x) in v.as_object().into_iter().flatten() {
            if let Some(x) = inline(x) {
                out.push_str(&format!("{} = {x}\n", key(k)));
            }
        }
    }
    out.push_str(&format!("# One entry (repeat the block for more; none by default):\n# [[{path}]]\n"));
    let Some(props) = item.get("properties").and_then(Value::as_object) else { return };
    let required: Vec<&str> =
        item.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    for (k, p) in props {
        let doc = description(p, defs).map(|d| d.lines().next().unwrap_or_default().to_string()).unwrap_or_default();
        let val = p.get("default").and_then(inline).unwrap_or_else(|| type_hint(p, defs));
        let req = if required.contains(&k.as_str()) { "required" } else { "optional" };
        out.push_str(&format!("# {} = {val}    # {req}. {doc}\n", key(k)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_back_to_the_defaults() {
        let text = example();
        let parsed: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(parsed, Config::default(), "{text}");
    }

    /// Every key of every table appears, set or commented out.
    #[test]
    fn the_example_names_every_key() {
        let text = example();
        let schema = schemars::schema_for!(Config);
        let root = schema.as_value();
        let defs = root.get("$defs").cloned().unwrap_or_default();
        fn walk(s: &Value, defs: &Value, text: &str, path: &str) {
            let s = resolve(s, defs);
            for (k, p) in s.get("properties").and_then(Value::as_object).into_iter().flatten() {
                let full = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                if is_table(p, defs) {
                    assert!(text.contains(&format!("[{full}]")), "missing table [{full}]");
                    walk(p, defs, text, &full);
                } else if item_table(p, defs).is_some() {
                    assert!(text.contains(&format!("[[{full}]]")), "missing [[{full}]]");
                } else {
                    let set = text.lines().any(|l| l.starts_with(&format!("{k} = ")));
                    let unset = text.lines().any(|l| l.starts_with(&format!("# {k} = ")));
                    assert!(set || unset, "missing key {full}");
                }
            }
        }
        walk(root, &defs, &text, "");
        // Spot checks: a nested default, an unset key, the docs.
        assert!(text.contains("[limits.rate]\n") && text.contains("calls_per_minute = 100\n"), "{text}");
        assert!(text.contains("# control_url = \"…\"    # unset by default"), "{text}");
        assert!(text.contains("# Tailnet hostname of this node"), "{text}");
    }

    #[test]
    fn the_client_secret_is_never_printed() {
        let mut cfg = Config::default();
        cfg.oauth.introspection_client_secret = Some("hunter2-secret".into());
        let v = serde_json::to_string(&cfg).expect("json");
        assert!(!v.contains("hunter2"), "{v}");
    }
}
