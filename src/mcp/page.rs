//! Cursor paging, the one way every list tool pages: `limit` rows from the
//! offset in `cursor`, whose format (`o:<offset>`) is issued and read only
//! here. It is part of the tool contract (a caller learns one paging
//! syntax), so it lives beside [`ToolError`] where `host/` may use it too.
//!
//! A cursor is opaque to callers and carries no authority: it is only an
//! offset into a list the caller may already see, recomputed on each call,
//! so a forged cursor can at worst skip rows.

use super::contract::ToolError;

/// The prefix of every cursor this server issues.
const PREFIX: &str = "o:";

/// One page of a list: at most `limit` rows from `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
}

/// One page cut from a list, with what the caller needs to ask for the next.
#[derive(Debug, PartialEq, Eq)]
pub struct Paged<T> {
    pub rows: Vec<T>,
    /// Rows in the whole (filtered) list.
    pub total: usize,
    /// More rows follow this page.
    pub truncated: bool,
    /// Pass this as `cursor` for the next page (`None` on the last one).
    pub next_cursor: Option<String>,
}

impl Page {
    /// The page asked for by a tool's `limit` (default `default`, range
    /// `1..=max`) and `cursor`. Errors name the bad value and the fix.
    pub fn parse(limit: Option<usize>, cursor: Option<&str>, default: usize, max: usize) -> Result<Page, ToolError> {
        Ok(Page { limit: limit_in(limit, default, max)?, offset: offset(cursor)? })
    }

    /// This page of `rows` (already filtered and sorted).
    pub fn cut<T>(self, rows: Vec<T>) -> Paged<T> {
        let total = rows.len();
        let rows: Vec<T> = rows.into_iter().skip(self.offset).take(self.limit).collect();
        // Saturating: an offset from a cursor is at most usize::MAX, and
        // past the end the page is empty, so the sum cannot matter.
        let end = self.offset.saturating_add(rows.len());
        let truncated = end < total;
        Paged { rows, total, truncated, next_cursor: next_cursor(end, total) }
    }
}

/// The offset in a cursor this server issued (`None`: the first page).
pub fn offset(cursor: Option<&str>) -> Result<usize, ToolError> {
    match cursor {
        None => Ok(0),
        Some(c) => c.strip_prefix(PREFIX).and_then(|n| n.parse::<usize>().ok()).ok_or_else(|| {
            ToolError::invalid_input("cursor is not one this server issued", "pass next_cursor unchanged")
        }),
    }
}

/// A page size in `1..=max` (default `default`).
pub fn limit_in(asked: Option<usize>, default: usize, max: usize) -> Result<usize, ToolError> {
    let l = asked.unwrap_or(default);
    if l == 0 || l > max {
        return Err(ToolError::invalid_input(format!("limit {l} out of range"), format!("use 1-{max}")));
    }
    Ok(l)
}

/// The cursor for the rows after `end` of `total`, if any remain.
pub fn next_cursor(end: usize, total: usize) -> Option<String> {
    (end < total).then(|| format!("{PREFIX}{end}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_at_their_edges() {
        assert_eq!(offset(None).ok(), Some(0));
        assert_eq!(offset(Some("o:0")).ok(), Some(0));
        assert_eq!(offset(Some("o:7")).ok(), Some(7));
        assert_eq!(offset(Some(&format!("o:{}", usize::MAX))).ok(), Some(usize::MAX));
        for bad in ["", "7", "o:", "o:-1", "o:x", "o: 1", "O:1", "o:99999999999999999999999"] {
            let e = offset(Some(bad)).err().unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert_eq!(e.category, crate::mcp::ErrorCategory::InvalidInput);
        }
    }

    #[test]
    fn limits_at_their_edges() {
        assert_eq!(limit_in(None, 100, 1000).ok(), Some(100));
        assert!(limit_in(Some(0), 100, 1000).is_err());
        assert_eq!(limit_in(Some(1), 100, 1000).ok(), Some(1));
        assert_eq!(limit_in(Some(1000), 100, 1000).ok(), Some(1000));
        let e = limit_in(Some(1001), 100, 1000).expect_err("over the max");
        assert!(e.message.contains("1001") && e.hint == "use 1-1000", "{e:?}");
    }

    #[test]
    fn pages_walk_the_list_once() {
        let rows: Vec<u32> = (0..5).collect();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10 {
            let p = Page::parse(Some(2), cursor.as_deref(), 50, 500).expect("page").cut(rows.clone());
            assert_eq!(p.total, 5);
            seen.extend(p.rows);
            assert_eq!(p.truncated, p.next_cursor.is_some());
            cursor = p.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(seen, rows);
        // Past the end: an empty last page, no overflow on a huge offset.
        let p = Page { limit: 3, offset: usize::MAX }.cut(rows.clone());
        assert_eq!((p.rows.len(), p.truncated, p.next_cursor), (0, false, None));
        let p = Page { limit: 5, offset: 0 }.cut(rows);
        assert_eq!((p.rows.len(), p.truncated), (5, false));
    }
}
