//! The Docker list tools' page bounds; the paging itself (cursor format,
//! cutting a page) is the shared contract in [`crate::mcp::page`].

use super::limits::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::mcp::contract::ToolError;
pub use crate::mcp::page::{Page, Paged};

/// The page asked for by a Docker list tool's `limit` and `cursor`.
pub fn page_bounds(limit: Option<usize>, cursor: &Option<String>) -> Result<Page, ToolError> {
    Page::parse(limit, cursor.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
}
