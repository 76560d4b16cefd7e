//! Services and journal tools against a REAL systemd (252, PID 1 of a
//! container in a test-owned dockerd; see `support::systemd`) and a real
//! `tailops serve` reaching it over the bind-mounted system bus and
//! journal directory: jobs and their results, a failing unit and its
//! journal lines, the deny list (aliases included), scopes and audit
//! records, paging a 120k-entry journal by cursor both ways, grep on
//! redacted text, follow with progress and cancellation — and a host
//! without systemd, where both domains are `unavailable` and the rest works.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::mcp::{Client, Via, cancel_until_recorded, client, fails, ok, post_sse};
use crate::support::server::ServerProcess;
use crate::support::systemd::SystemdBox;

const RATE: &str = "[limits.rate]\ncalls_per_minute = 6000\nburst = 500\nwrites_per_minute = 6000\nwrite_burst = 500\n";

const ECHO_SCRIPT: &str = "#!/bin/sh\ntrap 'echo \"reloaded with password=hunter2\"' HUP\necho \"echo-svc started\"\nwhile :; do sleep 1 & wait $!; done\n";
const ECHO_UNIT: &str = "[Unit]\nDescription=tailops test echo\n[Service]\nExecStart=/usr/local/bin/echo-svc\nExecReload=/bin/sh -c \"kill -HUP $MAINPID\"\n[Install]\nWantedBy=multi-user.target\n";
const FAIL_UNIT: &str = "[Unit]\nDescription=tailops test failing job\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo \"db connect failed token=s3cr3tvalue\"; exit 3'\n";
const TIMER: &str =
    "[Unit]\nDescription=nightly\n[Timer]\nOnCalendar=*-*-* 03:00:00\n[Install]\nWantedBy=timers.target\n";
const TIMER_SERVICE: &str = "[Service]\nType=oneshot\nExecStart=/bin/true\n";
/// 120,000 journal entries (`1` … `120000`) in a few seconds.
pub const FLOOD_N: u64 = 120_000;
const FLOOD_UNIT: &str = "[Service]\nType=oneshot\nLogRateLimitIntervalSec=0\nExecStart=/usr/bin/seq 1 120000\n";
const TICKER_SCRIPT: &str = "#!/bin/sh\ni=0\nwhile :; do i=$((i+1)); echo \"tick $i\"; sleep 0.2; done\n";
const TICKER_UNIT: &str = "[Service]\nExecStart=/usr/local/bin/ticker\n";

fn services_box() -> SystemdBox {
    SystemdBox::start(
        &[
            ("usr/local/bin/echo-svc", ECHO_SCRIPT),
            ("etc/systemd/system/web-echo.service", ECHO_UNIT),
            ("etc/systemd/system/job-fail.service", FAIL_UNIT),
            ("etc/systemd/system/nightly.timer", TIMER),
            ("etc/systemd/system/nightly.service", TIMER_SERVICE),
        ],
        &[("web-echo.service", "multi-user.target"), ("nightly.timer", "timers.target")],
    )
}

fn config(role: &str, b: &SystemdBox, extra: &str) -> String {
    format!("[local]\nname = \"sd\"\nroles = [\"{role}\"]\n{RATE}{}", b.config(extra))
}

fn serve(cfg: &str) -> (ServerProcess, SocketAddr, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tmp");
    let (s, addr) = ServerProcess::start_dev(tmp.path(), cfg, &[]);
    (s, addr, tmp)
}

fn unit_names(v: &Value) -> Vec<String> {
    v["units"].as_array().expect("units").iter().filter_map(|u| u["name"].as_str().map(str::to_string)).collect()
}

fn messages(v: &Value) -> Vec<String> {
    let list = v.get("entries").or_else(|| v.get("log")).and_then(Value::as_array).expect("entries");
    list.iter().map(|e| e["message"].as_str().unwrap_or_default().to_string()).collect()
}

/// The numbers among a page's messages (the flood unit's lines).
fn numbers(v: &Value) -> Vec<u64> {
    messages(v).iter().filter_map(|m| m.parse().ok()).collect()
}

/// Calls `tool` until `pred` holds on its output (the journal lags a little).
async fn until(c: &mut Client, tool: &str, args: Value, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = ok(c, tool, args.clone()).await;
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn records(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("state/audit.jsonl"))
        .expect("audit log")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_jobs_failures_deny_list_scopes_and_audit() {
    let b = services_box();
    // An alias of dbus.service under a harmless-looking name.
    b.exec(&["ln", "-s", "/lib/systemd/system/dbus.service", "/etc/systemd/system/harmless.service"]);
    b.exec(&["systemctl", "daemon-reload"]);
    let allow = "allow_units = [\"web-*\", \"job-*\", \"dbus*\", \"harmless*\"]\n";
    let (mut s, addr, tmp) = serve(&config("admin", &b, allow));
    let (_v, vaddr, _tv) = serve(&config("viewer", &b, allow));
    let mut c = client(addr).await;

    // Lists.
    let l = ok(&mut c, "service_list", json!({})).await;
    let names = unit_names(&l);
    assert!(names.contains(&"web-echo.service".into()) && names.contains(&"dbus.service".into()), "{l}");
    assert!(names.iter().all(|n| n.ends_with(".service")), "services by default: {l}");
    let l = ok(&mut c, "service_list", json!({"pattern": "web-*"})).await;
    assert_eq!(unit_names(&l), ["web-echo.service"], "{l}");
    let row = &l["units"][0];
    assert_eq!((row["active_state"].as_str(), row["sub_state"].as_str()), (Some("active"), Some("running")), "{l}");
    let l = ok(&mut c, "service_list", json!({"unit_type": "timer"})).await;
    assert!(unit_names(&l).contains(&"nightly.timer".into()), "{l}");
    // Two pages join into the first four of the whole list (retried while
    // systemd still loads or collects units between the calls).
    let mut tries = 0;
    loop {
        let all = ok(&mut c, "service_list", json!({"unit_type": "all"})).await;
        let p1 = ok(&mut c, "service_list", json!({"unit_type": "all", "limit": 2})).await;
        let p2 = ok(&mut c, "service_list", json!({"unit_type": "all", "limit": 2, "cursor": p1["next_cursor"]})).await;
        let again = ok(&mut c, "service_list", json!({"unit_type": "all"})).await;
        if unit_names(&all) != unit_names(&again) && tries < 5 {
            tries += 1;
            continue;
        }
        assert_eq!((p1["total"].clone(), p1["truncated"].as_bool()), (all["total"].clone(), Some(true)), "{p1}");
        assert_eq!([unit_names(&p1), unit_names(&p2)].concat(), unit_names(&all)[..4].to_vec());
        break;
    }
    for (args, cat) in [
        (json!({"limit": 0}), "invalid_input"),
        (json!({"limit": 1001}), "invalid_input"),
        (json!({"cursor": "o:x"}), "invalid_input"),
        (json!({"pattern": "a b"}), "invalid_input"),
        (json!({"unit_type": "exe"}), "invalid_input"),
    ] {
        assert_eq!(fails(&mut c, "service_list", args.clone()).await.0, cat, "{args}");
    }
    let t = ok(&mut c, "timer_list", json!({})).await;
    let nightly = t["timers"].as_array().and_then(|a| a.iter().find(|x| x["name"] == "nightly.timer")).cloned();
    let nightly = nightly.expect("nightly.timer listed");
    assert_eq!(nightly["activates"], "nightly.service", "{nightly}");
    assert!(nightly["next_run"].as_str().is_some_and(|n| n.contains("T03:00:00")), "{nightly}");

    // Status with the cgroup figures and the last lines.
    let st = until(&mut c, "service_status", json!({"unit": "web-echo"}), "web-echo's first line", |v| {
        messages(v).iter().any(|m| m == "echo-svc started")
    })
    .await;
    assert_eq!((st["name"].as_str(), st["active_state"].as_str()), (Some("web-echo.service"), Some("active")), "{st}");
    assert_eq!(st["unit_file_state"], "enabled", "{st}");
    assert_eq!(st["fragment_path"], "/etc/systemd/system/web-echo.service");
    assert!(st["service"]["main_pid"].as_u64().is_some_and(|p| p > 1), "{st}");
    assert!(st["since"].as_str().is_some(), "{st}");
    assert_eq!(st["can_reload"], true);
    let (cat, _) = fails(&mut c, "service_status", json!({"unit": "web-missing"})).await;
    assert_eq!(cat, "not_found");
    let (cat, _) = fails(&mut c, "service_status", json!({"unit": "web-echo", "log_lines": 101})).await;
    assert_eq!(cat, "invalid_input");
    let st = ok(&mut c, "service_status", json!({"unit": "web-echo", "log_lines": 0})).await;
    assert_eq!(st["log"].as_array().map(Vec::len), Some(0));

    // Jobs: stop, start, restart, reload — each result and the state after,
    // cross-checked inside the box.
    let j = ok(&mut c, "service_stop", json!({"unit": "web-echo"})).await;
    assert_eq!(
        (j["job_result"].as_str(), j["after"]["active_state"].as_str()),
        (Some("done"), Some("inactive")),
        "{j}"
    );
    assert_eq!(j["before"]["active_state"], "active");
    assert_eq!(b.exec(&["systemctl", "is-active", "web-echo"]), "inactive");
    let j = ok(&mut c, "service_start", json!({"unit": "web-echo.service"})).await;
    assert_eq!((j["job_result"].as_str(), j["after"]["active_state"].as_str()), (Some("done"), Some("active")), "{j}");
    let pid = j["after"]["main_pid"].as_u64().expect("main pid");
    let j = ok(&mut c, "service_restart", json!({"unit": "web-echo"})).await;
    assert_eq!(j["job_result"], "done", "{j}");
    assert!(j["after"]["main_pid"].as_u64().is_some_and(|p| p != pid), "a new main process: {j}");
    // Reload once the new process has set its HUP trap (it logs after).
    until(&mut c, "journal_query", json!({"unit": "web-echo", "grep": "echo-svc started"}), "3 starts", |v| {
        messages(v).len() >= 3
    })
    .await;
    let j = ok(&mut c, "service_reload", json!({"unit": "web-echo"})).await;
    assert_eq!((j["job_result"].as_str(), j["after"]["active_state"].as_str()), (Some("done"), Some("active")), "{j}");
    let q = until(&mut c, "journal_query", json!({"unit": "web-echo", "grep": "reloaded"}), "the reload line", |v| {
        !messages(v).is_empty()
    })
    .await;
    assert!(messages(&q).iter().all(|m| !m.contains("hunter2") && m.contains("password=")), "redacted: {q}");
    let q = ok(&mut c, "journal_query", json!({"unit": "web-echo", "grep": "hunter2"})).await;
    assert_eq!(messages(&q).len(), 0, "grep is no oracle for the redacted part: {q}");

    // A failing unit: the job fails, its status says why, its lines are there (redacted).
    let j = ok(&mut c, "service_start", json!({"unit": "job-fail"})).await;
    assert_eq!(
        (j["job_result"].as_str(), j["after"]["active_state"].as_str()),
        (Some("failed"), Some("failed")),
        "{j}"
    );
    assert_eq!(j["after"]["result"], "exit-code", "{j}");
    let f = ok(&mut c, "failed_units", json!({})).await;
    assert!(unit_names(&f).contains(&"job-fail.service".into()), "{f}");
    let st = until(&mut c, "service_status", json!({"unit": "job-fail"}), "job-fail's lines", |v| {
        messages(v).iter().any(|m| m.contains("db connect failed"))
    })
    .await;
    assert_eq!((st["active_state"].as_str(), st["service"]["result"].as_str()), (Some("failed"), Some("exit-code")));
    assert_eq!(st["service"]["exec_main_status"], 3, "{st}");
    assert!(!st.to_string().contains("s3cr3tvalue"), "token redacted: {st}");
    let (cat, e) = fails(&mut c, "service_reload", json!({"unit": "job-fail"})).await;
    assert_eq!(cat, "conflict", "a oneshot cannot reload: {e}");

    // The deny list wins over the allow list, under any name of the unit.
    let before = b.exec(&["systemctl", "show", "-P", "MainPID", "dbus"]);
    for unit in ["dbus", "harmless", "systemd-journald", "ssh", "getty@tty1", "-.mount", "system.slice", "tailops"] {
        let (cat, e) = fails(&mut c, "service_restart", json!({"unit": unit})).await;
        assert_eq!(cat, "permission_denied", "{unit}: {e}");
    }
    let (_, e) = fails(&mut c, "service_stop", json!({"unit": "harmless"})).await;
    assert!(e["message"].as_str().is_some_and(|m| m.contains("dbus.service")), "the alias is seen through: {e}");
    assert_eq!(b.exec(&["systemctl", "show", "-P", "MainPID", "dbus"]), before, "dbus untouched");
    let (cat, e) = fails(&mut c, "service_start", json!({"unit": "nightly"})).await;
    assert!(cat == "permission_denied" && e["message"].as_str().is_some_and(|m| m.contains("allow_units")), "{e}");
    for bad in ["../etc/passwd", "--help", "a b", ""] {
        assert_eq!(fails(&mut c, "service_start", json!({"unit": bad})).await.0, "invalid_input", "{bad:?}");
    }
    assert_eq!(fails(&mut c, "service_start", json!({"unit": "web-missing"})).await.0, "not_found");

    // Scopes: a viewer sees and reads, but cannot change anything.
    let mut v = client(vaddr).await;
    let vt = v.tool_names().await;
    for t in ["service_list", "service_status", "failed_units", "timer_list", "journal_query", "journal_tail"] {
        assert!(vt.contains(&t.to_string()), "viewer has {t}: {vt:?}");
    }
    for t in ["service_start", "service_stop", "service_restart", "service_reload"] {
        assert!(!vt.contains(&t.to_string()), "viewer lacks {t}: {vt:?}");
        let (cat, e) = fails(&mut v, t, json!({"unit": "web-echo"})).await;
        assert_eq!(cat, "permission_denied", "{t}: {e}");
    }
    assert_eq!(b.exec(&["systemctl", "is-active", "web-echo"]), "active");

    // Audit: intents before jobs, refusals with their unit and category.
    s.stop();
    let recs = records(tmp.path());
    let by = |tool: &str, unit: &str| -> Vec<&Value> {
        recs.iter().filter(|r| r["tool"] == tool && r["args"]["unit"] == unit).collect()
    };
    let stop = by("service_stop", "web-echo");
    assert!(stop.len() >= 2, "intent and outcome: {stop:?}");
    assert_eq!(stop[0]["kind"], "decision", "the intent comes first: {stop:?}");
    assert_eq!(stop.last().map(|r| r["outcome"].clone()), Some(json!("ok")), "{stop:?}");
    let refused = by("service_restart", "dbus");
    assert!(
        refused.iter().any(|r| r["kind"] == "tool_call" && r["error_category"] == "permission_denied"),
        "the deny-list refusal is audited: {refused:?}"
    );
    assert!(by("service_stop", "harmless").iter().any(|r| r["error_category"] == "permission_denied"), "{recs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_pages_120k_entries_by_cursor_greps_and_follows() {
    let b = SystemdBox::start(
        &[
            ("etc/systemd/system/log-flood.service", FLOOD_UNIT),
            ("usr/local/bin/ticker", TICKER_SCRIPT),
            ("etc/systemd/system/log-ticker.service", TICKER_UNIT),
        ],
        &[],
    );
    let (_s, addr, _t) = serve(&config("admin", &b, ""));
    let mut c = client(addr).await;

    let j = ok(&mut c, "service_start", json!({"unit": "log-flood"})).await;
    assert_eq!(j["job_result"], "done", "{j}");
    let last = FLOOD_N.to_string();
    until(&mut c, "journal_query", json!({"unit": "log-flood", "grep": last, "max_lines": 1}), "all entries", |v| {
        messages(v).contains(&last)
    })
    .await;

    // Forward from the start, 10,000 at a time: every number once, in order.
    let mut seen: Vec<u64> = Vec::with_capacity(FLOOD_N as usize);
    let mut args = json!({"unit": "log-flood", "since": "0", "max_lines": 10000, "max_bytes": 8 << 20});
    let mut pages = 0;
    loop {
        let p = ok(&mut c, "journal_query", args.clone()).await;
        pages += 1;
        seen.extend(numbers(&p));
        if !p["truncated"].as_bool().expect("truncated") {
            break;
        }
        args =
            json!({"unit": "log-flood", "after_cursor": p["newer_cursor"], "max_lines": 10000, "max_bytes": 8 << 20});
        assert!(pages < 40, "paging must end");
    }
    assert_eq!(seen.len() as u64, FLOOD_N, "pages {pages}");
    assert!(seen.iter().copied().eq(1..=FLOOD_N), "contiguous, no duplicates");
    assert!(pages >= 12, "{pages}");

    // Backward from the newest: two pages of 1,000 meet without a gap.
    let p1 = ok(&mut c, "journal_query", json!({"unit": "log-flood", "max_lines": 1000})).await;
    let p2 = ok(
        &mut c,
        "journal_query",
        json!({"unit": "log-flood", "max_lines": 1000, "before_cursor": p1["older_cursor"]}),
    )
    .await;
    let joined: Vec<u64> = [numbers(&p2), numbers(&p1)].concat();
    assert!(joined.len() >= 1990, "{}", joined.len());
    assert!(joined.windows(2).all(|w| w[1] == w[0] + 1) && joined.last() == Some(&FLOOD_N), "oldest first");

    // Byte cap at its edge; grep over the whole unit (matches only, oldest first).
    let small = ok(&mut c, "journal_query", json!({"unit": "log-flood", "max_lines": 10000, "max_bytes": 16384})).await;
    assert_eq!(small["truncated"], true);
    let n = small["entries"].as_array().map(Vec::len).unwrap_or(0);
    assert!(n > 10 && n < 200, "{n} entries in 16 KiB");
    let (cat, _) = fails(&mut c, "journal_query", json!({"unit": "log-flood", "max_bytes": 16383})).await;
    assert_eq!(cat, "invalid_input");
    let want: Vec<u64> = (1..=FLOOD_N).filter(|n| n.to_string().contains("11999")).collect();
    let g = ok(&mut c, "journal_query", json!({"unit": "log-flood", "grep": "11999", "max_lines": 100})).await;
    assert_eq!(numbers(&g), want, "{g}");
    assert_eq!(g["truncated"], false);
    assert!(g["scanned"].as_u64().is_some_and(|s| s >= FLOOD_N), "{}", g["scanned"]);
    // Priority and time filters reach journalctl.
    let e = ok(&mut c, "journal_query", json!({"unit": "log-flood", "priority": "err", "max_lines": 10})).await;
    assert_eq!(messages(&e).len(), 0, "seq logs at info: {e}");
    let fut = ok(&mut c, "journal_query", json!({"unit": "log-flood", "since": "2099-01-01T00:00:00Z"})).await;
    assert_eq!(messages(&fut).len(), 0);
    for bad in [
        json!({"before_cursor": "s=1;i=2", "after_cursor": "s=1;i=3"}),
        json!({"after_cursor": "--follow"}),
        json!({"boot": "all"}),
        json!({"max_lines": 10001}),
        json!({"fields": ["lower"]}),
        json!({"since": "yesterday"}),
    ] {
        assert_eq!(fails(&mut c, "journal_query", bad.clone()).await.0, "invalid_input", "{bad}");
    }
    let (cat, e) = fails(&mut c, "journal_query", json!({"after_cursor": "s=00;i=1;b=00;m=1;t=1;x=1"})).await;
    assert!(cat == "invalid_input" || cat == "not_found" || cat == "unavailable", "a cursor from nowhere: {e}");

    // Follow a ticking unit with progress notifications. A 5 s window for
    // three new lines at five a second: 2 s left too little room for the
    // journal's lag on a loaded box.
    ok(&mut c, "service_start", json!({"unit": "log-ticker"})).await;
    let session = c.session.clone().expect("session");
    let msgs = post_sse(
        Via::Tcp(addr),
        session.clone(),
        json!({"jsonrpc": "2.0", "id": 51, "method": "tools/call", "params": {
            "name": "journal_tail", "arguments": {"unit": "log-ticker", "lines": 3, "follow_secs": 5},
            "_meta": {"progressToken": "tail-51"}}}),
        Duration::from_secs(90),
    )
    .await;
    let progress: Vec<&Value> = msgs.iter().filter(|m| m["method"] == "notifications/progress").collect();
    let out = &msgs.iter().find(|m| m["id"] == 51).expect("response")["result"]["structuredContent"];
    assert!(!progress.is_empty(), "{msgs:?}");
    assert!(progress.iter().all(|p| p["params"]["message"].as_str().is_some_and(|m| m.starts_with("tick"))));
    assert!(out["followed"].as_u64().is_some_and(|n| n >= 3), "{out}");
    let ticks: Vec<u64> =
        messages(out).iter().filter_map(|m| m.strip_prefix("tick ").and_then(|n| n.parse().ok())).collect();
    assert!(ticks.len() >= 6 && ticks.windows(2).all(|w| w[1] == w[0] + 1), "tail then follow, no gap: {ticks:?}");
    for bad in [json!({"unit": "log-ticker", "follow_secs": 31}), json!({"unit": "log-ticker", "lines": 1001})] {
        assert_eq!(fails(&mut c, "journal_tail", bad.clone()).await.0, "invalid_input", "{bad}");
    }

    // Cancelled: the follow ends at once, not after its 30 s window.
    let call = tokio::spawn(post_sse(
        Via::Tcp(addr),
        session.clone(),
        json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call", "params": {
            "name": "journal_tail", "arguments": {"unit": "log-ticker", "lines": 0, "follow_secs": 30}}}),
        Duration::from_secs(90),
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Cancelled (again on every poll, in case the call was not in flight yet).
    let record = cancel_until_recorded(&mut c, 77, Some("test"), "journal_tail", Duration::from_secs(20), |x| {
        x["args"]["follow_secs"] == 30
    })
    .await;
    assert!(record["duration_ms"].as_u64().is_some_and(|ms| ms < 10_000), "ended on cancel: {record}");
    call.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_systemd_both_domains_are_unavailable_and_the_rest_works() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = format!(
        "[local]\nname = \"nosd\"\nroles = [\"admin\"]\n{RATE}[systemd]\nbus_address = \"unix:path={0}/no/bus\"\njournal_dir = \"{0}/no/journal\"\n",
        tmp.path().display()
    );
    let (_s, addr, _t) = serve(&cfg);
    let mut c = client(addr).await;
    for (tool, args) in [
        ("service_list", json!({})),
        ("service_status", json!({"unit": "web"})),
        ("failed_units", json!({})),
        ("timer_list", json!({})),
        ("service_restart", json!({"unit": "web"})),
        ("journal_query", json!({})),
        ("journal_tail", json!({"unit": "web"})),
    ] {
        let (cat, e) = fails(&mut c, tool, args).await;
        assert_eq!(cat, "unavailable", "{tool}: {e}");
        assert!(e["hint"].as_str().is_some_and(|h| h.contains("other tool domains keep working")), "{tool}: {e}");
    }
    ok(&mut c, "whoami", json!({})).await;
    ok(&mut c, "process_list", json!({"limit": 1})).await;
    let r = crate::support::mcp::get(&Via::Tcp(addr), &addr.to_string(), "/readyz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["checks"]["systemd"]["status"], "unavailable", "{}", r.body);
    assert!(r.body["checks"]["systemd"]["error"].as_str().is_some_and(|e| e.contains("bus")), "{}", r.body);
    assert_eq!(r.body["checks"]["journal"]["status"], "unavailable", "{}", r.body);

    // The default config on this host (PID 1 is not systemd): the reason says so.
    if !std::path::Path::new("/run/systemd/system").exists() && std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS").is_none() {
        let (_d, daddr, _td) = serve(&format!("[local]\nname = \"nosd\"\nroles = [\"admin\"]\n{RATE}"));
        let mut d = client(daddr).await;
        let (cat, e) = fails(&mut d, "service_list", json!({})).await;
        assert_eq!(cat, "unavailable");
        assert!(e["message"].as_str().is_some_and(|m| m.contains("not booted with systemd")), "{e}");
    }
}
