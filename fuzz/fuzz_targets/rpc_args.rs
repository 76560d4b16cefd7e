//! Request and tool-argument decoding, as the spine does it.
//!
//! 1. Any line as a JSON-RPC message (rmcp's `ClientJsonRpcMessage`, what
//!    the stdio and HTTP front doors hand on): never panics, and what it
//!    decodes re-encodes to a message that decodes the same.
//! 2. Any JSON as the `arguments` of every tool: the schema check
//!    (`mcp::validate::check_args`, run before a tool) never panics, its
//!    refusals are `invalid_input` with a message and a hint of bounded
//!    size, what it accepts is an object with every required field and no
//!    field outside the schema; and for the tools whose typed `Input` is
//!    reachable here, arguments the tool itself would decode are never
//!    refused by the check (so the check cannot turn a valid call away).
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rmcp::handler::server::common::schema_for_input;
use rmcp::handler::server::tool::parse_json_object;
use rmcp::model::{ClientJsonRpcMessage, JsonObject};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tailops::mcp::ErrorCategory;
use tailops::mcp::validate::check_args;
use tailops::tools;

type Decode = fn(JsonObject) -> bool;

fn dec<T: DeserializeOwned>(o: JsonObject) -> bool {
    parse_json_object::<T>(o).is_ok()
}

struct Tool {
    name: String,
    schema: std::sync::Arc<JsonObject>,
    decode: Option<Decode>,
}

/// Tool name → its typed Input decoder, for the Input types public here;
/// each entry is checked against the router's schema at start-up.
fn typed() -> Vec<(&'static str, Decode, std::sync::Arc<JsonObject>)> {
    fn e<T: DeserializeOwned + JsonSchema + 'static>(name: &'static str) -> (&'static str, Decode, std::sync::Arc<JsonObject>) {
        (name, dec::<T>, schema_for_input::<T>().expect("input schema"))
    }
    use tools::files::{browse, read, search, write};
    vec![
        e::<tools::processes::ListInput>("process_list"),
        e::<tools::processes::InfoInput>("process_info"),
        e::<tools::processes::SignalInput>("process_signal"),
        e::<browse::StatInput>("file_stat"),
        e::<browse::ListInput>("file_list"),
        e::<read::ReadInput>("file_read"),
        e::<read::TailInput>("file_tail"),
        e::<read::HashInput>("file_hash"),
        e::<search::SearchInput>("file_search"),
        e::<write::WriteInput>("file_write"),
        e::<write::MkdirInput>("file_mkdir"),
        e::<write::MoveInput>("file_move"),
        e::<write::DeleteInput>("file_delete"),
        e::<tools::services::ServiceListInput>("service_list"),
        e::<tools::services::StatusInput>("service_status"),
        e::<tools::services::PageInput>("failed_units"),
        e::<tools::services::UnitInput>("service_restart"),
        e::<tools::journal::QueryInput>("journal_query"),
        e::<tools::journal::TailInput>("journal_tail"),
        e::<tools::system::CpuInput>("cpu_usage"),
        e::<tools::system::DiskInput>("disk_usage"),
        e::<tools::system::HistoryInput>("metrics_history"),
        e::<tools::audit::TailInput>("audit_tail"),
    ]
}

fn all_tools() -> &'static Vec<Tool> {
    static T: OnceLock<Vec<Tool>> = OnceLock::new();
    T.get_or_init(|| {
        let mut typed: BTreeMap<&str, (Decode, std::sync::Arc<JsonObject>)> =
            typed().into_iter().map(|(n, d, s)| (n, (d, s))).collect();
        let mut out: Vec<Tool> = tools::router()
            .list_all()
            .into_iter()
            .map(|t| {
                let decode = typed.remove(t.name.as_ref()).map(|(d, s)| {
                    assert_eq!(*s, *t.input_schema, "{}: the table names the wrong Input type", t.name);
                    d
                });
                Tool { name: t.name.to_string(), schema: t.input_schema.clone(), decode }
            })
            .collect();
        assert!(typed.is_empty(), "table names tools the router lacks: {:?}", typed.keys());
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    })
}

fuzz_target!(|data: &[u8]| {
    // 1. JSON-RPC decoding.
    if let Ok(msg) = serde_json::from_slice::<ClientJsonRpcMessage>(data) {
        let again = serde_json::to_value(&msg).expect("decoded message encodes");
        let back: ClientJsonRpcMessage = serde_json::from_value(again.clone()).expect("own encoding decodes");
        assert_eq!(serde_json::to_value(&back).expect("encodes"), again, "message changed on a round trip");
    }
    // 2. Tool arguments.
    let [pick, rest @ ..] = data else { return };
    let Ok(args) = serde_json::from_slice::<Value>(rest) else { return };
    let tools = all_tools();
    let tool = &tools[usize::from(*pick) % tools.len()];
    let verdict = check_args(&tool.schema, Some(&args));
    match &verdict {
        Err(e) => {
            assert_eq!(e.category, ErrorCategory::InvalidInput, "{}: refusal category", tool.name);
            assert!(!e.message.is_empty(), "{}: refusal without a message", tool.name);
            assert!(e.message.len() <= 1024, "{}: message of {} bytes echoes input", tool.name, e.message.len());
        }
        Ok(()) => {
            let obj = args.as_object().expect("accepted arguments are an object");
            let props = tool.schema.get("properties").and_then(Value::as_object);
            for k in obj.keys() {
                assert!(props.is_some_and(|p| p.contains_key(k)), "{}: accepted unknown field {k:?}", tool.name);
            }
            for r in tool.schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                let r = r.as_str().expect("required names are strings");
                assert!(obj.contains_key(r), "{}: accepted without required {r:?}", tool.name);
            }
        }
    }
    // Fields outside the schema are refused by design (a typo or a probe)
    // even where serde would ignore them.
    let props = tool.schema.get("properties").and_then(Value::as_object);
    if let (Some(decode), Value::Object(o)) = (tool.decode, &args)
        && o.keys().all(|k| props.is_some_and(|p| p.contains_key(k)))
        && decode(o.clone())
    {
        assert!(verdict.is_ok(), "{}: the tool decodes {args} but the check refuses it: {:?}", tool.name, verdict.err());
    }
});
