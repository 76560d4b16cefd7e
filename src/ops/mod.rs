//! Running tailops on a fleet: the systemd notify protocol ([`notify`]).
//! The Prometheus endpoints (`/metrics`, `/sd`) live here too.

pub mod config_check;
pub mod config_doc;
pub mod metrics;
pub mod notify;
pub mod sd;
