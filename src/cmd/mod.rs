//! One module per subcommand: the order of steps, cleanup, and which exit status a failure means.

pub mod backup;
pub mod completions;
pub mod restore;
pub mod worker;
