//! `aimem restore`. Its arguments and steps still live with the engine's restore machinery
//! ([`crate::engine::restore`]); this is the subcommand's entry.

pub use crate::engine::restore::{RestoreArgs, run};
