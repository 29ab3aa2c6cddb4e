//! Shell completion that knows the data: `COMPLETE=bash aimem` prints a registration script,
//! and the shell then asks aimem itself for the candidates of each word (clap_complete's
//! dynamic completion). Backup folders come from the backup root, collection names from the
//! backup on the line or from the server.
//!
//! A completion runs inside the user's shell at every TAB: it never prints an error, never
//! waits long for a server, and every candidate reaches the shell in the form it inserts as
//! exactly that one word, or not at all ([`shells`]).
//!
//! This module sits below the subcommands, whose arguments name its completers: it never
//! imports the command line (`cli`). The face hands it the whole command instead
//! ([`answer_if_asked`]), which it also uses to parse the line being completed.

pub(crate) mod shells;

use std::ffi::OsStr;
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

use camino::Utf8PathBuf;
use clap::{ArgMatches, Command, FromArgMatches};
use clap_complete::engine::{CompletionCandidate, PathCompleter, ValueCompleter};
use clap_complete::{ArgValueCandidates, ArgValueCompleter, CompleteEnv};

use crate::manifest::Manifest;
use crate::manifest::layout::default_root;
use crate::qdrant::Timeouts;
use crate::repo::catalog::{self, resolve_backup};
use crate::settings::ConnectionArgs;

/// The environment variable that turns a run into a completion request (`COMPLETE=bash`).
pub const COMPLETE_ENV: &str = "COMPLETE";

/// The longest a completion waits for the server or the disk (a backup root on a network
/// mount that hangs): a TAB must never hang the shell.
const WAIT: Duration = Duration::from_secs(2);

/// The whole command line's definition, as [`answer_if_asked`] was given it.
static COMMAND: OnceLock<fn() -> Command> = OnceLock::new();

/// Answers a completion request (printing to stdout) and exits; returns at once for an
/// ordinary run. Must run before anything else writes to stdout or starts a thread.
/// `command` builds aimem's whole command line (`Cli::command`).
pub fn answer_if_asked(command: fn() -> Command) {
    let command = *COMMAND.get_or_init(|| command);
    CompleteEnv::with_factory(command)
        .var(COMPLETE_ENV)
        .shells(shells::SHELLS)
        .complete();
}

/// `<DIR>` of a backup: `latest` and the complete backups of the backup root, newest first.
pub fn backup_folder() -> ArgValueCompleter {
    ArgValueCompleter::new(backup_folders)
}

/// `--collection` of a command that reads a backup: the names in the backup on the line.
pub fn collection_in_backup() -> ArgValueCompleter {
    ArgValueCompleter::new(collections_in_backup)
}

/// `--collection` of `backup`: the collections on the server the line points at.
pub fn collection_on_server() -> ArgValueCompleter {
    ArgValueCompleter::new(collections_on_server)
}

/// `--keep-within`: examples of what the duration parser accepts.
pub fn keep_within_examples() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        [
            ("7d", "a week"),
            ("30d", "thirty days"),
            ("4w", "four weeks"),
            ("52w", "a year of weeks"),
            ("12h", "twelve hours"),
            ("1d12h", "a day and a half"),
        ]
        .into_iter()
        .map(|(value, help)| CompletionCandidate::new(value).help(Some(help.into())))
        .collect()
    })
}

fn backup_folders(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(typed) = current.to_str() else {
        return Vec::new();
    };
    let mut candidates = vec![
        CompletionCandidate::new("latest")
            .help(Some("the newest complete backup in the backup root".into())),
    ];
    let listing = within(|| catalog::scan(&default_root()).ok()).flatten();
    for listed in listing.unwrap_or_default() {
        if listed.state.is_complete() && crate::names::check(&listed.name).is_ok() {
            let help = listed.summary.as_ref().map(|m| {
                format!(
                    "{}, {} collection(s)",
                    listed.state.as_str(),
                    m.collections.len()
                )
            });
            candidates
                .push(CompletionCandidate::new(listed.path.as_str()).help(help.map(Into::into)));
        }
    }
    candidates.retain(|c| c.get_value().to_str().is_some_and(|v| v.starts_with(typed)));
    if !typed.is_empty() {
        // A folder elsewhere still completes as a path, as a shell user expects.
        for path in PathCompleter::dir().complete(current) {
            if !candidates.iter().any(|c| c.get_value() == path.get_value()) {
                candidates.push(path);
            }
        }
    }
    candidates
}

fn collections_in_backup(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(matches) = line_matches(current) else {
        return Vec::new();
    };
    let Some((_, sub)) = matches.subcommand() else {
        return Vec::new();
    };
    // `restore` calls its folder `dir`, `diff-schema` calls it `backup`.
    let named = ["dir", "backup"]
        .into_iter()
        .find_map(|id| sub.try_get_one::<Utf8PathBuf>(id).ok().flatten().cloned());
    let named = named.unwrap_or_else(|| "latest".into());
    let manifest = within(move || {
        let folder = resolve_backup(&named, &default_root()).ok()?;
        Manifest::read(&folder).ok()
    });
    match manifest.flatten() {
        Some(manifest) => candidates_from(manifest.collections.into_keys(), current),
        None => Vec::new(),
    }
}

fn collections_on_server(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(matches) = line_matches(current) else {
        return Vec::new();
    };
    let Some((_, sub)) = matches.subcommand() else {
        return Vec::new();
    };
    // The line's --url/--host/--port, else the environment, else the defaults: as a run.
    let Ok(connection) = ConnectionArgs::from_arg_matches(sub) else {
        return Vec::new();
    };
    let Ok(endpoint) = connection.endpoint() else {
        return Vec::new();
    };
    let timeouts = Timeouts {
        connect: WAIT,
        request: WAIT,
        ..Timeouts::default()
    };
    let client = ConnectionArgs::client(&endpoint, timeouts);
    // Name resolution has no timeout of its own: hence the bound around the whole call.
    match within(move || client.list_collections()) {
        Some(Ok(names)) => candidates_from(names.into_iter(), current),
        _ => Vec::new(),
    }
}

/// `work`'s result, or None if it takes longer than [`WAIT`]: it runs on a thread that is
/// abandoned then (the process exits right after completing).
fn within<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(work());
    });
    receiver.recv_timeout(WAIT).ok()
}

/// The names that start with what was typed and are safe to offer, sorted.
fn candidates_from(
    names: impl Iterator<Item = String>,
    current: &OsStr,
) -> Vec<CompletionCandidate> {
    let Some(typed) = current.to_str() else {
        return Vec::new();
    };
    let mut names: Vec<String> = names
        .filter(|n| n.starts_with(typed) && crate::names::check(n).is_ok())
        .collect();
    names.sort();
    names.dedup();
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// The command line being completed, parsed as far as it goes. The word under the cursor is
/// half a value: it is replaced by a stand-in that parses, so the words around it keep their
/// meaning.
fn line_matches(current: &OsStr) -> Option<ArgMatches> {
    let line = shells::line()?;
    let mut words: Vec<String> = line
        .words
        .iter()
        .map(|w| w.to_str().map(str::to_string))
        .collect::<Option<_>>()?;
    let current = current.to_str()?;
    let index = Some(line.index)
        .filter(|&i| i < words.len())
        .or_else(|| words.len().checked_sub(1))?;
    // The value may be the end of its word (`--collection=gi`).
    if let Some(stem) = words[index].strip_suffix(current) {
        words[index] = format!("{stem}{STAND_IN}");
    }
    let command = COMMAND.get()?;
    command()
        .ignore_errors(true)
        .try_get_matches_from(words)
        .ok()
}

/// A value that parses wherever a name or a path is expected.
const STAND_IN: &str = "x";
