//! Network diagnostics on this host. (Minimal module list for the
//! net-probe branch; the net-read branch owns this file and adds its
//! modules.)

pub mod config;
pub mod probe;
pub mod target;
