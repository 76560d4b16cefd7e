//! Making tokio's signal handlers safe next to the Go runtime.
//!
//! The Go runtime runs goroutines on small stacks and requires every signal
//! handler in the process to run on the alternate signal stack
//! (`SA_ONSTACK`). tokio (through signal-hook-registry) installs its
//! handlers without that flag; a process-directed signal such as SIGTERM can
//! land on a Go thread and then runs tokio's handler on a goroutine stack,
//! which the Go runtime reports as a fatal error ("non-Go code set up signal
//! handler without SA_ONSTACK flag") or worse.
//!
//! The fix: register the tokio signal streams we will ever use first, then
//! OR `SA_ONSTACK` into every installed non-default handler that lacks it.
//! Handlers are shared per signal, so later tokio registrations of the same
//! signal reuse the fixed handler.

use std::io;

/// Signals whose tokio handlers the server registers; [`install`] makes sure
/// each has a handler before fixing flags.
pub const SERVER_SIGNALS: &[i32] = &[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD];

/// Registers tokio handlers for [`SERVER_SIGNALS`] (so they exist) and fixes
/// every handler in the process. Must run inside a tokio runtime.
pub fn install() -> io::Result<usize> {
    for &sig in SERVER_SIGNALS {
        // Registering once installs the process-wide handler; the stream
        // itself is not needed here.
        drop(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(sig))?);
    }
    fix_go_signal_handlers()
}

/// ORs `SA_ONSTACK` into every installed handler (not SIG_DFL / SIG_IGN)
/// that lacks it. Returns how many handlers were changed. Idempotent.
pub fn fix_go_signal_handlers() -> io::Result<usize> {
    let mut fixed = 0;
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let mut current = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: reading the current action into a zeroed, properly sized
        // struct; a null new-action pointer means "query only".
        let rc = unsafe { libc::sigaction(sig, std::ptr::null(), current.as_mut_ptr()) };
        if rc != 0 {
            continue; // signals the kernel refuses to report
        }
        // SAFETY: sigaction succeeded, so the struct is initialised.
        let mut action = unsafe { current.assume_init() };
        if action.sa_sigaction == libc::SIG_DFL || action.sa_sigaction == libc::SIG_IGN {
            continue;
        }
        if action.sa_flags & libc::SA_ONSTACK != 0 {
            continue;
        }
        action.sa_flags |= libc::SA_ONSTACK;
        // SAFETY: re-installing the very same handler, mask and flags with one
        // added flag; `action` is a valid, fully initialised sigaction.
        let rc = unsafe { libc::sigaction(sig, &action, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        fixed += 1;
    }
    Ok(fixed)
}

/// Whether `sig` has a handler installed that lacks `SA_ONSTACK` (for tests
/// and diagnostics).
pub fn handler_lacks_onstack(sig: i32) -> bool {
    let mut current = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: query-only sigaction into a zeroed struct.
    let rc = unsafe { libc::sigaction(sig, std::ptr::null(), current.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: initialised by the successful call.
    let action = unsafe { current.assume_init() };
    action.sa_sigaction != libc::SIG_DFL
        && action.sa_sigaction != libc::SIG_IGN
        && action.sa_flags & libc::SA_ONSTACK == 0
}
