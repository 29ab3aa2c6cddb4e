//! A failed command: the diagnostic to show and the exit status it means.

use miette::{Diagnostic, Report};

use crate::exit::Exit;

/// Why a command stopped early. `main` renders `report` once and exits with `exit`.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub report: Report,
}

impl Failure {
    pub fn new(exit: Exit, report: Report) -> Failure {
        Failure { exit, report }
    }

    /// A plain message with a hint.
    pub fn msg(exit: Exit, message: impl Into<String>, help: impl Into<String>) -> Failure {
        Failure::new(
            exit,
            Report::new(Message {
                message: message.into(),
                help: Some(help.into()),
            }),
        )
    }
}

/// The result of running a subcommand.
pub type Outcome<T = ()> = Result<T, Failure>;

/// A simple diagnostic: a sentence and what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Message {
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic for Message {
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
}

/// An error that knows which exit status it means. A command's error type implements it, so
/// the status is decided once, beside the variants, and a call site only says what went wrong
/// (`.map_err(DiffSchemaError::Live)?`), never which number that is.
pub trait ExitStatus: Diagnostic + Send + Sync + 'static {
    fn exit_status(&self) -> Exit;
}

impl<E: ExitStatus> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure::new(error.exit_status(), Report::new(error))
    }
}
