//! Integration tests: the real `aimem` binary against the Qdrant test double.

mod cli;
