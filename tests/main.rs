//! Integration tests: the real `aimem` binary against the Qdrant test double.

// All of this crate is test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
