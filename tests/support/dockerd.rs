//! A test-owned dockerd (being written).
