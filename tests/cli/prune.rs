//! `aimem prune`.
