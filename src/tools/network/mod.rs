//! Network tools. (Minimal module list for the net-probe branch; the
//! net-read branch owns this file and adds its modules.)

pub mod probe;
