//! The client side of TailOps, in the same binary: reaching a TailOps server
//! on the tailnet from a machine that wants to use it.
//!
//! - [`relay`]: `tailops connect HOST` — a stdio MCP server for clients that
//!   only speak stdio (Claude Desktop, many IDEs), relaying every JSON-RPC
//!   message both ways to the server's Streamable HTTP endpoint.
//! - [`cli`]: `tailops tools HOST` and `tailops call HOST TOOL [JSON]` for
//!   people and scripts.
//! - [`transport`]: how bytes get there: through an embedded tailnet node of
//!   our own (default; ephemeral unless given a state dir) or through the
//!   host's `tailscaled` (`--via-tailscaled`: plain sockets, the host's
//!   MagicDNS and routes), plain HTTP or HTTPS.
//!
//! Only the tailnet layer is used from here: the bridge knows nothing of
//! the server's internals, it speaks the MCP wire protocol.

pub mod cli;
pub mod relay;
pub mod transport;

pub use transport::{ReachArgs, Target, Transport};
