//! What stops a restore, and the exit status each case means.

use miette::Diagnostic;
use thiserror::Error;

use crate::engine::restore::act;
use crate::engine::restore::lock::LockError;
use crate::engine::restore::plan::{PlanError, Refusal};
use crate::engine::restore::sources::SourceError;
use crate::exit::Exit;
use crate::failure::ExitStatus;
use crate::signals::StopFlag;

/// What went wrong, worded for the person who has to fix it. Each variant means one exit
/// status ([`ExitStatus`]); a source error is wrapped as it is, so its words and code show.
#[derive(Debug, Error, Diagnostic)]
pub(super) enum RestoreError {
    /// The manifest cannot be read (exit 2).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Manifest(crate::manifest::ManifestError),

    /// A backup file cannot be trusted or read (exit 2; a bad target name, 1).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Source(SourceError),

    /// The server did not answer the first requests (exit 3).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Connect(crate::qdrant::QdrantError),

    /// The cluster's peers could not be reached or checked (exit 3).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Peers(crate::engine::peers::PeerError),

    /// Another run holds the server or a collection (exit 2).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Locked(LockError),

    /// A collection's state could not be read: the server out of reach is exit 3, anything
    /// else 2.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(PlanError),

    /// The journal of what the restore makes could not be created, before any change (exit 2).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Journal(act::StepError),

    #[error("{0}")]
    #[diagnostic(
        code(aimem::restore::no_backup),
        help(
            "Give the backup folder's path, or set AI_MEMORY_BACKUP_DIR to the folder holding the backups."
        )
    )]
    NoBackup(String),

    #[error("no safe folder for the pre-restore snapshots: {reason}")]
    #[diagnostic(
        code(aimem::restore::prerestore_folder),
        help(
            "Move the backup into a folder only you can change, or set XDG_STATE_HOME to a private \
             folder. Nothing was changed."
        )
    )]
    PrerestoreFolder { reason: String },

    #[error("the backup has no collection named `{name}`")]
    #[diagnostic(
        code(aimem::restore::no_such_collection),
        help("The backup holds: {available}.")
    )]
    UnknownCollection { name: String, available: String },

    #[error("restore refused: {count} problem(s) found before anything was changed")]
    #[diagnostic(code(aimem::restore::refused))]
    Refused {
        count: usize,
        #[related]
        reasons: Vec<Refusal>,
    },

    #[error("--filter is not a Qdrant filter: {reason}")]
    #[diagnostic(
        code(aimem::restore::bad_filter),
        help(
            "Give a filter in Qdrant's JSON syntax, as one argument, e.g. \
             --filter '{{\"must\": [{{\"key\": \"group_id\", \"match\": {{\"value\": \"proj-1\"}}}}]}}'"
        )
    )]
    BadFilter { reason: String },

    #[error("--filter merges into one live collection: {reason}")]
    #[diagnostic(
        code(aimem::restore::merge_target),
        help(
            "Name the collection with --collection NAME (and --target-name for another live name); it must exist on the server."
        )
    )]
    MergeTarget { reason: String },

    #[error("the restore would overwrite {what}, and there is no terminal to confirm it")]
    #[diagnostic(
        code(aimem::restore::no_terminal),
        help("Run it in a terminal to be asked, or pass --force to overwrite without asking.")
    )]
    NoTerminal { what: String },

    #[error("restore cancelled; nothing was changed")]
    #[diagnostic(code(aimem::restore::cancelled))]
    Declined,

    #[error("stopped by a signal before anything was changed")]
    #[diagnostic(
        code(aimem::interrupted),
        help("Run the restore again when convenient.")
    )]
    Interrupted(Signal),

    #[error(
        "the restore failed and was rolled back; the server is as it was before:\n{rolled_back}"
    )]
    #[diagnostic(code(aimem::restore::rolled_back))]
    RolledBack {
        rolled_back: String,
        #[source]
        #[diagnostic_source]
        cause: act::StepError,
        /// The signal that stopped the restore, if one did: its status, not 4.
        signal: Option<Signal>,
    },

    #[error("the pre-restore snapshot could not be saved; nothing was changed")]
    #[diagnostic(code(aimem::restore::not_saved))]
    NotSaved {
        #[source]
        #[diagnostic_source]
        cause: act::StepError,
        /// The signal that stopped the restore, if one did: its status, not 2 or 3.
        signal: Option<Signal>,
    },

    #[error("the restore failed AND its rollback failed:\n{failures}")]
    #[diagnostic(code(aimem::restore::rollback_failed), help("{recovery}"))]
    RollbackFailed {
        failures: String,
        recovery: String,
        #[source]
        #[diagnostic_source]
        cause: act::StepError,
    },
}

/// The signal that stopped a restore (SIGINT 130, SIGTERM 143).
#[derive(Debug, Clone, Copy)]
pub(super) enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    /// The signal that arrived, if one did.
    pub(super) fn requested(stop: &StopFlag) -> Option<Signal> {
        stop.requested().map(|exit| match exit {
            Exit::Terminated => Signal::Terminate,
            _ => Signal::Interrupt,
        })
    }

    fn exit(self) -> Exit {
        match self {
            Signal::Interrupt => Exit::Interrupted,
            Signal::Terminate => Exit::Terminated,
        }
    }
}

impl ExitStatus for RestoreError {
    fn exit_status(&self) -> Exit {
        use RestoreError as E;
        match self {
            E::NoBackup(_)
            | E::UnknownCollection { .. }
            | E::NoTerminal { .. }
            | E::Declined
            | E::BadFilter { .. }
            | E::MergeTarget { .. } => Exit::InvalidArguments,
            E::Source(e) => e.exit_status(),
            E::Plan(e) => e.exit_status(),
            E::Connect(_) | E::Peers(_) => Exit::ConnectionFailed,
            E::Manifest(_)
            | E::Locked(_)
            | E::Journal(_)
            | E::PrerestoreFolder { .. }
            | E::Refused { .. } => Exit::Failed,
            E::Interrupted(signal) => signal.exit(),
            E::NotSaved {
                signal: Some(signal),
                ..
            }
            | E::RolledBack {
                signal: Some(signal),
                ..
            } => signal.exit(),
            // No room for the pre-restore copy is the documented disk-space status (3).
            E::NotSaved { cause, .. } if cause.is_out_of_space() => Exit::InsufficientSpace,
            E::NotSaved { .. } => Exit::Failed,
            E::RolledBack { .. } => Exit::ConfigOrRestoreFailed,
            E::RollbackFailed { .. } => Exit::RollbackFailed,
        }
    }
}
