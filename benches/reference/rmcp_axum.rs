//! The ceiling for the spine benchmarks: a bare rmcp 3.11 + axum MCP server
//! with the same tool shape as tailops' `whoami` and `system_overview` (no
//! arguments, structured JSON output of a similar size), and nothing else:
//! no identity, no authorization, no rate limit, no audit, no Host check.
//!
//! It is written the way an rmcp user would write a fast server, with one
//! concession to speed over rmcp's own examples: the tool router is built
//! once and shared (`router = self.router`), not per session. The overview
//! is a sysinfo snapshot refreshed in the background every 5 s (tailops'
//! default sampler interval), so a call only serialises a cached struct.
//!
//! Same transport settings as tailops: `StreamableHttpService` with a
//! `LocalSessionManager` (2025-11-25 sessions; 2026-07-28 requests are
//! served stateless by rmcp), SSE responses, TCP_NODELAY on accepted
//! sockets, HTTP/1.1 + HTTP/2 via hyper-util's auto builder.
//!
//! Run by the `spine` bench as a child process (the bench binary re-executes
//! itself with `SPINE_BENCH_ROLE=reference`), so its CPU is measured apart
//! from the load generator's.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Json;
use rmcp::model::{Implementation, InitializeResult, ServerCapabilities};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WhoamiOut {
    pub id: String,
    pub login_name: String,
    pub display_name: String,
    pub tags: Vec<String>,
    pub node_name: String,
    pub node_id: String,
    pub source: String,
    pub effective_scopes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Proc {
    pub pid: u32,
    pub name: String,
    pub cpu_percent: f32,
    pub memory_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct OverviewOut {
    pub summary: String,
    pub hostname: String,
    pub os: String,
    pub kernel: String,
    pub arch: String,
    pub uptime_secs: u64,
    pub boot_time_unix: u64,
    pub load: [f64; 3],
    pub cpu_model: String,
    pub logical_cores: usize,
    pub cpu_usage_percent: f32,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    pub root_disk_total_bytes: u64,
    pub root_disk_available_bytes: u64,
    pub top_processes: Vec<Proc>,
}

#[derive(Clone)]
pub struct Reference {
    router: Arc<ToolRouter<Reference>>,
    overview: Arc<RwLock<OverviewOut>>,
}

#[tool_router]
impl Reference {
    #[tool(name = "whoami", description = "Who you are (fixed: the reference has no identity).")]
    async fn whoami(&self) -> Result<Json<WhoamiOut>, String> {
        Ok(Json(WhoamiOut {
            id: "user:bench".into(),
            login_name: "bench".into(),
            display_name: "bench".into(),
            tags: vec![],
            node_name: "local".into(),
            node_id: "local".into(),
            source: "127.0.0.1".into(),
            effective_scopes: ["read", "logs", "files.read", "operate", "files.write", "admin"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }))
    }

    #[tool(name = "system_overview", description = "Host status from a cached sysinfo snapshot.")]
    async fn system_overview(&self) -> Result<Json<OverviewOut>, String> {
        let o = self.overview.read().map_err(|_| "poisoned".to_string())?.clone();
        Ok(Json(o))
    }
}

#[tool_handler(router = self.router)]
impl ServerHandler for Reference {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("reference", "1"))
    }
}

fn sample(sys: &mut sysinfo::System, disks: &mut sysinfo::Disks) -> OverviewOut {
    sys.refresh_all();
    disks.refresh(true);
    let mut procs: Vec<Proc> = sys
        .processes()
        .values()
        .map(|p| Proc {
            pid: p.pid().as_u32(),
            name: p.name().to_string_lossy().into_owned(),
            cpu_percent: p.cpu_usage(),
            memory_bytes: p.memory(),
        })
        .collect();
    procs.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
    procs.truncate(5);
    let root = disks.list().iter().find(|d| d.mount_point() == std::path::Path::new("/"));
    let load = sysinfo::System::load_average();
    let cpu = sys.global_cpu_usage();
    OverviewOut {
        summary: format!("CPU {cpu:.0}%, load {:.2}", load.one),
        hostname: sysinfo::System::host_name().unwrap_or_default(),
        os: sysinfo::System::long_os_version().unwrap_or_default(),
        kernel: sysinfo::System::kernel_version().unwrap_or_default(),
        arch: sysinfo::System::cpu_arch(),
        uptime_secs: sysinfo::System::uptime(),
        boot_time_unix: sysinfo::System::boot_time(),
        load: [load.one, load.five, load.fifteen],
        cpu_model: sys.cpus().first().map(|c| c.brand().to_string()).unwrap_or_default(),
        logical_cores: sys.cpus().len(),
        cpu_usage_percent: cpu,
        memory_total_bytes: sys.total_memory(),
        memory_used_bytes: sys.used_memory(),
        swap_total_bytes: sys.total_swap(),
        swap_used_bytes: sys.used_swap(),
        root_disk_total_bytes: root.map(|d| d.total_space()).unwrap_or(0),
        root_disk_available_bytes: root.map(|d| d.available_space()).unwrap_or(0),
        top_processes: procs,
    }
}

/// Serves the reference on `listener` until the process is killed.
pub async fn serve(listener: tokio::net::TcpListener) {
    let addr = listener.local_addr().expect("addr");
    let overview = Arc::new(RwLock::new(OverviewOut::default()));
    let o = overview.clone();
    tokio::task::spawn_blocking(move || {
        let mut sys = sysinfo::System::new_all();
        let mut disks = sysinfo::Disks::new_with_refreshed_list();
        loop {
            let s = sample(&mut sys, &mut disks);
            if let Ok(mut w) = o.write() {
                *w = s;
            }
            std::thread::sleep(Duration::from_secs(5));
        }
    });
    let router = Arc::new(Reference::tool_router());
    let host = addr.to_string();
    let config = StreamableHttpServerConfig::default().with_allowed_hosts(vec![
        host.clone(),
        "127.0.0.1".into(),
        "localhost".into(),
    ]);
    let service = StreamableHttpService::new(
        move || Ok(Reference { router: router.clone(), overview: overview.clone() }),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new().route_service("/mcp", service);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}
