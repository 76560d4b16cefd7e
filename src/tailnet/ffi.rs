//! Thin safe wrappers over the raw C API: string conversion, error
//! messages, freeing Go-allocated replies. Everything `unsafe` about the FFI
//! lives here.

use std::ffi::{CStr, CString, c_char, c_int};
use std::os::fd::{FromRawFd, OwnedFd};

use libtailscale_sys as sys;

use super::{Error, Result};

pub(crate) type Handle = sys::tailscale;

pub(crate) fn cstring(what: &'static str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Nul(what))
}

/// The node's last error message.
pub(crate) fn errmsg(sd: Handle) -> String {
    let mut buf = vec![0u8; 1024];
    // SAFETY: buf is a valid, writable buffer of buf.len() bytes; the Go
    // side writes at most buflen bytes including the terminating NUL.
    unsafe { sys::tailscale_errmsg(sd, buf.as_mut_ptr().cast::<c_char>(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

pub(crate) fn check(sd: Handle, op: &'static str, rc: c_int) -> Result<()> {
    match rc {
        0 => Ok(()),
        -1 => Err(Error::Tailscale { op, message: errmsg(sd) }),
        rc if rc == -libc::EBADF => Err(Error::Closed),
        rc => Err(Error::Tailscale { op, message: format!("error code {rc}") }),
    }
}

/// Takes ownership of a Go-allocated C string and returns it as a String.
///
/// # Safety
/// `p` must be null or a pointer returned by the Go side through an out
/// parameter, not yet freed.
pub(crate) unsafe fn take_string(p: *mut c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: per the contract above, p is a valid NUL-terminated string
    // allocated with malloc by C.CString.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    // SAFETY: p came from C.CString and is freed exactly once, here.
    unsafe { sys::tailscale_free(p) };
    s
}

pub(crate) fn new_node() -> Handle {
    // SAFETY: no arguments; returns a fresh handle.
    unsafe { sys::tailscale_new() }
}

pub(crate) fn set_str(
    sd: Handle,
    op: &'static str,
    f: unsafe extern "C" fn(Handle, *const c_char) -> c_int,
    value: &str,
) -> Result<()> {
    let c = cstring(op, value)?;
    // SAFETY: c is a valid NUL-terminated string that outlives the call; the
    // Go side copies it (C.GoString) before returning.
    let rc = unsafe { f(sd, c.as_ptr()) };
    check(sd, op, rc)
}

pub(crate) fn set_dir(sd: Handle, v: &str) -> Result<()> {
    set_str(sd, "set state dir", sys::tailscale_set_dir, v)
}
pub(crate) fn set_hostname(sd: Handle, v: &str) -> Result<()> {
    set_str(sd, "set hostname", sys::tailscale_set_hostname, v)
}
pub(crate) fn set_authkey(sd: Handle, v: &str) -> Result<()> {
    set_str(sd, "set auth key", sys::tailscale_set_authkey, v)
}
pub(crate) fn set_control_url(sd: Handle, v: &str) -> Result<()> {
    set_str(sd, "set control URL", sys::tailscale_set_control_url, v)
}
pub(crate) fn set_advertise_tags(sd: Handle, v: &str) -> Result<()> {
    set_str(sd, "set advertise tags", sys::tailscale_set_advertise_tags, v)
}

pub(crate) fn set_ephemeral(sd: Handle, on: bool) -> Result<()> {
    // SAFETY: plain integer arguments.
    let rc = unsafe { sys::tailscale_set_ephemeral(sd, c_int::from(on)) };
    check(sd, "set ephemeral", rc)
}

pub(crate) fn set_logfd(sd: Handle, fd: c_int, verbose: bool) -> Result<()> {
    // SAFETY: fd is either -1 or an open fd owned by the caller for the
    // duration of the call; the Go side dup()s it before returning.
    let rc = unsafe { sys::tailscale_set_logfd(sd, fd, c_int::from(verbose)) };
    check(sd, "set log fd", rc)
}

pub(crate) fn setenv(key: &str, value: &str) -> Result<()> {
    let k = cstring("setenv key", key)?;
    let v = cstring("setenv value", value)?;
    // SAFETY: both are valid NUL-terminated strings copied by the Go side.
    unsafe { sys::tailscale_setenv(k.as_ptr(), v.as_ptr()) };
    Ok(())
}

/// Calls a function with a JSON out-parameter and returns the document.
fn json_call(sd: Handle, op: &'static str, f: impl FnOnce(*mut *mut c_char) -> c_int) -> Result<String> {
    let mut out: *mut c_char = std::ptr::null_mut();
    let rc = f(&mut out);
    // SAFETY: out is null or was set by the Go side to a C.CString.
    let doc = unsafe { take_string(out) };
    check(sd, op, rc)?;
    Ok(doc)
}

pub(crate) fn up(sd: Handle, timeout_ms: c_int) -> Result<String> {
    // SAFETY: out points to a valid *mut c_char slot on our stack.
    json_call(sd, "tailscale up", |out| unsafe { sys::tailscale_up(sd, timeout_ms, out) })
}

pub(crate) fn whois(sd: Handle, addr: &str, timeout_ms: c_int) -> Result<String> {
    let a = cstring("whois address", addr)?;
    // SAFETY: a outlives the call; out is a valid slot.
    json_call(sd, "whois", |out| unsafe { sys::tailscale_whois(sd, a.as_ptr(), timeout_ms, out) })
}

pub(crate) fn status(sd: Handle, timeout_ms: c_int) -> Result<String> {
    // SAFETY: out is a valid slot.
    json_call(sd, "status", |out| unsafe { sys::tailscale_status(sd, timeout_ms, out) })
}

pub(crate) fn close(sd: Handle) -> Result<()> {
    // SAFETY: plain integer handle; unknown handles are reported, not UB.
    let rc = unsafe { sys::tailscale_close(sd) };
    check(sd, "close", rc)
}

/// Wraps an fd that the Go side handed to us (ownership transferred).
pub(crate) fn own_fd(fd: c_int) -> OwnedFd {
    // SAFETY: the Go side created this fd for us and keeps no reference to
    // this end of the socketpair; we are its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

pub(crate) fn listen(sd: Handle, network: &str, addr: &str, tls: bool) -> Result<OwnedFd> {
    let n = cstring("listen network", network)?;
    let a = cstring("listen address", addr)?;
    let mut fd: c_int = -1;
    // SAFETY: n and a outlive the call; fd is a valid out slot.
    let rc = unsafe {
        if tls {
            sys::tailscale_listen_tls(sd, n.as_ptr(), a.as_ptr(), &mut fd)
        } else {
            sys::tailscale_listen(sd, n.as_ptr(), a.as_ptr(), &mut fd)
        }
    };
    check(sd, if tls { "listen_tls" } else { "listen" }, rc)?;
    Ok(own_fd(fd))
}

pub(crate) fn listen_service(sd: Handle, name: &str, port: u16, https: bool) -> Result<(OwnedFd, String)> {
    let n = cstring("service name", name)?;
    let mut fd: c_int = -1;
    let mut fqdn: *mut c_char = std::ptr::null_mut();
    // SAFETY: n outlives the call; fd and fqdn are valid out slots.
    let rc = unsafe {
        sys::tailscale_listen_service(sd, n.as_ptr(), c_int::from(port), c_int::from(https), &mut fd, &mut fqdn)
    };
    // SAFETY: fqdn is null or a C.CString from the Go side.
    let fqdn = unsafe { take_string(fqdn) };
    check(sd, "listen_service", rc)?;
    Ok((own_fd(fd), fqdn))
}

pub(crate) fn dial(sd: Handle, network: &str, addr: &str, timeout_ms: c_int) -> Result<OwnedFd> {
    let n = cstring("dial network", network)?;
    let a = cstring("dial address", addr)?;
    let mut fd: c_int = -1;
    // SAFETY: n and a outlive the call; fd is a valid out slot.
    let rc = unsafe { sys::tailscale_dial(sd, n.as_ptr(), a.as_ptr(), timeout_ms, &mut fd) };
    check(sd, "dial", rc)?;
    Ok(own_fd(fd))
}
