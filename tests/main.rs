//! Integration tests: the real `aimem` binary against the Qdrant test double.

// Helpers outside `#[test]` functions panic too: in a test, that is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
