//! `aimem diff_schema`.
