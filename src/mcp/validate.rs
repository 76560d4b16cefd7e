//! Arguments checked against the tool's input schema BEFORE the tool runs,
//! so a wrong type, a missing or an unknown field is an `invalid_input`
//! error naming the field and the expected type — not serde's plain text
//! from deep inside the router. Generic: it reads the JSON Schema that
//! schemars generated for the tool, and knows no tool.
//!
//! It checks the top level (the object itself, required fields, unknown
//! fields — any field not in the schema, whatever `additionalProperties`
//! says —, each field's JSON type, integer bounds, inline enums). Anything
//! deeper that serde still rejects is turned into `invalid_input` by the
//! call wrapper (without a field path).

use serde_json::{Map, Value};

use super::contract::ToolError;

/// Checks `args` (the `arguments` of a `tools/call`, absent = `{}`) against
/// `schema`.
pub fn check_args(schema: &Map<String, Value>, args: Option<&Value>) -> Result<(), ToolError> {
    let empty = Value::Object(Map::new());
    let args = args.unwrap_or(&empty);
    let Some(obj) = args.as_object() else {
        return Err(ToolError::invalid_input(
            format!("arguments must be a JSON object, not {}", json_type(args)),
            "send arguments as an object of named fields, e.g. {\"pid\": 42}",
        ));
    };
    let props = schema.get("properties").and_then(Value::as_object);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !obj.contains_key(name) {
                let expected = props.and_then(|p| p.get(name)).map(describe).unwrap_or_else(|| "a value".into());
                return Err(ToolError::invalid_input(
                    format!("missing field `{name}`"),
                    format!("`{name}` is required: {expected}"),
                ));
            }
        }
    }
    for (name, value) in obj {
        // Every field a tool reads is in its schema; anything else is a
        // typo or a probe, and silently ignoring it would hide both.
        let Some(prop) = props.and_then(|p| p.get(name)) else {
            let known: Vec<&str> = props.map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
            return Err(ToolError::invalid_input(
                format!("unknown field `{}`", truncate(name, 64)),
                format!("known fields: {}", if known.is_empty() { "none".into() } else { known.join(", ") }),
            ));
        };
        check_value(name, prop, value)?;
    }
    Ok(())
}

fn check_value(name: &str, prop: &Value, value: &Value) -> Result<(), ToolError> {
    let wrong = || {
        ToolError::invalid_input(
            format!("field `{name}`: expected {}, got {}", describe(prop), json_type(value)),
            format!("`{name}` must be {}", describe(prop)),
        )
    };
    let types = types_of(prop);
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, value)) {
        return Err(wrong());
    }
    if let Some(n) = value.as_f64() {
        let below = prop.get("minimum").and_then(Value::as_f64).is_some_and(|m| n < m);
        let above = prop.get("maximum").and_then(Value::as_f64).is_some_and(|m| n > m);
        // Integer formats bound the value even without minimum/maximum.
        let out_of_format = match prop.get("format").and_then(Value::as_str) {
            Some("uint8") => !(0.0..=255.0).contains(&n),
            Some("uint16") => !(0.0..=65_535.0).contains(&n),
            Some("uint32") | Some("uint") => !(0.0..=4_294_967_295.0).contains(&n),
            Some("int32") => !(-2_147_483_648.0..=2_147_483_647.0).contains(&n),
            Some("uint64") => n < 0.0 || n > u64::MAX as f64,
            _ => false,
        };
        if below || above || out_of_format {
            return Err(ToolError::invalid_input(
                format!("field `{name}`: {n} is out of range"),
                format!("`{name}` must be {}", describe(prop)),
            ));
        }
    }
    if let (Some(options), false) = (prop.get("enum").and_then(Value::as_array), value.is_null())
        && !options.contains(value)
    {
        let shown: Vec<String> = options.iter().map(Value::to_string).collect();
        return Err(ToolError::invalid_input(
            format!("field `{name}`: {} is not one of the allowed values", truncate(&value.to_string(), 64)),
            format!("`{name}` must be one of {}", shown.join(", ")),
        ));
    }
    Ok(())
}

/// The JSON types a property allows (`type` as a string or a list).
fn types_of(prop: &Value) -> Vec<&str> {
    match prop.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        _ => true,
    }
}

/// "an integer (uint32, 0 to 500)" — what the hint tells the caller.
fn describe(prop: &Value) -> String {
    let types: Vec<&str> = types_of(prop).into_iter().filter(|t| *t != "null").collect();
    let mut s = match types.as_slice() {
        [] => "a value".to_string(),
        [t] => with_article(t),
        ts => ts.iter().map(|t| with_article(t)).collect::<Vec<_>>().join(" or "),
    };
    let mut extra = Vec::new();
    if let Some(f) = prop.get("format").and_then(Value::as_str) {
        extra.push(f.to_string());
    }
    match (prop.get("minimum").and_then(Value::as_f64), prop.get("maximum").and_then(Value::as_f64)) {
        (Some(a), Some(b)) => extra.push(format!("{a} to {b}")),
        (Some(a), None) => extra.push(format!("at least {a}")),
        (None, Some(b)) => extra.push(format!("at most {b}")),
        _ => {}
    }
    if !extra.is_empty() {
        s.push_str(&format!(" ({})", extra.join(", ")));
    }
    if types_of(prop).contains(&"null") {
        s.push_str(", or null");
    }
    s
}

fn with_article(t: &str) -> String {
    match t {
        "integer" | "object" | "array" => format!("an {t}"),
        other => format!("a {other}"),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}…", s.chars().take(max).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Map<String, Value> {
        let v = json!({
            "type": "object",
            "properties": {
                "pid": {"type": "integer", "format": "int32"},
                "limit": {"type": ["integer", "null"], "format": "uint32", "minimum": 0},
                "signal": {"type": ["string", "null"]},
                "sort": {"type": "string", "enum": ["cpu", "memory"]},
            },
            "required": ["pid"],
            "additionalProperties": false,
        });
        v.as_object().cloned().unwrap_or_default()
    }

    fn err(args: Value) -> ToolError {
        match check_args(&schema(), Some(&args)) {
            Err(e) => e,
            Ok(()) => ToolError::internal(format!("accepted {args}")),
        }
    }

    #[test]
    fn good_arguments_pass() {
        assert!(check_args(&schema(), Some(&json!({"pid": 4, "limit": null, "signal": "TERM"}))).is_ok());
        assert!(check_args(&schema(), Some(&json!({"pid": 4, "sort": "cpu"}))).is_ok());
    }

    #[test]
    fn each_failure_names_the_field_and_the_type() {
        let e = err(json!({"pid": "4"}));
        assert_eq!(e.category, crate::mcp::ErrorCategory::InvalidInput);
        assert!(e.message.contains("`pid`") && e.message.contains("a string"), "{e:?}");
        assert!(e.hint.contains("an integer"), "{e:?}");
        let e = err(json!({}));
        assert!(e.message.contains("missing field `pid`"), "{e:?}");
        let e = err(json!({"pid": 1, "bogus": 1}));
        assert!(e.message.contains("unknown field `bogus`") && e.hint.contains("pid"), "{e:?}");
        let e = err(json!({"pid": 1, "limit": -1}));
        assert!(e.message.contains("`limit`") && e.message.contains("out of range"), "{e:?}");
        let e = err(json!({"pid": 1, "limit": 5_000_000_000u64}));
        assert!(e.message.contains("out of range"), "{e:?}");
        let e = err(json!({"pid": 2_147_483_648u64}));
        assert!(e.message.contains("out of range"), "{e:?}");
        let e = err(json!({"pid": 1.5}));
        assert!(e.message.contains("fractional"), "{e:?}");
        let e = err(json!({"pid": 1, "sort": "disk"}));
        assert!(e.hint.contains("\"cpu\""), "{e:?}");
    }

    #[test]
    fn non_objects_are_refused() {
        for a in [json!([1]), json!("x"), json!(7), json!(null)] {
            let e = err(a.clone());
            assert!(e.message.starts_with("arguments must be a JSON object"), "{a}: {e:?}");
        }
        // Absent arguments are an empty object (and here miss `pid`).
        assert!(check_args(&schema(), None).is_err());
    }

    #[test]
    fn a_tool_without_parameters_takes_no_fields() {
        let none = json!({"type": "object", "properties": {}});
        let none = none.as_object().cloned().unwrap_or_default();
        assert!(check_args(&none, None).is_ok());
        assert!(check_args(&none, Some(&json!({}))).is_ok());
        let e = check_args(&none, Some(&json!({"x": 1}))).err();
        assert!(e.is_some_and(|e| e.message.contains("unknown field `x`") && e.hint.contains("none")));
    }
}
