//! Docker tests (being written).
