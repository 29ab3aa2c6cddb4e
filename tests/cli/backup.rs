//! `aimem backup` against the Qdrant double.
