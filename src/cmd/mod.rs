//! One module per subcommand: its arguments, the order of its steps, and its report. The work
//! itself is the engine's ([`crate::engine`]); where backups live is the repository's
//! ([`crate::repo`]).

pub mod backup;
pub mod completions;
pub mod diff_schema;
pub mod list;
pub mod prune;
pub mod restore;
pub mod verify;
