//! Cursor paging of the list tools: the cursor is `o:<offset>`, opaque to
//! callers, issued and read only here.

use super::limits::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::mcp::contract::ToolError;

/// One page of a list: at most `limit` rows from `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
}

/// The page asked for by a list tool's `limit` and `cursor`.
pub fn page_bounds(limit: Option<usize>, cursor: &Option<String>) -> Result<Page, ToolError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ToolError::invalid_input(format!("limit {limit} out of range"), format!("use 1-{MAX_LIMIT}")));
    }
    let offset = match cursor {
        None => 0,
        Some(c) => c.strip_prefix("o:").and_then(|n| n.parse::<usize>().ok()).ok_or_else(|| {
            ToolError::invalid_input("cursor is not one this server issued", "pass next_cursor unchanged")
        })?,
    };
    Ok(Page { limit, offset })
}

/// One page of `rows`: (page, total, truncated, next_cursor).
pub(super) fn paginate<T>(rows: Vec<T>, page: Page) -> (Vec<T>, usize, bool, Option<String>) {
    let Page { limit, offset } = page;
    let total = rows.len();
    let page: Vec<T> = rows.into_iter().skip(offset).take(limit).collect();
    let end = offset + page.len();
    let truncated = end < total;
    (page, total, truncated, truncated.then(|| format!("o:{end}")))
}
