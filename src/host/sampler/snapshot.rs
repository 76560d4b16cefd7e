//! What one sample of the host holds, and its metrics by name (the names
//! history and alert rules use).

use schemars::JsonSchema;
use serde::Serialize;

/// One sample of the host.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Snapshot {
    /// When the sample was taken (RFC 3339, UTC).
    pub taken_at: String,
    /// Same, Unix seconds.
    pub taken_unix: f64,
    pub hostname: String,
    pub os_name: String,
    pub os_version: String,
    pub kernel: String,
    pub arch: String,
    pub uptime_secs: u64,
    pub boot_time_unix: u64,
    /// Load averages from /proc/loadavg.
    pub load: LoadAvg,
    pub cpu: CpuSnapshot,
    pub memory: MemorySnapshot,
    /// Mounted filesystems (pseudo filesystems left out).
    pub disks: Vec<DiskSnapshot>,
    pub networks: Vec<NetSnapshot>,
    /// Pressure stall information; `None` when the kernel has no PSI (see `pressure_note`).
    pub pressure: Option<Pressure>,
    /// Why `pressure` is missing.
    pub pressure_note: Option<String>,
    pub temperatures: Vec<Temperature>,
    /// Why `temperatures` is empty.
    pub temperatures_note: Option<String>,
    /// Processes sorted by pid; at most `max_processes` (the busiest by CPU, then memory).
    pub processes: Vec<ProcessSample>,
    /// How long taking this sample took, milliseconds.
    pub sample_duration_ms: f64,
}

/// Load averages (runnable + uninterruptible tasks).
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
pub struct LoadAvg {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct CpuSnapshot {
    /// CPU model (brand string).
    pub model: String,
    pub physical_cores: Option<usize>,
    pub logical_cores: usize,
    /// Busy share of all cores since the previous sample, percent.
    pub usage_percent: f64,
    /// Same per logical core.
    pub per_core_percent: Vec<f64>,
}

/// Memory in bytes.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct MemorySnapshot {
    /// MemTotal.
    pub total: u64,
    /// `total - available`: memory not reclaimable without swapping (page cache excluded).
    pub used: u64,
    /// MemAvailable: estimate of memory available for new work without swapping.
    pub available: u64,
    /// MemFree: entirely unused memory.
    pub free: u64,
    pub swap_total: u64,
    pub swap_used: u64,
    /// `used / total`, percent.
    pub used_percent: f64,
    /// `swap_used / swap_total`, percent (0 without swap).
    pub swap_used_percent: f64,
}

/// One mounted filesystem.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct DiskSnapshot {
    pub mount_point: String,
    /// Source as in /proc/self/mounts (`/dev/vda1`, `overlay`, `tmpfs`, `server:/export`).
    pub device: String,
    pub fs_type: String,
    pub total_bytes: u64,
    /// `total - free` (blocks reserved for root count as used).
    pub used_bytes: u64,
    /// Free for unprivileged users.
    pub available_bytes: u64,
    /// `used / (used + available)`, percent, as `df` shows it.
    pub used_percent: f64,
    pub inodes_total: u64,
    pub inodes_used: u64,
    /// `None` when the filesystem has no fixed inode count (btrfs, tmpfs on some kernels…).
    pub inodes_used_percent: Option<f64>,
    /// `None` when the device is not in /proc/diskstats (tmpfs, overlay, network).
    pub read_bytes_per_sec: Option<f64>,
    pub write_bytes_per_sec: Option<f64>,
}

/// One network interface.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct NetSnapshot {
    pub interface: String,
    /// Counters since the interface came up.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Rates since the previous sample.
    pub rx_bytes_per_sec: f64,
    pub tx_bytes_per_sec: f64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Packet rates since the previous sample.
    pub rx_packets_per_sec: f64,
    pub tx_packets_per_sec: f64,
    pub rx_errors: u64,
    pub tx_errors: u64,
}

/// Pressure stall information (/proc/pressure).
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
pub struct Pressure {
    pub cpu: PsiResource,
    pub memory: PsiResource,
    pub io: PsiResource,
}

#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
pub struct PsiResource {
    /// Share of time at least one task stalled.
    pub some: PsiLine,
    /// Share of time all non-idle tasks stalled (absent for cpu on older kernels).
    pub full: Option<PsiLine>,
}

#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
pub struct PsiLine {
    /// Percent over the last 10 s.
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Total stall time, microseconds.
    pub total_us: u64,
}

/// One temperature sensor.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Temperature {
    pub label: String,
    pub celsius: f64,
    pub critical_celsius: Option<f64>,
}

/// One process.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ProcessSample {
    pub pid: u32,
    pub ppid: Option<u32>,
    /// Command name (/proc/PID/comm).
    pub name: String,
    /// Raw command line (not redacted: tools redact before showing it).
    pub cmdline: Vec<String>,
    pub exe: Option<String>,
    /// User name of the real uid.
    pub user: Option<String>,
    pub uid: Option<u32>,
    /// Runnable, Sleeping, Idle, Zombie, …
    pub state: String,
    /// CPU since the previous sample, percent of one core.
    pub cpu_percent: f64,
    /// Resident set size, bytes.
    pub memory_bytes: u64,
    pub virtual_bytes: u64,
    pub start_time_unix: u64,
    pub threads: Option<u32>,
}

/// The metrics recorded in history, with their values in `s`.
///
/// `cpu.usage_percent`, `cpu.core<N>.usage_percent`, `memory.used_percent`,
/// `memory.used_bytes`, `swap.used_percent`, `load.1`, `load.5`, `load.15`,
/// `disk.<mount>.used_percent`, `disk.<mount>.{read,write}_bytes_per_sec`
/// (when the device is in /proc/diskstats), `net.<iface>.{rx,tx}_bytes_per_sec`,
/// `net.<iface>.{rx,tx}_packets_per_sec`,
/// `psi.<cpu|memory|io>.some.avg10` and `psi.<…>.full.avg10` (when present).
pub fn metric_values(s: &Snapshot) -> Vec<(String, f64)> {
    let mut v = Vec::with_capacity(16 + s.cpu.per_core_percent.len() + 3 * s.disks.len() + 4 * s.networks.len());
    v.push(("cpu.usage_percent".to_owned(), s.cpu.usage_percent));
    for (i, p) in s.cpu.per_core_percent.iter().enumerate() {
        v.push((format!("cpu.core{i}.usage_percent"), *p));
    }
    v.push(("memory.used_percent".to_owned(), s.memory.used_percent));
    v.push(("memory.used_bytes".to_owned(), s.memory.used as f64));
    v.push(("swap.used_percent".to_owned(), s.memory.swap_used_percent));
    v.push(("load.1".to_owned(), s.load.one));
    v.push(("load.5".to_owned(), s.load.five));
    v.push(("load.15".to_owned(), s.load.fifteen));
    for d in &s.disks {
        v.push((format!("disk.{}.used_percent", d.mount_point), d.used_percent));
        if let Some(r) = d.read_bytes_per_sec {
            v.push((format!("disk.{}.read_bytes_per_sec", d.mount_point), r));
        }
        if let Some(w) = d.write_bytes_per_sec {
            v.push((format!("disk.{}.write_bytes_per_sec", d.mount_point), w));
        }
    }
    for n in &s.networks {
        v.push((format!("net.{}.rx_bytes_per_sec", n.interface), n.rx_bytes_per_sec));
        v.push((format!("net.{}.tx_bytes_per_sec", n.interface), n.tx_bytes_per_sec));
        v.push((format!("net.{}.rx_packets_per_sec", n.interface), n.rx_packets_per_sec));
        v.push((format!("net.{}.tx_packets_per_sec", n.interface), n.tx_packets_per_sec));
    }
    if let Some(p) = &s.pressure {
        for (name, r) in [("cpu", &p.cpu), ("memory", &p.memory), ("io", &p.io)] {
            v.push((format!("psi.{name}.some.avg10"), r.some.avg10));
            if let Some(full) = &r.full {
                v.push((format!("psi.{name}.full.avg10"), full.avg10));
            }
        }
    }
    v
}
