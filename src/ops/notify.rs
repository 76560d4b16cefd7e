//! systemd `Type=notify`: `READY=1` once the server serves, `STOPPING=1` on
//! shutdown, and `WATCHDOG=1` pings while the process is live.
//!
//! "Live" means two things, checked before every ping: the tokio event loop
//! runs this task (a wedged runtime sends nothing), and the audit writer is
//! neither stalled (one write stuck past its bound) nor closed. Without the
//! pings systemd kills the process after `WatchdogSec` and restarts it.
//! Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::audit::{AuditLog, UnhealthyReason};

/// Shortest ping interval honoured, whatever `WATCHDOG_USEC` says: a
/// misconfigured tiny `WatchdogSec` must not turn into a busy loop.
pub const MIN_WATCHDOG_PING: Duration = Duration::from_millis(50);

/// Tells systemd the service is ready.
pub fn ready(status: &str) {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(status)]) {
        tracing::warn!(error = %e, "cannot send READY=1 to systemd");
    }
}

/// Tells systemd the service is stopping.
pub fn stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

/// Why the watchdog is not pinged now, if it is not.
pub fn unlive_reason(audit: &AuditLog) -> Option<&'static str> {
    let h = audit.health();
    match h.reason {
        Some(UnhealthyReason::Stalled) => Some("audit writer stalled"),
        Some(UnhealthyReason::Closed) => Some("audit writer closed"),
        _ => None,
    }
}

/// The ping interval for a `WATCHDOG_USEC` period: half of it (systemd's
/// advice), at least [`MIN_WATCHDOG_PING`].
pub fn ping_interval(period: Duration) -> Duration {
    (period / 2).max(MIN_WATCHDOG_PING)
}

/// Starts the watchdog pings when systemd asked for them (`WATCHDOG_USEC`
/// for this PID); returns `None` otherwise.
pub fn spawn_watchdog(audit: AuditLog, shutdown: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    let period = sd_notify::watchdog_enabled()?;
    let every = ping_interval(period);
    tracing::info!(period_ms = period.as_millis() as u64, "systemd watchdog enabled");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_live = true;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            match unlive_reason(&audit) {
                None => {
                    if !was_live {
                        tracing::info!("watchdog pings resumed");
                    }
                    was_live = true;
                    // A datagram send blocks while the manager's queue is
                    // full (a busy PID 1): never on a runtime worker. The
                    // loop waits for it, so at most one send is pending.
                    let _ =
                        tokio::task::spawn_blocking(|| sd_notify::notify(&[sd_notify::NotifyState::Watchdog])).await;
                }
                Some(why) => {
                    if was_live {
                        tracing::error!(reason = why, "withholding systemd watchdog pings");
                    }
                    was_live = false;
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_interval_is_half_the_period_with_a_floor() {
        assert_eq!(ping_interval(Duration::from_secs(30)), Duration::from_secs(15));
        assert_eq!(ping_interval(MIN_WATCHDOG_PING * 2), MIN_WATCHDOG_PING);
        assert_eq!(ping_interval(MIN_WATCHDOG_PING * 2 - Duration::from_millis(1)), MIN_WATCHDOG_PING);
        assert_eq!(ping_interval(Duration::ZERO), MIN_WATCHDOG_PING);
    }

    #[tokio::test]
    async fn a_live_or_disabled_audit_log_allows_pings() {
        assert_eq!(unlive_reason(&AuditLog::disabled()), None);
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = crate::audit::AuditConfig {
            path: Some(dir.path().join("audit.jsonl")),
            journald: crate::audit::JournaldMode::Off,
            ..Default::default()
        };
        let (log, _task) = AuditLog::start(cfg).await.expect("start");
        assert_eq!(unlive_reason(&log), None);
        log.close().await;
    }
}
