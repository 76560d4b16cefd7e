//! Process memory: the knobs applied once at start ([`tune_process`]) and
//! the embedded Go runtime's own figures ([`go_memory`]).
//!
//! Two allocators share this process: the Go runtime's (tsnet, netstack,
//! the connection bridge) and glibc malloc (everything Rust). Left at their
//! defaults, both keep far more than they use on a small, mostly idle
//! server (measured by `benches/memory.rs`, figures in BENCHMARKS.md):
//!
//! - Go collects when the heap has grown [`GO_GC_PERCENT`] % past what was
//!   live after the last collection. tsnet's live heap is ~34 MB as Go
//!   counts it (most of it large buffers allocated up front and never
//!   touched, so not resident), so with Go's default of 100 garbage may
//!   grow by another ~34 MB of *resident* memory before a collection:
//!   10,000 tailnet connections left RSS 40 MB higher. At 50 it is half.
//!   A soft memory limit (`GOMEMLIMIT`) is not set by default: any value
//!   below that 34 MB "live" heap makes Go collect continuously (measured
//!   at 32 MiB: idle CPU 0.13 % → 0.43 %, connection rate halved), and
//!   every open connection adds live Go heap (at least the bridge's two
//!   32 KB copy buffers, plus goroutines and netstack state), so a fixed
//!   limit safe at `limits.max_connections` would save nothing when idle.
//! - glibc gives each thread that mallocs under contention its own arena
//!   (up to 8 per core), and memory freed in one arena is never reused by
//!   another; [`MALLOC_ARENA_MAX`] caps them.
//!
//! The environment wins over both constants: `GOMEMLIMIT` / `GOGC` set
//! when the process starts (the Go runtime reads them itself) and
//! `MALLOC_ARENA_MAX` (read by glibc) are left alone.
//!
//! `unsafe` here: the FFI calls into the Go shim and glibc's `mallopt`.

use std::ffi::{c_char, c_int};
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{Error, Result};

/// The Go runtime's soft memory limit in bytes, when set (env
/// `GOMEMLIMIT` wins). None: Go's default, no limit (see the module doc).
pub const GO_MEMORY_LIMIT_BYTES: Option<u64> = None;

/// The Go runtime's GC percent (env `GOGC` wins; Go's default is 100).
pub const GO_GC_PERCENT: i32 = 50;

/// glibc malloc arenas at most (env `MALLOC_ARENA_MAX` wins).
pub const MALLOC_ARENA_MAX: c_int = 2;

/// What [`tune_process`] set; `None` where the environment decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    pub go_memory_limit: Option<u64>,
    pub go_gc_percent: Option<i32>,
    pub malloc_arena_max: Option<i32>,
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// Applies the memory knobs above. Call it first thing in `main`, before
/// any thread is started (glibc gives threads their arenas as they first
/// allocate). Idempotent.
pub fn tune_process() -> Tuning {
    let go_memory_limit = GO_MEMORY_LIMIT_BYTES.filter(|_| !env_set("GOMEMLIMIT"));
    let go_gc_percent = (!env_set("GOGC")).then_some(GO_GC_PERCENT);
    let limit = go_memory_limit.map_or(0, |l| i64::try_from(l).unwrap_or(i64::MAX));
    // SAFETY: two plain integers; the Go side only calls runtime/debug
    // setters, which are safe to call at any time from any thread.
    unsafe { libtailscale_sys::tailscale_set_go_memory(limit, go_gc_percent.unwrap_or(0)) };
    let malloc_arena_max = (!env_set("MALLOC_ARENA_MAX")).then(set_arena_max).flatten();
    Tuning { go_memory_limit, go_gc_percent, malloc_arena_max }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max() -> Option<i32> {
    // SAFETY: mallopt only changes malloc's parameters; M_ARENA_MAX with a
    // positive value is a documented parameter; it is thread-safe in glibc
    // (it takes the main arena's lock).
    let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENA_MAX) };
    (ok == 1).then_some(MALLOC_ARENA_MAX)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max() -> Option<i32> {
    None
}

/// The Go runtime's memory, from `runtime/metrics` (bytes unless named).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct GoMemory {
    /// Everything the Go runtime has mapped (`/memory/classes/total`).
    pub total: u64,
    /// Live and not-yet-swept heap objects.
    pub heap_objects: u64,
    /// Free heap pages still held (not returned to the OS).
    pub heap_free: u64,
    /// Heap pages returned to the OS (mapped, not resident).
    pub heap_released: u64,
    /// Heap memory reserved for objects but not in use.
    pub heap_unused: u64,
    /// Goroutine stacks.
    pub stacks: u64,
    pub metadata: u64,
    pub other: u64,
    /// The heap size the next collection aims for.
    pub heap_goal: u64,
    pub memory_limit: u64,
    pub gc_percent: u64,
    pub gc_cycles: u64,
    pub goroutines: u64,
}

/// The Go runtime's memory figures; with `free_os`, after a forced GC that
/// returns every free page to the OS (a diagnostic: it costs a full GC).
pub fn go_memory(free_os: bool) -> Result<GoMemory> {
    let mut out: *mut c_char = std::ptr::null_mut();
    // SAFETY: out is a valid slot on our stack; the Go side stores a
    // C.CString in it and never keeps the pointer.
    let rc = unsafe { libtailscale_sys::tailscale_go_memory(c_int::from(free_os), &mut out) };
    // SAFETY: out is null or a C.CString from the Go side, freed once here.
    let doc = unsafe { super::ffi::take_string(out) };
    if rc != 0 {
        return Err(Error::Tailscale { op: "go memory", message: format!("error code {rc}") });
    }
    serde_json::from_str(&doc).map_err(|source| Error::Decode { op: "go memory", source })
}

/// How often a serving process returns freed malloc memory to the OS
/// ([`trim_periodically`]). glibc gives back only the free top of an
/// arena by itself; pages freed below live chunks stay resident until a
/// trim. One trim of this process's arenas takes well under a millisecond.
pub const MALLOC_TRIM_SECS: u64 = 30;

/// Calls [`malloc_trim`] every `period` (on a blocking thread: it holds
/// the arenas' locks while it walks them) until `stop` fires.
pub async fn trim_periodically(period: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                let _ = tokio::task::spawn_blocking(malloc_trim).await;
            }
        }
    }
}

/// Returns free memory of every glibc arena to the OS (`malloc_trim(0)`);
/// true when some was returned.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn malloc_trim() -> bool {
    // SAFETY: malloc_trim only walks malloc's own arenas under their locks.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// No-op where glibc is not the allocator.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn malloc_trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_memory_reads_the_runtime_and_the_limit_applies() {
        let t = tune_process();
        let m = go_memory(false).expect("go memory");
        assert!(m.total > 0 && m.heap_objects > 0 && m.goroutines > 0, "{m:?}");
        if let Some(limit) = t.go_memory_limit {
            assert_eq!(m.memory_limit, limit);
        }
        if t.go_gc_percent.is_some() {
            assert_eq!(m.gc_percent, GO_GC_PERCENT as u64);
        }
        // A forced GC + scavenge leaves nothing free un-returned.
        let after = go_memory(true).expect("go memory");
        assert!(after.gc_cycles > m.gc_cycles, "{m:?} → {after:?}");
    }
}
