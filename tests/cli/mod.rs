//! One module per subcommand, plus shared helpers.

mod backup;
mod diff_schema;
mod generated;
mod list;
mod prune;
mod reading;
mod restore;
mod support;
mod verify;
