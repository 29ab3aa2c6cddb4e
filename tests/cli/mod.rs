//! One module per subcommand, plus shared helpers.

mod backup;
mod concurrency;
mod diff_schema;
mod generated;
mod legacy;
mod list;
mod names;
mod output_safety;
mod prune;
mod reading;
mod restore;
mod servers;
mod support;
mod verify;
