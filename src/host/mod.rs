//! What the tools observe and change on this host: no MCP routing, no HTTP.
//! One module per domain.

pub mod procfs;
pub mod sampler;
