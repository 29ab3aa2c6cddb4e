//! One module per subcommand: the order of steps, cleanup, and which exit status a failure means.

pub mod backup;
pub mod completions;
pub mod diff_schema;
pub mod layout;
pub mod list;
pub mod output;
pub mod peers;
pub mod prune;
pub mod restore;
pub mod verify;
pub mod worker;

/// Moved to [`crate::workspace::runs`] (local state, not a command's); kept under this name
/// for the callers not yet moved.
pub use crate::workspace::runs;
