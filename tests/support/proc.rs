//! Reading a process's resource use from /proc, for the benchmarks (through
//! the server's own reader, `tailops::host::procfs`).

use tailops::host::procfs;

/// CPU time (utime + stime) of `pid`, in seconds.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = procfs::stat(pid).expect("stat");
    let ticks = stat.utime_ticks + stat.stime_ticks;
    ticks as f64 / rustix::param::clock_ticks_per_second() as f64
}

/// Resident set size (VmRSS) of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    procfs::status(pid).expect("status").vm_rss.map_or(0, |bytes| bytes / 1024)
}
