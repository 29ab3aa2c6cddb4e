//! aimem: back up, verify and restore Qdrant collections.
//!
//! Layers, from the wire up: [`qdrant`] (HTTP), [`manifest`] and [`fingerprint`] (the backup
//! folder and schemas, offline), [`cmd`] (the work of each subcommand), and this file plus
//! [`cli`] and [`ui`] (the face: arguments, colour, rendering, exit codes).

pub mod cli;
pub mod cmd;
pub mod complete;
pub mod exit;
pub mod failure;
pub mod fingerprint;
#[cfg(test)]
mod fuzz;
pub mod manifest;
pub mod manual;
pub mod names;
pub mod qdrant;
pub mod settings;
pub mod shell;
pub mod signals;
pub mod terminal;
pub mod ui;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use crate::cli::{Cli, ColorChoice, Command};
use crate::exit::Exit;
use crate::failure::Failure;
use crate::signals::StopFlag;
use crate::ui::Ui;

/// The whole program: parse, run, render the outcome, map it to an exit code.
pub fn main() -> ExitCode {
    // `COMPLETE=bash aimem …`: the shell asking for candidates; answered before anything else.
    complete::answer_if_asked();
    // Read the local UTC offset before any thread exists (the `time` crate refuses later).
    localtime::init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return match error.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                    if !error.use_stderr() =>
                {
                    Exit::Success.into()
                }
                // The guide's table says invalid arguments exit 1 (clap's own default is 2).
                _ => Exit::InvalidArguments.into(),
            };
        }
    };
    let colors = resolve_color(cli.global.color);
    console::set_colors_enabled(colors);
    console::set_colors_enabled_stderr(colors);
    terminal::set_colors(colors);
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(terminal::handler_options(colors).build())
    }));
    let ui = Ui::new(cli.global.quiet, !cli.global.no_progress);
    let stop = StopFlag::install();
    let outcome = match &cli.command {
        Command::Backup(args) => cmd::backup::run(args, &ui, &stop),
        Command::Restore(args) => cmd::restore::run(args, &ui, &stop),
        Command::Verify(args) => cmd::verify::run(args, &ui),
        Command::List(args) => cmd::list::run(args, &ui),
        Command::DiffSchema(args) => cmd::diff_schema::run(args, &ui),
        Command::Prune(args) => cmd::prune::run(args, &ui),
        Command::Completions(args) => cmd::completions::run(args),
    };
    match outcome {
        Ok(()) => Exit::Success.into(),
        Err(Failure { exit, report }) => {
            eprintln!("{:?}", terminal::Escaped::new(report.as_ref()));
            exit.into()
        }
    }
}

/// `--color`, then a non-empty NO_COLOR, then whether stderr is a terminal.
fn resolve_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stderr().is_terminal()
        }
    }
}

/// The local time, read safely.
pub mod localtime {
    use std::sync::OnceLock;

    use time::{OffsetDateTime, UtcOffset};

    static OFFSET: OnceLock<UtcOffset> = OnceLock::new();

    /// Reads the offset once, while the process is still single-threaded.
    pub fn init() {
        OFFSET.get_or_init(|| UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC));
    }

    /// Now, in local time (UTC if the offset could not be read).
    pub fn now() -> OffsetDateTime {
        let offset = *OFFSET.get_or_init(|| UtcOffset::UTC);
        OffsetDateTime::now_utc().to_offset(offset)
    }
}
