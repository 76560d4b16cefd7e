//! What the tools observe and change on this host: no MCP routing, no HTTP.
//! One module per domain; `tools/<domain>` is the MCP face of each.

pub mod docker;
