//! Network probes (`dns_lookup`, `tcp_check`, `http_check`, `ping`,
//! `traceroute`) and their target policy, against real local targets only:
//! a TCP listener, HTTP and HTTPS servers (a test CA made with rcgen), a
//! closed port and a tiny DNS server (Python, every record type, one
//! name whose answer changes between lookups) — all on 127.0.0.1 — and a
//! black-holed address behind a veth pair into a network namespace the
//! test creates (for timeouts). The server's config allows 127.0.0.0/8
//! only; everything the policy refuses must come back `forbidden` naming
//! its rule, and the audit log must say so.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::files::{call, category};
use crate::support::mcp::{Via, client, post_sse};
use crate::support::server::ServerProcess;

/// A DNS server on 127.0.0.1 (UDP): every record type for `all.test`,
/// `ok.test` → 127.0.0.1, `meta.test` → 169.254.169.254, `rebind.test`
/// → 127.0.0.1 on the first A query and 169.254.169.254 after, `nx.test`
/// NXDOMAIN. Logs each query (`name type`) to argv[2].
const DNS_SERVER: &str = r#"
import os, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
log = open(sys.argv[2], "a", buffering=1)
def name(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.rstrip(".").split(".")) + b"\0"
def rr(owner, t, data, ttl=60):
    return name(owner) + struct.pack(">HHIH", t, 1, ttl, len(data)) + data
A, NS, CNAME, PTR, MX, TXT, AAAA, SRV, CAA = 1, 2, 5, 12, 15, 16, 28, 33, 257
rebinds = 0
while True:
    q, addr = s.recvfrom(4096)
    tid = struct.unpack(">H", q[:2])[0]
    i, labels = 12, []
    while q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode())
        i += 1 + q[i]
    qname = ".".join(labels).lower()
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
    question = q[12:i + 5]
    log.write(f"{qname} {qtype}\n")
    ans, rcode = [], 0
    if qname == "all.test":
        ans = {
            A: [rr(qname, A, socket.inet_aton("127.0.0.1"))],
            AAAA: [rr(qname, AAAA, socket.inet_pton(socket.AF_INET6, "::1"))],
            MX: [rr(qname, MX, struct.pack(">H", 10) + name("mail.all.test"))],
            TXT: [rr(qname, TXT, bytes([14]) + b"v=tailops test")],
            NS: [rr(qname, NS, name("ns1.all.test"))],
            CAA: [rr(qname, CAA, bytes([0, 5]) + b"issue" + b"letsencrypt.org")],
        }.get(qtype, [])
    elif qname == "alias.all.test" and qtype in (CNAME, A):
        ans = [rr(qname, CNAME, name("all.test"))]
        if qtype == A:
            ans.append(rr("all.test", A, socket.inet_aton("127.0.0.1")))
    elif qname == "_http._tcp.all.test" and qtype == SRV:
        ans = [rr(qname, SRV, struct.pack(">HHH", 1, 2, 8080) + name("all.test"))]
    elif qname == "7.2.0.192.in-addr.arpa" and qtype == PTR:
        ans = [rr(qname, PTR, name("all.test"))]
    elif qname == "ok.test" and qtype == A:
        ans = [rr(qname, A, socket.inet_aton("127.0.0.1"))]
    elif qname == "meta.test" and qtype == A:
        ans = [rr(qname, A, socket.inet_aton("169.254.169.254"))]
    elif qname == "rebind.test" and qtype == A:
        rebinds += 1
        ip = "127.0.0.1" if rebinds == 1 else "169.254.169.254"
        ans = [rr(qname, A, socket.inet_aton(ip), ttl=0)]
    elif qname.endswith(".test") and qname not in ("ok.test", "meta.test", "rebind.test", "all.test"):
        rcode = 3
    resp = struct.pack(">HHHHHH", tid, 0x8180 | rcode, 1, len(ans), 0, 0) + question + b"".join(ans)
    s.sendto(resp, addr)
"#;

struct Dns {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Dns {
    fn start(dir: &Path) -> Self {
        let script = dir.join("dns.py");
        std::fs::write(&script, DNS_SERVER).expect("write dns.py");
        let (port_file, log) = (dir.join("dns.port"), dir.join("dns.log"));
        let child = Command::new("python3")
            .arg(&script)
            .arg(&port_file)
            .arg(&log)
            .stdin(Stdio::null())
            .spawn()
            .expect("python3 for the test DNS server");
        let deadline = Instant::now() + Duration::from_secs(10);
        let port: u16 = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p.trim().parse().expect("port");
            }
            assert!(Instant::now() < deadline, "the test DNS server did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        Dns { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), log }
    }
    fn queries(&self, name: &str) -> usize {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().filter(|l| l == &format!("{name} 1")).count()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP answer for a request path.
fn respond(path: &str) -> Vec<u8> {
    let (status, headers, body): (&str, String, Vec<u8>) = match path {
        "/ok" => ("200 OK", "X-Api-Key: hunter2-secret\r\nSet-Cookie: session=abc123\r\n".into(), b"hello".to_vec()),
        "/big" => ("200 OK", String::new(), vec![b'x'; 2 * 1024 * 1024]),
        p if p.starts_with("/to/") => ("302 Found", format!("Location: {}\r\n", &p[4..]), vec![]),
        _ => ("404 Not Found", String::new(), b"no".to_vec()),
    };
    let mut out = format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len())
        .into_bytes();
    out.extend_from_slice(&body);
    out
}

async fn serve_http<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let line = String::from_utf8_lossy(&buf).lines().next().unwrap_or_default().to_string();
    let path = line.split(' ').nth(1).unwrap_or("/").to_string();
    let head = line.starts_with("HEAD");
    let mut resp = respond(&path);
    if head {
        let end = resp.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4).unwrap_or(resp.len());
        resp.truncate(end);
    }
    let _ = s.write_all(&resp).await;
    let _ = s.shutdown().await;
}

/// An HTTP server on 127.0.0.1 (plain, or TLS with `tls`).
async fn http_server(tls: Option<tokio_rustls::TlsAcceptor>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(a) => {
                        if let Ok(t) = a.accept(s).await {
                            serve_http(t).await
                        }
                    }
                    None => serve_http(s).await,
                }
            });
        }
    });
    addr
}

fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("ascii")).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

/// A test CA (PEM written to `ca_path`) and a TLS acceptor whose leaf is
/// valid for `localhost` and 127.0.0.1.
fn test_tls(ca_path: &Path) -> tokio_rustls::TlsAcceptor {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "tailops test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
    std::fs::write(ca_path, pem(ca.der())).expect("write ca");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("leaf params");
    leaf_params.distinguished_name.push(DnType::CommonName, "tailops test leaf");
    let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("leaf");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
        .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

/// A black-holed address: a veth pair into a network namespace whose
/// route back to us is a blackhole, so SYNs and pings go unanswered.
struct BlackHole {
    ns: String,
    pub addr: String,
}

impl BlackHole {
    fn create() -> Option<Self> {
        let n = std::process::id() % 100_000;
        let (ns, host_if, ns_if) = (format!("tlnp{n}"), format!("tlnp{n}a"), format!("tlnp{n}b"));
        let third = 100 + (n % 150);
        let (ours, theirs) = (format!("10.231.{third}.1"), format!("10.231.{third}.2"));
        let ip =
            |args: &[&str]| Command::new("ip").args(args).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
        let _ = ip(&["netns", "del", &ns]);
        let _ = ip(&["link", "del", &host_if]);
        if !ip(&["netns", "add", &ns]) {
            return None;
        }
        let hole = BlackHole { ns: ns.clone(), addr: theirs.clone() };
        let ok = ip(&["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &ns])
            && ip(&["addr", "add", &format!("{ours}/30"), "dev", &host_if])
            && ip(&["link", "set", &host_if, "up"])
            && ip(&["-n", &ns, "addr", "add", &format!("{theirs}/30"), "dev", &ns_if])
            && ip(&["-n", &ns, "link", "set", &ns_if, "up"])
            && ip(&["-n", &ns, "route", "add", "blackhole", &format!("{ours}/32")]);
        ok.then_some(hole)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end and so the pair.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn config(dns: SocketAddr, ca: &Path, extra: &str) -> String {
    format!(
        "[local]\nname = \"prober\"\nroles = [\"admin\"]\n\
         [limits.rate]\ncalls_per_minute = 60000\nburst = 10000\nmax_denials = 100000\n\
         [network]\nallow = [\"127.0.0.0/8\", \"10.231.0.0/16\"]\ndeny_hosts = [\"*.denied.test\"]\n\
         resolver = \"{dns}\"\nca_file = \"{}\"\n{extra}",
        ca.display()
    )
}

fn out(r: &crate::support::mcp::Reply) -> Value {
    assert!(!r.is_tool_error(), "expected success: {}", r.body);
    r.structured().clone()
}

fn forbidden(r: &crate::support::mcp::Reply, rule: &str) -> String {
    assert_eq!(category(r).as_deref(), Some("forbidden"), "{}", r.body);
    let msg = r.structured()["error"]["message"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains(&format!("rule {rule} ")), "refusal names rule {rule}: {msg}");
    msg
}

fn audit_records(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("state/audit.jsonl"))
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect()
}

/// Every probe against real loopback targets, and every policy refusal
/// audited with its rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_target_policy() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dns = Dns::start(tmp.path());
    let ca = tmp.path().join("ca.pem");
    let acceptor = test_tls(&ca);
    let http = http_server(None).await;
    let https = http_server(Some(acceptor)).await;
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let tcp_addr = tcp.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = tcp.accept().await {
            drop(s);
        }
    });
    // Bound but never listening, and held for the whole test: connecting is
    // refused, and no test running in parallel can bind the port meanwhile
    // (one released right after binding it could be taken).
    let closed_sock = tokio::net::TcpSocket::new_v4().expect("socket");
    closed_sock.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let closed = closed_sock.local_addr().expect("addr").port();
    let (mut server, addr) = ServerProcess::start_dev(tmp.path(), &config(dns.addr, &ca, ""), &[]);
    let mut c = client(addr).await;

    // --- tcp_check
    let o = out(&call(&mut c, "tcp_check", json!({"host": "127.0.0.1", "port": tcp_addr.port()})).await);
    assert_eq!(
        (o["connected"].as_bool(), o["address"].as_str(), o["via"].as_str()),
        (Some(true), Some("127.0.0.1"), Some("kernel"))
    );
    assert!(o["connect_ms"].as_f64().is_some_and(|m| m >= 0.0), "{o}");
    let o = out(&call(&mut c, "tcp_check", json!({"host": "127.0.0.1", "port": closed})).await);
    assert_eq!((o["connected"].as_bool(), o["error_kind"].as_str()), (Some(false), Some("refused")), "{o}");
    let o = out(&call(&mut c, "tcp_check", json!({"host": "ok.test", "port": tcp_addr.port()})).await);
    assert_eq!((o["connected"].as_bool(), o["resolved"].clone()), (Some(true), json!(["127.0.0.1"])), "{o}");
    // TLS: valid chain for localhost through the configured CA file.
    let o = out(&call(
        &mut c,
        "tcp_check",
        json!({"host": "127.0.0.1", "port": https.port(), "tls": true, "server_name": "localhost"}),
    )
    .await);
    let t = &o["tls"];
    assert_eq!(t["chain_valid"], true, "{o}");
    assert!(t["protocol"].as_str().is_some_and(|p| p.contains("TLSv1_3")), "{t}");
    assert!(t["subject"].as_str().is_some_and(|s| s.contains("tailops test leaf")), "{t}");
    assert!(t["issuer"].as_str().is_some_and(|s| s.contains("tailops test CA")), "{t}");
    assert_eq!(t["sans"], json!(["localhost", "127.0.0.1"]), "{t}");
    assert!(t["days_to_expiry"].as_i64().is_some_and(|d| d > 300), "{t}");
    assert_eq!(t["chain_length"], 2, "{t}");
    // The wrong name: the handshake completes, the chain is not valid for it.
    let o = out(&call(
        &mut c,
        "tcp_check",
        json!({"host": "127.0.0.1", "port": https.port(), "tls": true, "server_name": "other.test"}),
    )
    .await);
    assert_eq!(o["tls"]["chain_valid"], false, "{o}");
    assert!(o["tls"]["chain_error"].as_str().is_some_and(|e| !e.is_empty()), "{o}");
    // TLS to a port that does not speak it: a clean error.
    let r =
        call(&mut c, "tcp_check", json!({"host": "127.0.0.1", "port": http.port(), "tls": true, "timeout_ms": 2000}))
            .await;
    assert!(matches!(category(&r).as_deref(), Some("unavailable" | "timeout")), "{}", r.body);

    // --- http_check
    let o = out(&call(&mut c, "http_check", json!({"url": format!("http://127.0.0.1:{}/ok", http.port())})).await);
    assert_eq!((o["status"].as_u64(), o["redirects"].as_u64()), (Some(200), Some(0)), "{o}");
    let hop = &o["hops"][0];
    assert_eq!((hop["body_bytes"].as_u64(), hop["body_preview"].as_str()), (Some(5), Some("hello")), "{hop}");
    for k in ["dns_ms", "connect_ms", "first_byte_ms", "total_ms"] {
        assert!(hop[k].as_f64().is_some(), "{k}: {hop}");
    }
    let headers: Vec<(String, String)> = serde_json::from_value(hop["headers"].clone()).expect("headers");
    for secret in ["x-api-key", "set-cookie"] {
        let v = headers.iter().find(|(k, _)| k == secret).map(|(_, v)| v.as_str());
        assert_eq!(v, Some("[REDACTED]"), "{secret} redacted: {headers:?}");
    }
    assert!(!o.to_string().contains("hunter2") && !o.to_string().contains("abc123"), "{o}");
    // HTTPS by name, trusted through ca_file; HEAD has no body.
    let o = out(&call(
        &mut c,
        "http_check",
        json!({"url": format!("https://localhost:{}/ok", https.port()), "method": "HEAD"}),
    )
    .await);
    let hop = &o["hops"][0];
    assert_eq!((o["status"].as_u64(), hop["body_bytes"].as_u64()), (Some(200), Some(0)), "{o}");
    assert!(hop["tls_ms"].as_f64().is_some() && hop["tls"]["chain_valid"] == true, "{hop}");
    // The body cap.
    let o = out(&call(&mut c, "http_check", json!({"url": format!("http://127.0.0.1:{}/big", http.port())})).await);
    assert_eq!(
        (o["hops"][0]["body_bytes"].as_u64(), o["hops"][0]["body_truncated"].as_bool()),
        (Some(1 << 20), Some(true))
    );
    // Redirects: reported, followed only when asked.
    let to_ok = format!("http://127.0.0.1:{}/to/http://ok.test:{}/ok", http.port(), http.port());
    let o = out(&call(&mut c, "http_check", json!({"url": to_ok})).await);
    assert_eq!((o["status"].as_u64(), o["hops"].as_array().map(Vec::len)), (Some(302), Some(1)), "{o}");
    assert_eq!(o["unfollowed_location"], format!("http://ok.test:{}/ok", http.port()));
    let o = out(&call(&mut c, "http_check", json!({"url": to_ok, "follow_redirects": true})).await);
    assert_eq!((o["status"].as_u64(), o["redirects"].as_u64()), (Some(200), Some(1)), "{o}");
    assert_eq!(o["final_url"], format!("http://ok.test:{}/ok", http.port()));
    // max_redirects 0: not followed.
    let o = out(&call(&mut c, "http_check", json!({"url": to_ok, "follow_redirects": true, "max_redirects": 0})).await);
    assert_eq!(o["status"], 302, "{o}");

    // --- dns_lookup: every record type from the test server.
    let all = ["A", "AAAA", "MX", "TXT", "NS", "CAA"];
    let o = out(&call(&mut c, "dns_lookup", json!({"name": "all.test", "types": all})).await);
    let data = |o: &Value, i: usize| o["answers"][i]["records"][0]["data"].as_str().unwrap_or_default().to_string();
    assert_eq!(data(&o, 0), "127.0.0.1", "{o}");
    assert_eq!(data(&o, 1), "::1", "{o}");
    assert!(data(&o, 2).contains("mail.all.test"), "{o}");
    assert!(data(&o, 3).contains("v=tailops test"), "{o}");
    assert!(data(&o, 4).contains("ns1.all.test"), "{o}");
    assert!(data(&o, 5).contains("letsencrypt.org"), "{o}");
    assert_eq!(o["server"], dns.addr.to_string(), "the configured resolver answered: {o}");
    let o = out(&call(&mut c, "dns_lookup", json!({"name": "alias.all.test", "types": ["CNAME"]})).await);
    assert!(data(&o, 0).contains("all.test"), "{o}");
    assert_eq!(o["answers"][0]["records"][0]["record_type"], "CNAME", "{o}");
    let o = out(&call(&mut c, "dns_lookup", json!({"name": "_http._tcp.all.test", "types": ["SRV"]})).await);
    assert!(data(&o, 0).contains("8080") && data(&o, 0).contains("all.test"), "{o}");
    let o = out(&call(&mut c, "dns_lookup", json!({"name": "192.0.2.7"})).await);
    assert_eq!(o["answers"][0]["record_type"], "PTR", "{o}");
    assert!(data(&o, 0).contains("all.test"), "{o}");
    let o = out(&call(&mut c, "dns_lookup", json!({"name": "nx.test"})).await);
    assert_eq!(o["answers"][0]["error"], "nxdomain", "{o}");
    // A given server (allowed: loopback is allowed in this config).
    let o =
        out(&call(&mut c, "dns_lookup", json!({"name": "ok.test", "types": ["A"], "server": dns.addr.to_string()}))
            .await);
    assert_eq!((data(&o, 0), o["server"].clone()), ("127.0.0.1".into(), json!(dns.addr.to_string())), "{o}");

    // --- ping and traceroute over loopback (root: raw ICMP).
    let o = out(&call(&mut c, "ping", json!({"host": "127.0.0.1", "count": 2, "interval_ms": 200})).await);
    assert_eq!(
        (o["transmitted"].as_u64(), o["received"].as_u64(), o["loss_percent"].as_f64()),
        (Some(2), Some(2), Some(0.0)),
        "{o}"
    );
    assert!(o["method"].as_str().is_some_and(|m| m.starts_with("icmp")), "{o}");
    for k in ["min_ms", "avg_ms", "max_ms", "mdev_ms"] {
        assert!(o[k].as_f64().is_some(), "{k}: {o}");
    }
    let o =
        out(&call(&mut c, "ping", json!({"host": "127.0.0.1", "count": 1, "method": "tcp", "tcp_port": closed})).await);
    assert_eq!((o["method"].as_str(), o["received"].as_u64()), (Some("tcp_connect"), Some(1)), "{o}");
    assert_eq!(o["replies"][0]["note"], "refused", "a refused connect is an answer: {o}");
    for method in ["udp", "icmp"] {
        let o = out(&call(
            &mut c,
            "traceroute",
            json!({"host": "127.0.0.1", "method": method, "max_hops": 3, "probes_per_hop": 2}),
        )
        .await);
        assert_eq!(
            (o["reached"].as_bool(), o["hops"].as_array().map(Vec::len)),
            (Some(true), Some(1)),
            "{method}: {o}"
        );
        assert_eq!(o["hops"][0]["probes"][0]["from"], "127.0.0.1", "{o}");
        assert!(o["hops"][0]["probes"][1]["rtt_ms"].as_f64().is_some(), "{o}");
    }

    // --- progress notifications of a long probe.
    let session = c.session.clone().expect("session");
    let msgs = post_sse(
        Via::Tcp(addr),
        session,
        json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call", "params": {
            "name": "ping", "arguments": {"host": "127.0.0.1", "count": 3, "interval_ms": 200},
            "_meta": {"progressToken": "ping-77"}}}),
        Duration::from_secs(60),
    )
    .await;
    let progress: Vec<f64> = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/progress" && m["params"]["progressToken"] == "ping-77")
        .filter_map(|m| m["params"]["progress"].as_f64())
        .collect();
    assert_eq!(progress, vec![1.0, 2.0, 3.0], "{msgs:?}");
    assert!(msgs.iter().any(|m| m["id"] == 77 && m["result"]["structuredContent"]["received"] == 3), "{msgs:?}");

    // --- timeouts against a black-holed address in a namespace we made.
    match BlackHole::create() {
        None => eprintln!("SKIPPED black-hole checks: cannot create a network namespace here (ip netns add failed)"),
        Some(hole) => {
            let o = out(&call(&mut c, "tcp_check", json!({"host": hole.addr, "port": 80, "timeout_ms": 300})).await);
            assert_eq!((o["connected"].as_bool(), o["error_kind"].as_str()), (Some(false), Some("timeout")), "{o}");
            let r =
                call(&mut c, "http_check", json!({"url": format!("http://{}/", hole.addr), "timeout_ms": 300})).await;
            assert_eq!(category(&r).as_deref(), Some("timeout"), "{}", r.body);
            let o = out(&call(&mut c, "ping", json!({"host": hole.addr, "count": 1, "timeout_ms": 300})).await);
            assert_eq!((o["received"].as_u64(), o["loss_percent"].as_f64()), (Some(0), Some(100.0)), "{o}");
            assert_eq!(o["replies"][0]["note"], "timeout", "{o}");
            let o = out(&call(
                &mut c,
                "traceroute",
                json!({"host": hole.addr, "max_hops": 2, "probes_per_hop": 1, "timeout_ms": 200}),
            )
            .await);
            assert_eq!(o["reached"], false, "{o}");
            let o = out(&call(
                &mut c,
                "dns_lookup",
                json!({"name": "ok.test", "server": format!("{}:53", hole.addr), "types": ["A"], "timeout_ms": 300}),
            )
            .await);
            assert_eq!(o["answers"][0]["error"], "timeout", "{o}");
        }
    }

    // --- the target policy: refused, naming the rule.
    let mut refusals = Vec::new();
    for (tool, args, rule) in [
        ("tcp_check", json!({"host": "169.254.169.254", "port": 80}), "cloud_metadata"),
        ("tcp_check", json!({"host": "100.100.100.200", "port": 80}), "cloud_metadata"),
        ("http_check", json!({"url": "http://[fd00:ec2::254]/latest/meta-data/"}), "cloud_metadata"),
        ("http_check", json!({"url": "http://[::ffff:169.254.169.254]/"}), "cloud_metadata"),
        ("ping", json!({"host": "169.254.1.1", "count": 1}), "link_local"),
        ("traceroute", json!({"host": "fe80::1"}), "link_local"),
        // Loopback is allowed only as 127.0.0.0/8: ::1 stays refused by default.
        ("tcp_check", json!({"host": "::1", "port": tcp_addr.port()}), "loopback"),
        ("tcp_check", json!({"host": "0.0.0.0", "port": 80}), "unspecified"),
        ("ping", json!({"host": "224.0.0.1", "count": 1}), "multicast"),
        ("ping", json!({"host": "255.255.255.255", "count": 1}), "broadcast"),
        // A name resolving to a refused address.
        ("tcp_check", json!({"host": "meta.test", "port": 80}), "cloud_metadata"),
        ("http_check", json!({"url": "http://meta.test/"}), "cloud_metadata"),
        ("tcp_check", json!({"host": "x.denied.test", "port": 80}), "deny_hosts"),
        ("dns_lookup", json!({"name": "x.denied.test"}), "deny_hosts"),
        // A DNS server in a refused range.
        ("dns_lookup", json!({"name": "ok.test", "server": "169.254.169.254"}), "cloud_metadata"),
        // A redirect to a refused address, and to a name resolving to one.
        (
            "http_check",
            json!({"url": format!("http://127.0.0.1:{}/to/http://169.254.169.254/latest", http.port()), "follow_redirects": true}),
            "cloud_metadata",
        ),
        (
            "http_check",
            json!({"url": format!("http://127.0.0.1:{}/to/http://meta.test/", http.port()), "follow_redirects": true}),
            "cloud_metadata",
        ),
    ] {
        let r = call(&mut c, tool, args.clone()).await;
        let msg = forbidden(&r, rule);
        refusals.push((tool, rule, msg));
    }
    assert!(refusals[15].2.starts_with("redirect 1"), "{:?}", refusals[15]);

    // --- rebinding: the first answer (allowed) is connected to as
    // checked; one lookup per probe, none between check and connect; the
    // next answer (metadata) is refused.
    let before = dns.queries("rebind.test");
    let o = out(&call(&mut c, "tcp_check", json!({"host": "rebind.test", "port": tcp_addr.port()})).await);
    assert_eq!((o["connected"].as_bool(), o["address"].as_str()), (Some(true), Some("127.0.0.1")), "{o}");
    assert_eq!(dns.queries("rebind.test"), before + 1, "exactly one lookup, then the connect to the checked IP");
    let r = call(&mut c, "tcp_check", json!({"host": "rebind.test", "port": tcp_addr.port()})).await;
    refusals.push(("tcp_check", "cloud_metadata", forbidden(&r, "cloud_metadata")));
    let r = call(&mut c, "http_check", json!({"url": format!("http://rebind.test:{}/ok", http.port())})).await;
    refusals.push(("http_check", "cloud_metadata", forbidden(&r, "cloud_metadata")));

    // --- hostile inputs: structured errors, nothing probed.
    for (tool, args) in [
        ("ping", json!({"host": "127.0.0.1", "count": 101})),
        ("ping", json!({"host": "127.0.0.1", "count": 0})),
        ("ping", json!({"host": "127.0.0.1", "count": "many"})),
        ("ping", json!({"host": "127.0.0.1", "count": 100, "interval_ms": 10000})),
        ("ping", json!({"host": "127.0.0.1", "interval_ms": 199})),
        ("ping", json!({"host": "127.0.0.1", "count": 4294967296u64})),
        ("traceroute", json!({"host": "127.0.0.1", "max_hops": 65})),
        ("traceroute", json!({"host": "127.0.0.1", "probes_per_hop": 6})),
        ("tcp_check", json!({"host": "127.0.0.1", "port": 70000})),
        ("tcp_check", json!({"host": "127.0.0.1", "port": 0})),
        ("tcp_check", json!({"host": "127.0.0.1", "port": 80, "timeout_ms": 0})),
        ("tcp_check", json!({"host": "127.0.0.1", "port": 80, "timeout_ms": 10001})),
        ("tcp_check", json!({"host": "a..b", "port": 80})),
        ("tcp_check", json!({"host": "x".repeat(300), "port": 80})),
        ("tcp_check", json!({"host": "127.0.0.1:80", "port": 80})),
        ("tcp_check", json!({"host": ["127.0.0.1"], "port": 80})),
        ("tcp_check", json!({"host": "127.0.0.1", "port": 80, "extra": 1})),
        ("http_check", json!({"url": "file:///etc/passwd"})),
        ("http_check", json!({"url": "http://user:pw@127.0.0.1/"})),
        ("http_check", json!({"url": format!("http://127.0.0.1/{}", "a".repeat(4096))})),
        ("http_check", json!({"url": "http://127.0.0.1/", "max_redirects": 11})),
        ("http_check", json!({"url": "http://127.0.0.1/", "method": "DELETE"})),
        (
            "dns_lookup",
            json!({"name": "all.test", "types": ["A", "AAAA", "MX", "TXT", "NS", "SRV", "CAA", "CNAME", "A", "AAAA"]}),
        ),
        ("dns_lookup", json!({"name": "all.test", "types": ["ANY"]})),
        ("dns_lookup", json!({"name": "all.test", "types": ["PTR"]})),
        ("dns_lookup", json!({"name": "all.test", "server": "not-an-ip"})),
        ("dns_lookup", json!({"name": "bad name"})),
    ] {
        let r = call(&mut c, tool, args.clone()).await;
        assert_eq!(category(&r).as_deref(), Some("invalid_input"), "{tool} {args}: {}", r.body);
    }

    server.stop();
    // Every refusal is in the audit log with its rule.
    let recs = audit_records(tmp.path());
    let forbidden_recs: Vec<&Value> =
        recs.iter().filter(|r| r["kind"] == "tool_call" && r["error_category"] == "forbidden").collect();
    assert_eq!(forbidden_recs.len(), refusals.len(), "one audit record per refusal");
    for (tool, rule, msg) in &refusals {
        assert!(
            forbidden_recs.iter().any(|r| r["tool"] == *tool
                && r["detail"]["message"].as_str() == Some(msg.as_str())
                && msg.contains(&format!("rule {rule} "))),
            "{tool} refusal ({rule}) audited with its message: {msg}"
        );
    }
}

/// Without `[network] allow`, loopback is refused (the default policy),
/// also when a name resolves to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_refuses_loopback() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dns = Dns::start(tmp.path());
    let cfg = format!("[local]\nname = \"prober\"\nroles = [\"operator\"]\n[network]\nresolver = \"{}\"\n", dns.addr);
    let (mut server, addr) = ServerProcess::start_dev(tmp.path(), &cfg, &[]);
    let mut c = client(addr).await;
    let r = call(&mut c, "tcp_check", json!({"host": "127.0.0.1", "port": 80})).await;
    let m1 = forbidden(&r, "loopback");
    let r = call(&mut c, "http_check", json!({"url": "http://ok.test/"})).await;
    let m2 = forbidden(&r, "loopback");
    assert!(m2.contains("ok.test resolved to it"), "{m2}");
    // The given DNS server is a target too.
    let r = call(&mut c, "dns_lookup", json!({"name": "ok.test", "server": dns.addr.to_string()})).await;
    let m3 = forbidden(&r, "loopback");
    server.stop();
    let recs = audit_records(tmp.path());
    for m in [m1, m2, m3] {
        assert!(recs.iter().any(|r| r["error_category"] == "forbidden" && r["detail"]["message"] == m), "audited: {m}");
    }
}
