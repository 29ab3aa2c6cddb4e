//! aimem: back up, verify and restore Qdrant collections.
//!
//! Layers, from the wire up: [`qdrant`] (HTTP), [`manifest`] and [`fingerprint`] (the backup
//! folder and schemas, offline), [`repo`] (where backups live) and [`workspace`] (what stays
//! on this machine), [`cmd`] (the work of each subcommand), and this file plus [`cli`] and
//! [`ui`] (the face: arguments, colour, rendering, exit codes).
//! Nothing calls up: a lower layer gets what it needs from a higher one passed in (see
//! `docs/architecture.md`, "Layers").

#[cfg(test)]
mod alloc_probe;
pub mod cli;
pub mod cmd;
pub mod complete;
pub mod crypt;
pub mod engine;
pub mod events;
pub mod exit;
pub mod failure;
pub mod fingerprint;
#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod hostile;
pub mod http;
pub mod json;
pub mod localtime;
pub mod logical;
pub mod manifest;
pub mod manual;
pub mod memory;
pub mod metrics;
pub mod names;
pub mod output;
pub mod qdrant;
pub mod repo;
pub mod s3;
pub mod scratch;
pub mod secrets;
pub mod settings;
pub mod shell;
pub mod signals;
pub mod terminal;
pub mod ui;
pub mod units;
pub mod verbose;
pub mod workspace;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use crate::cli::{Cli, ColorChoice, Command, ProgressMode};
use crate::exit::Exit;
use crate::failure::Failure;
use crate::output::ErrorDocument;
use crate::signals::StopFlag;
use crate::ui::Ui;

/// The whole program: parse, run, render the outcome, map it to an exit code.
pub fn main() -> ExitCode {
    // `COMPLETE=bash aimem …`: the shell asking for candidates; answered before anything else.
    complete::answer_if_asked(Cli::command);
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
                _ => {
                    if json_requested(std::env::args_os()) {
                        output::set_json_mode(true);
                        output::finish(Some(&usage_error_document(&error)));
                    }
                    Exit::InvalidArguments.into()
                }
            };
        }
    };
    output::set_json_mode(cli.command.json());
    let colors = resolve_color(cli.global.color);
    console::set_colors_enabled(colors);
    console::set_colors_enabled_stderr(colors);
    terminal::set_colors(colors);
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(terminal::handler_options(colors).build())
    }));
    verbose::init(cli.global.verbose);
    let ui = match cli.global.progress {
        ProgressMode::Json => Ui::events(),
        mode => Ui::new(
            cli.global.quiet,
            !cli.global.no_progress && mode != ProgressMode::None,
        ),
    };
    ui.event(
        "start",
        serde_json::json!({ "command": cli.command.name(), "version": env!("CARGO_PKG_VERSION") }),
    );
    let stop = StopFlag::install(output::finish_on_signal);
    let facts = metrics::Facts::default();
    let started = std::time::Instant::now();
    let outcome = match &cli.command {
        Command::Backup(args) => cmd::backup::run(args, &ui, &stop, &facts),
        Command::Restore(args) => cmd::restore::run(args, &ui, &stop, &facts),
        Command::Verify(args) => cmd::verify::run(args, &ui, &facts),
        Command::List(args) => cmd::list::run(args, &ui),
        Command::DiffSchema(args) => cmd::diff_schema::run(args, &ui),
        Command::Prune(args) => cmd::prune::run(args, &ui, &facts),
        Command::Completions(args) => cmd::completions::run(args, Cli::command()),
    };
    let exit = match outcome {
        Ok(()) => {
            output::finish(None);
            Exit::Success
        }
        Err(Failure { exit, report }) => {
            match ui.writes_events() {
                true => ui.event("error", error_event(exit, report.as_ref())),
                false => eprintln!("{:?}", terminal::Escaped::new(report.as_ref())),
            }
            output::finish(Some(&ErrorDocument::new(exit, report.as_ref())));
            exit
        }
    };
    // Data that did not reach stdout is a failure of its own, said once; a run that failed
    // anyway keeps its own status.
    let exit = match output::write_failure() {
        Some(why) => {
            let failure = OutputFailed {
                why: why.to_string(),
            };
            match ui.writes_events() {
                true => ui.event("error", error_event(Exit::OutputFailed, &failure)),
                false => eprintln!("{:?}", terminal::Escaped::new(&failure)),
            }
            match exit {
                Exit::Success => Exit::OutputFailed,
                exit => exit,
            }
        }
        None => exit,
    };
    let took = started.elapsed();
    if let Some((operation, args)) = cli.command.metrics() {
        metrics::publish(args, operation, &facts, took, exit, &ui);
    }
    if ui.writes_events() {
        let mut summary = facts.summary();
        if let Some(fields) = summary.as_object_mut() {
            fields.insert("command".into(), cli.command.name().into());
            fields.insert("ok".into(), (exit == Exit::Success).into());
            fields.insert("exit_code".into(), exit.code().into());
            fields.insert("seconds".into(), took.as_secs_f64().into());
        }
        ui.event("summary", summary);
    }
    exit.into()
}

/// The `error` event of `--progress json`: the message, what to do, and the exit status.
fn error_event(exit: Exit, report: &dyn miette::Diagnostic) -> serde_json::Value {
    serde_json::json!({
        "message": report.to_string(),
        "help": report.help().map(|help| help.to_string()),
        "exit_code": exit.code(),
    })
}

/// stdout could not take the run's output.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("could not write the output to stdout: {why}")]
#[diagnostic(
    code(aimem::output),
    help("Make room where stdout goes (a full disk behind `> file`?) and run the command again.")
)]
struct OutputFailed {
    why: String,
}

/// Whether `--json` is among the arguments (before a `--`): clap refused the command line, so
/// this is all that is known of what the caller wanted.
fn json_requested(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// clap's refusal as a `--json` error: what it says is the message (on one line), the usage
/// and the hint after it the help.
fn usage_error_document(error: &clap::Error) -> ErrorDocument {
    let text = error.render().to_string();
    let text = text.trim();
    let (said, rest) = text
        .split_once("\n\nUsage:")
        .map_or((text, ""), |(said, _)| (said, &text[said.len()..]));
    let message = said
        .trim()
        .trim_start_matches("error:")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let rest = rest.trim();
    ErrorDocument::plain(
        Exit::InvalidArguments,
        message,
        (!rest.is_empty()).then(|| rest.to_string()),
    )
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
