//! One restore at a time per server and collection.
//!
//! Two restores of one collection interleave their clear, upload and rollback steps: each one's
//! pre-restore snapshot and rollback then describe a state the other changed. So a restore
//! holds a lock per (server, target collection) from before it reads the collections' state
//! until it ends. The server offers nothing to lock with, so the locks are local files in the
//! user's private lock folder ([`runs::lock_dir`]), named by a digest: for each collection, one
//! per name the server goes by ([`LockKeys`]: its identity when it says who it is, its URL, its
//! socket addresses), all taken or none. So restores through `http://127.0.0.1:P` and
//! `http://localhost:P` share a lock even when the server does not tell its process id. They
//! are `flock`s: released when the holder dies, however it dies; the content names the
//! holder, so a second restore can say who runs, and a lock whose holder died is taken over
//! with a message.
//!
//! A second restore fails at once (exit 2, nothing changed) rather than waiting: one queued
//! behind another would overwrite what the first restored as soon as it finished, without
//! anybody watching. A dry run only warns.

use std::fs::File;

use camino::Utf8PathBuf;
use miette::Diagnostic;
use thiserror::Error;

use crate::engine::peers::LockKeys;
use crate::ui::Ui;
use crate::workspace::runs::{self, Owner};

/// Why the locks could not be taken.
#[derive(Debug, Error, Diagnostic)]
pub enum LockError {
    #[error("a restore of `{collection}` on {server} is already running ({holder})")]
    #[diagnostic(
        code(aimem::restore::busy),
        help(
            "Nothing was changed. Let that restore finish (or stop it) and run this one again; aimem does not queue restores, since a second one would overwrite what the first restored."
        )
    )]
    Busy {
        collection: String,
        server: String,
        holder: String,
    },

    #[error("cannot use the restore lock {path}: {source}")]
    #[diagnostic(
        code(aimem::restore::lock),
        help(
            "Nothing was changed. aimem keeps its locks in $XDG_RUNTIME_DIR/aimem, else in a private aimem-<uid> folder in the temporary folder; it must be a folder of yours that only you can open. Remove or fix it, or set XDG_RUNTIME_DIR."
        )
    )]
    Unusable {
        path: Utf8PathBuf,
        source: std::io::Error,
    },
}

/// A held lock: its holder record is cleared when the restore ends normally, so the next run
/// does not take a finished restore for a dead one.
#[derive(Debug)]
struct Held(File);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.set_len(0).ok();
    }
}

/// The restore locks of one run; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RestoreLocks {
    _held: Vec<Held>,
}

/// Takes the locks of each collection on `server`, or fails naming the restore that holds one.
/// With `dry_run`, a held lock is only a warning and nothing is taken.
/// `keys` name the server in locks; `server` (its URL without credentials) names it in messages.
pub fn take(
    keys: &LockKeys,
    server: &str,
    collections: &[&str],
    dry_run: bool,
    ui: &Ui,
) -> Result<RestoreLocks, LockError> {
    let dir = runs::lock_dir().map_err(|source| LockError::Unusable {
        path: Utf8PathBuf::from("the lock folder"),
        source,
    })?;
    // Every file of every collection in one sorted order, as every restore takes them.
    let mut wanted: Vec<(String, &str)> = collections
        .iter()
        .flat_map(|&collection| {
            keys.lock_names("restore", &[collection])
                .into_iter()
                .map(move |name| (name, collection))
        })
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut held = Vec::new();
    // A dead holder left its record in each of its files: one message per collection.
    let mut taken_over: Vec<&str> = Vec::new();
    let mut warned_busy: Vec<&str> = Vec::new();
    for (name, collection) in wanted {
        let path = dir.join(&name);
        let unusable = |source| LockError::Unusable {
            path: path.clone(),
            source,
        };
        let mut file = runs::open_lock_file(&path).map_err(unusable)?;
        if !runs::try_lock(&file).map_err(unusable)? {
            let holder = runs::read_owner(&mut file)
                .map_or_else(|| "holder unknown".to_string(), |o| o.describe());
            let busy = LockError::Busy {
                collection: collection.to_string(),
                server: server.to_string(),
                holder,
            };
            if dry_run {
                if !warned_busy.contains(&collection) {
                    warned_busy.push(collection);
                    ui.warn(&format!("{busy}; the real run would refuse to start"));
                }
                continue;
            }
            return Err(busy);
        }
        if dry_run {
            continue;
        }
        if let Some(dead) = runs::read_owner(&mut file).filter(|o| *o != Owner::me()) {
            if !taken_over.contains(&collection) {
                taken_over.push(collection);
                ui.warn(&format!(
                    "a restore of `{collection}` on {server} by {} ended without finishing (the process is gone); taking its lock over",
                    dead.describe()
                ));
            }
        }
        runs::write_owner(&mut file).map_err(unusable)?;
        held.push(Held(file));
    }
    Ok(RestoreLocks { _held: held })
}
