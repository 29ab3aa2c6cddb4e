//! One module per subcommand, plus shared helpers.

mod backup;
mod generated;
mod restore;
mod support;
