//! Raw FFI declarations for the Go shim in `go/shim.go` (tsnet as a
//! c-archive). Use the safe API in the `tailops` crate (`src/tailnet/`)
//! instead of calling these directly.
//!
//! Conventions, shared by every function:
//! - `sd` is a node handle from [`tailscale_new`].
//! - Functions return 0 on success, -1 on error (message via
//!   [`tailscale_errmsg`]) or a negative errno (`-EBADF`) for an unknown
//!   handle.
//! - `*mut *mut c_char` out-parameters receive a malloc'ed, NUL-terminated
//!   JSON document to be released with [`tailscale_free`].
//! - Listener fds are `SOCK_SEQPACKET`: each message carries one accepted
//!   conn fd (SCM_RIGHTS) and the remote address ("ip:port") as payload.
//! - Blocking calls take `timeout_ms` (<= 0 means 60 s).
#![no_std]
#![allow(non_camel_case_types)]

use core::ffi::{c_char, c_int};

pub type tailscale = c_int;

unsafe extern "C" {
    pub fn tailscale_new() -> tailscale;
    pub fn tailscale_set_dir(sd: tailscale, dir: *const c_char) -> c_int;
    pub fn tailscale_set_hostname(sd: tailscale, hostname: *const c_char) -> c_int;
    pub fn tailscale_set_authkey(sd: tailscale, authkey: *const c_char) -> c_int;
    pub fn tailscale_set_control_url(sd: tailscale, url: *const c_char) -> c_int;
    pub fn tailscale_set_ephemeral(sd: tailscale, ephemeral: c_int) -> c_int;
    /// Comma-separated tags, e.g. `tag:tailops,tag:prod`.
    pub fn tailscale_set_advertise_tags(sd: tailscale, tags: *const c_char) -> c_int;
    /// Log lines ("U " user-facing / "D " debug when `verbose`) go to `fd`
    /// (dup'ed); -1 discards them (the default).
    pub fn tailscale_set_logfd(sd: tailscale, fd: c_int, verbose: c_int) -> c_int;
    /// Sets an environment knob on the Go side (the Go runtime copied the
    /// environment at process start).
    pub fn tailscale_setenv(key: *const c_char, value: *const c_char) -> c_int;
    pub fn tailscale_up(sd: tailscale, timeout_ms: c_int, out: *mut *mut c_char) -> c_int;
    pub fn tailscale_free(p: *mut c_char);
    pub fn tailscale_close(sd: tailscale) -> c_int;
    pub fn tailscale_errmsg(sd: tailscale, buf: *mut c_char, buflen: usize) -> c_int;
    pub fn tailscale_listen(
        sd: tailscale,
        network: *const c_char,
        addr: *const c_char,
        listener_out: *mut c_int,
    ) -> c_int;
    pub fn tailscale_listen_tls(
        sd: tailscale,
        network: *const c_char,
        addr: *const c_char,
        listener_out: *mut c_int,
    ) -> c_int;
    pub fn tailscale_listen_service(
        sd: tailscale,
        name: *const c_char,
        port: c_int,
        https: c_int,
        listener_out: *mut c_int,
        fqdn_out: *mut *mut c_char,
    ) -> c_int;
    /// `tailscale_listen_service` with AcceptAppCaps (reach): `caps` is a
    /// newline-separated list of app capability names to forward.
    pub fn tailscale_listen_service_caps(
        sd: tailscale,
        name: *const c_char,
        port: c_int,
        https: c_int,
        caps: *const c_char,
        listener_out: *mut c_int,
        fqdn_out: *mut *mut c_char,
    ) -> c_int;
    pub fn tailscale_dial(
        sd: tailscale,
        network: *const c_char,
        addr: *const c_char,
        timeout_ms: c_int,
        conn_out: *mut c_int,
    ) -> c_int;
    pub fn tailscale_whois(
        sd: tailscale,
        remote_addr: *const c_char,
        timeout_ms: c_int,
        out: *mut *mut c_char,
    ) -> c_int;
    pub fn tailscale_status(sd: tailscale, timeout_ms: c_int, out: *mut *mut c_char) -> c_int;
}

// net-read (issue 11): tailnet_ping.
unsafe extern "C" {
    /// One disco or TSMP ping (`kind` "disco" | "tsmp") to a tailnet IP; on
    /// success `*out` is an `ipnstate.PingResult` JSON document (its `Err`
    /// set when the peer did not answer), to be freed with `tailscale_free`.
    pub fn tailscale_ping(
        sd: tailscale,
        ip: *const c_char,
        kind: *const c_char,
        timeout_ms: c_int,
        out: *mut *mut c_char,
    ) -> c_int;
}

// memory (issue 15): the Go runtime's memory knobs and figures.
unsafe extern "C" {
    /// Sets the Go runtime's soft memory limit in bytes (<= 0: unchanged)
    /// and its GC percent (0: unchanged; < 0: proportional GC off).
    pub fn tailscale_set_go_memory(limit_bytes: core::ffi::c_longlong, gc_percent: c_int) -> c_int;
    /// Stores a JSON document of runtime/metrics memory figures in `*out`
    /// (free with `tailscale_free`); `free_os` != 0 first runs
    /// `debug.FreeOSMemory` (a GC plus returning every free page).
    pub fn tailscale_go_memory(free_os: c_int, out: *mut *mut c_char) -> c_int;
}
