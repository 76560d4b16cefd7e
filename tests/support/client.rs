//! Test clients on the tailnet: our own `tailnet::Node` (ephemeral), plus a
//! small HTTP/1.1 client over connections it dials.

use std::path::Path;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tailops::tailnet::Node;

/// Starts an ephemeral client node with `auth_key` against `control_url`.
pub async fn node(hostname: &str, control_url: &str, auth_key: &str, state_dir: &Path) -> Node {
    // Headscale's embedded DERP speaks plain HTTP.
    tailops::tailnet::set_env_knob("TS_DEBUG_USE_DERP_HTTP", "1").expect("knob");
    Node::builder(hostname)
        .control_url(control_url)
        .auth_key(auth_key)
        .ephemeral(true)
        .state_dir(state_dir)
        .up_timeout(Duration::from_secs(60))
        .start()
        .await
        .unwrap_or_else(|e| panic!("client node {hostname} did not come up: {e}"))
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Dials `host:port` over the tailnet, retrying for up to `within` (the
/// first dial right after start may fail until DERP/peers are known).
pub async fn dial_retry(node: &Node, addr: &str, within: Duration) -> tokio::net::UnixStream {
    let deadline = Instant::now() + within;
    loop {
        match node.dial(addr, Duration::from_secs(5)).await {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                eprintln!("dial {addr}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("dial {addr} failed for {within:?}: {e}"),
        }
    }
}

/// One HTTP/1.1 GET on a fresh tailnet connection.
pub async fn get(node: &Node, host: &str, path: &str) -> Response {
    let stream = dial_retry(node, &format!("{host}:80"), Duration::from_secs(30)).await;
    get_on(stream, host, path).await
}

/// One HTTP/1.1 GET on an already dialed stream.
pub async fn get_on(stream: tokio::net::UnixStream, host: &str, path: &str) -> Response {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    let driver = tokio::spawn(conn);
    let req = hyper::Request::get(path).header("host", host).body(Empty::<Bytes>::new()).expect("request");
    let res = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .expect("response within 30 s")
        .expect("response");
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.expect("body").to_bytes().to_vec();
    drop(sender);
    let _ = driver.await;
    Response { status, body }
}
