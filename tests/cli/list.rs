//! `aimem list`.
