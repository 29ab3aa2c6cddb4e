//! One module per subcommand, plus shared helpers.

mod backup;
mod restore;
mod support;
