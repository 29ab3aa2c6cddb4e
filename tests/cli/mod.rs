//! One module per subcommand, plus shared helpers.

mod backup;
mod concurrency;
mod diff_schema;
mod generated;
mod list;
mod prune;
mod restore;
mod support;
mod verify;
