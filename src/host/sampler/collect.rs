//! The collector: one host sample from `sysinfo` (CPU, memory, processes,
//! networks, users, temperature sensors) and `/proc` for what it lacks
//! (load, PSI, per-disk IO rates, mounts with `statvfs(3)`, fresh command
//! names and thread counts from `/proc/PID/stat`). Blocking: the sampler
//! runs it on tokio's blocking pool.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use sysinfo::{Components, Networks, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind, Users};

use super::parse::{is_network_fs, parse_diskstats, parse_loadavg, parse_mounts, parse_psi};
use super::snapshot::{
    CpuSnapshot, DiskSnapshot, LoadAvg, MemorySnapshot, NetSnapshot, Pressure, ProcessSample, PsiResource, Snapshot,
    Temperature,
};
use super::{percent, rfc3339, unix_secs, widen};
use crate::host::procfs;

/// How long one `statvfs` of a network filesystem may take before the mount
/// is skipped (until that call returns).
const NETWORK_FS_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the uid → user name table is re-read at most.
const USERS_REFRESH: Duration = Duration::from_secs(60);
/// diskstats counts 512-byte sectors whatever the device's sector size.
const SECTOR_BYTES: f64 = 512.0;

/// Facts that do not change while running.
struct StaticInfo {
    os_name: String,
    os_version: String,
    kernel: String,
    arch: String,
}

/// Holds sysinfo's state and the previous counters between samples.
pub(super) struct Collector {
    sys: System,
    networks: Networks,
    components: Components,
    users: Users,
    users_read: Instant,
    info: StaticInfo,
    max_processes: usize,
    /// Previous diskstats sector counters by device name, and when read.
    prev_disk: HashMap<String, (u64, u64)>,
    prev_disk_at: Option<Instant>,
    /// Previous interface byte counters, and when read.
    prev_net: HashMap<String, [u64; 4]>,
    prev_net_at: Option<Instant>,
    /// Network mounts whose statvfs is still stuck (flag set when it returns).
    stuck_mounts: HashMap<String, Arc<AtomicBool>>,
}

impl Collector {
    pub(super) fn new(max_processes: usize) -> Self {
        // sysinfo would otherwise keep a /proc/PID/stat descriptor open per
        // process (up to half the fd limit): the server needs those fds more.
        sysinfo::set_open_files_limit(0);
        Collector {
            sys: System::new(),
            networks: Networks::new_with_refreshed_list(),
            components: Components::new_with_refreshed_list(),
            users: Users::new_with_refreshed_list(),
            users_read: Instant::now(),
            info: StaticInfo {
                os_name: System::name().unwrap_or_else(|| "Linux".to_owned()),
                os_version: System::os_version().unwrap_or_default(),
                kernel: System::kernel_version().unwrap_or_default(),
                arch: System::cpu_arch(),
            },
            max_processes,
            prev_disk: HashMap::new(),
            prev_disk_at: None,
            prev_net: HashMap::new(),
            prev_net_at: None,
            stuck_mounts: HashMap::new(),
        }
    }

    pub(super) fn collect(&mut self) -> Snapshot {
        let started = Instant::now();
        let now = SystemTime::now();
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();

        let cpu = CpuSnapshot {
            model: self.sys.cpus().first().map(|c| c.brand().trim().to_owned()).unwrap_or_default(),
            physical_cores: System::physical_core_count(),
            logical_cores: self.sys.cpus().len(),
            usage_percent: widen(self.sys.global_cpu_usage()),
            per_core_percent: self.sys.cpus().iter().map(|c| widen(c.cpu_usage())).collect(),
        };

        let total = self.sys.total_memory();
        let available = self.sys.available_memory();
        let used = total.saturating_sub(available);
        let swap_total = self.sys.total_swap();
        let swap_used = swap_total.saturating_sub(self.sys.free_swap());
        let memory = MemorySnapshot {
            total,
            used,
            available,
            free: self.sys.free_memory(),
            swap_total,
            swap_used,
            used_percent: percent(used, total),
            swap_used_percent: percent(swap_used, swap_total),
        };

        let load = std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| parse_loadavg(&s)).unwrap_or_else(|| {
            let l = System::load_average();
            LoadAvg { one: l.one, five: l.five, fifteen: l.fifteen }
        });

        let (pressure, pressure_note) = read_pressure();
        let disks = self.disks();
        let networks = self.networks();
        let (temperatures, temperatures_note) = self.temperatures();
        let processes = self.processes();

        let taken_unix = unix_secs(now);
        Snapshot {
            taken_at: rfc3339(taken_unix),
            taken_unix,
            hostname: System::host_name().unwrap_or_default(),
            os_name: self.info.os_name.clone(),
            os_version: self.info.os_version.clone(),
            kernel: self.info.kernel.clone(),
            arch: self.info.arch.clone(),
            uptime_secs: System::uptime(),
            boot_time_unix: System::boot_time(),
            load,
            cpu,
            memory,
            disks,
            networks,
            pressure,
            pressure_note,
            temperatures,
            temperatures_note,
            processes,
            sample_duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        }
    }

    fn disks(&mut self) -> Vec<DiskSnapshot> {
        let stats_text = std::fs::read_to_string("/proc/diskstats").unwrap_or_default();
        let stats = parse_diskstats(&stats_text);
        let now = Instant::now();
        let elapsed = self.prev_disk_at.map(|t| now.duration_since(t).as_secs_f64()).filter(|d| *d > 0.0);
        let rate = |name: &str, prev: &HashMap<String, (u64, u64)>, cur: (u64, u64)| -> (Option<f64>, Option<f64>) {
            match (prev.get(name), elapsed) {
                (Some(p), Some(dt)) => (
                    Some(cur.0.saturating_sub(p.0) as f64 * SECTOR_BYTES / dt),
                    Some(cur.1.saturating_sub(p.1) as f64 * SECTOR_BYTES / dt),
                ),
                _ => (None, None),
            }
        };

        let mounts_text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut out = Vec::new();
        for m in parse_mounts(&mounts_text) {
            let network = is_network_fs(&m.fs_type);
            let mut dev_id = None;
            if !network {
                // Skips mount points that are files (bind-mounted /etc/hosts…).
                match rustix::fs::stat(m.mount_point.as_str()) {
                    Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() => {
                        dev_id = Some((rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev)));
                    }
                    _ => continue,
                }
            }
            let Some(vfs) = self.statvfs(&m.mount_point, network) else { continue };
            let frsize = if vfs.f_frsize > 0 { vfs.f_frsize } else { vfs.f_bsize };
            let total_bytes = vfs.f_blocks.saturating_mul(frsize);
            if total_bytes == 0 {
                continue;
            }
            let used_bytes = vfs.f_blocks.saturating_sub(vfs.f_bfree).saturating_mul(frsize);
            let available_bytes = vfs.f_bavail.saturating_mul(frsize);
            let inodes_used = vfs.f_files.saturating_sub(vfs.f_ffree);

            // The device in diskstats: by the source's name (symlinks such as
            // /dev/mapper/x or /dev/disk/by-uuid/… resolved), else by the
            // mount's device number (covers /dev/root).
            let by_name = m
                .device
                .starts_with("/dev/")
                .then(|| std::fs::canonicalize(&m.device).ok())
                .flatten()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .filter(|n| stats.by_name.contains_key(n));
            let dev_name = by_name.or_else(|| dev_id.and_then(|id| stats.by_id.get(&id).cloned()));
            let (read_bytes_per_sec, write_bytes_per_sec) = match &dev_name {
                Some(n) => stats.by_name.get(n).map(|cur| rate(n, &self.prev_disk, *cur)).unwrap_or((None, None)),
                None => (None, None),
            };

            out.push(DiskSnapshot {
                used_percent: percent(used_bytes, used_bytes.saturating_add(available_bytes)),
                mount_point: m.mount_point,
                device: m.device,
                fs_type: m.fs_type,
                total_bytes,
                used_bytes,
                available_bytes,
                inodes_total: vfs.f_files,
                inodes_used,
                inodes_used_percent: (vfs.f_files > 0).then(|| percent(inodes_used, vfs.f_files)),
                read_bytes_per_sec,
                write_bytes_per_sec,
            });
        }
        self.prev_disk = stats.by_name;
        self.prev_disk_at = Some(now);
        out
    }

    /// statvfs; for network filesystems on a helper thread with a timeout,
    /// so a hung server stalls neither the sampler nor the next samples.
    fn statvfs(&mut self, mount_point: &str, network: bool) -> Option<rustix::fs::StatVfs> {
        if !network {
            return rustix::fs::statvfs(mount_point).ok();
        }
        if let Some(done) = self.stuck_mounts.get(mount_point) {
            if !done.load(Ordering::Acquire) {
                return None;
            }
            self.stuck_mounts.remove(mount_point);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let done = Arc::new(AtomicBool::new(false));
        let done_in_thread = done.clone();
        let path = mount_point.to_owned();
        let spawned = std::thread::Builder::new().name("tailops-statvfs".to_owned()).spawn(move || {
            let r = rustix::fs::statvfs(path.as_str()).ok();
            done_in_thread.store(true, Ordering::Release);
            let _ = tx.send(r);
        });
        if spawned.is_err() {
            return None;
        }
        match rx.recv_timeout(NETWORK_FS_TIMEOUT) {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(mount_point, "statvfs did not answer within 1 s; skipping this mount until it does");
                self.stuck_mounts.insert(mount_point.to_owned(), done);
                None
            }
        }
    }

    fn networks(&mut self) -> Vec<NetSnapshot> {
        self.networks.refresh(true);
        let now = Instant::now();
        let elapsed = self.prev_net_at.map(|t| now.duration_since(t).as_secs_f64()).filter(|d| *d > 0.0);
        let mut current = HashMap::new();
        let mut out: Vec<NetSnapshot> = self
            .networks
            .list()
            .iter()
            .map(|(name, d)| {
                let (rx, tx) = (d.total_received(), d.total_transmitted());
                let (rxp, txp) = (d.total_packets_received(), d.total_packets_transmitted());
                let now_counts = [rx, tx, rxp, txp];
                current.insert(name.clone(), now_counts);
                // Bytes and packets per second since the previous sample (a
                // counter that went backwards, e.g. a re-created device, is 0).
                let rates = match (self.prev_net.get(name), elapsed) {
                    (Some(p), Some(dt)) => {
                        let r = |i: usize| now_counts[i].saturating_sub(p[i]) as f64 / dt;
                        [r(0), r(1), r(2), r(3)]
                    }
                    _ => [0.0; 4],
                };
                let (rx_rate, tx_rate) = (rates[0], rates[1]);
                NetSnapshot {
                    interface: name.clone(),
                    rx_bytes: rx,
                    tx_bytes: tx,
                    rx_bytes_per_sec: rx_rate,
                    tx_bytes_per_sec: tx_rate,
                    rx_packets: rxp,
                    tx_packets: txp,
                    rx_packets_per_sec: rates[2],
                    tx_packets_per_sec: rates[3],
                    rx_errors: d.total_errors_on_received(),
                    tx_errors: d.total_errors_on_transmitted(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.interface.cmp(&b.interface));
        self.prev_net = current;
        self.prev_net_at = Some(now);
        out
    }

    fn temperatures(&mut self) -> (Vec<Temperature>, Option<String>) {
        self.components.refresh(false);
        let temps: Vec<Temperature> = self
            .components
            .list()
            .iter()
            .filter_map(|c| {
                let t = c.temperature().filter(|t| t.is_finite())?;
                Some(Temperature {
                    label: c.label().to_owned(),
                    celsius: widen(t),
                    critical_celsius: c.critical().filter(|t| t.is_finite()).map(widen),
                })
            })
            .collect();
        let note = if !temps.is_empty() {
            None
        } else if self.components.list().is_empty() {
            Some("no hardware sensors exposed (virtual machine or container)".to_owned())
        } else {
            Some("sensors are exposed but none reports a temperature".to_owned())
        };
        (temps, note)
    }

    fn processes(&mut self) -> Vec<ProcessSample> {
        let kind = ProcessRefreshKind::nothing()
            .without_tasks()
            .with_cpu()
            .with_memory()
            .with_user(UpdateKind::Always)
            .with_cmd(UpdateKind::Always)
            .with_exe(UpdateKind::Always);
        self.sys.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);

        let mut procs: Vec<&sysinfo::Process> =
            self.sys.processes().values().filter(|p| p.thread_kind() != Some(sysinfo::ThreadKind::Userland)).collect();
        if procs.len() > self.max_processes {
            procs.sort_by(|a, b| b.cpu_usage().total_cmp(&a.cpu_usage()).then_with(|| b.memory().cmp(&a.memory())));
            procs.truncate(self.max_processes);
        }

        // Re-read the user table when an unknown uid shows up (at most once a minute).
        let unknown_uid = procs.iter().filter_map(|p| p.user_id()).any(|u| self.users.get_user_by_id(u).is_none());
        if unknown_uid && self.users_read.elapsed() >= USERS_REFRESH {
            self.users.refresh();
            self.users_read = Instant::now();
        }

        let mut out: Vec<ProcessSample> = procs
            .into_iter()
            .map(|p| {
                let pid = p.pid().as_u32();
                let stat = procfs::stat(pid).ok();
                let uid = p.user_id().map(|u| **u);
                ProcessSample {
                    pid,
                    ppid: p.parent().map(|pp| pp.as_u32()),
                    name: stat
                        .as_ref()
                        .map(|s| s.comm.clone())
                        .unwrap_or_else(|| p.name().to_string_lossy().into_owned()),
                    cmdline: p.cmd().iter().map(|a| a.to_string_lossy().into_owned()).collect(),
                    exe: p.exe().map(|e| e.to_string_lossy().into_owned()),
                    user: p.user_id().and_then(|u| self.users.get_user_by_id(u)).map(|u| u.name().to_owned()),
                    uid,
                    state: p.status().to_string(),
                    cpu_percent: widen(p.cpu_usage()),
                    memory_bytes: p.memory(),
                    virtual_bytes: p.virtual_memory(),
                    start_time_unix: p.start_time(),
                    threads: stat.map(|s| s.num_threads),
                }
            })
            .collect();
        out.sort_by_key(|p| p.pid);
        out
    }
}

/// PSI from `/proc/pressure/{cpu,memory,io}`, or why it is missing.
fn read_pressure() -> (Option<Pressure>, Option<String>) {
    let read = |name: &str| -> Result<PsiResource, String> {
        let path = format!("/proc/pressure/{name}");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        parse_psi(&text).ok_or_else(|| format!("{path}: unexpected format"))
    };
    if !std::path::Path::new("/proc/pressure").is_dir() {
        return (None, Some("no /proc/pressure: the kernel lacks PSI (CONFIG_PSI, or booted with psi=0)".to_owned()));
    }
    match (read("cpu"), read("memory"), read("io")) {
        (Ok(cpu), Ok(memory), Ok(io)) => (Some(Pressure { cpu, memory, io }), None),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => (None, Some(format!("PSI unreadable: {e}"))),
    }
}
