//! `aimem backup`. Its arguments and steps still live with the engine's backup machinery
//! ([`crate::engine::backup`]); this is the subcommand's entry.

pub use crate::engine::backup::{BackupArgs, run};
