//! One module per subcommand, plus shared helpers.

mod backup;
mod diff_schema;
mod list;
mod prune;
mod support;
mod verify;
