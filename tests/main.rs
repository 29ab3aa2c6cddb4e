//! Integration tests: the real `aimem` binary against the Qdrant test double.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
