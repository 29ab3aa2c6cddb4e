//! Two backups at the same time (into one root or not): each gets its own folder, and they
//! never ask the server for a snapshot of the same collection in the same second.
//!
//! Qdrant names a snapshot `{collection}-{peer id}-{UTC second}.snapshot` (a shard's
//! `{collection}-shard-{id}-…`, on the peer that makes it) and has no limit on concurrent
//! creations (docs/qdrant.md, "Snapshot names"): two creations in one second get one name, the
//! later overwrites the earlier, and whichever run finishes first deletes the other's. So every
//! creation aimem asks for (a backup's, a restore's pre-restore copy; of a collection, or of one
//! shard on one peer) takes the lock of its (server, collection or shard) and keeps it until a
//! second has passed since the server answered (the name was chosen before the answer, so the
//! next creation of that collection lands in a later second). Other collections and downloads
//! are not held up. The lock is an `flock` on one file per name the server goes by
//! ([`LockKeys`]), all taken in one order, in this user's private lock folder
//! ([`crate::workspace::snapshot_turn_locks`]).

use std::fs::File;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::site::Site;
use crate::engine::peers::LockKeys;
use crate::exit::Exit;
use crate::signals::StopFlag;
use crate::ui::Ui;
use crate::workspace::{self, runs};

/// How long the lock is kept after the server names a snapshot: its names have one-second
/// resolution.
const NAME_RESOLUTION: Duration = Duration::from_millis(1100);

/// This run's turn to create a snapshot; ends after [`Turn::release_after_answer`] (or at
/// once when dropped).
#[derive(Debug)]
pub struct Turn {
    /// Each lock file's name and open file; none without a usable lock folder.
    held: Vec<(String, File)>,
}

/// The locks this run still holds after its latest creations, by lock file name, and until
/// when it must (a retake of that collection takes them over instead of waiting for itself; a
/// creation of another collection needs no wait at all). One per name: with `--jobs`,
/// creations of several collections finish within the same second.
static STILL_HELD: Mutex<Vec<(String, File, Instant)>> = Mutex::new(Vec::new());

/// Waits for the snapshot locks of `of` on the server `keys` name (saying so once, and only
/// when another run holds one), or fails with the signal's status. Without a usable lock
/// folder the creation is not serialised (the lock folder's problem is not the backup's).
pub fn take_turn(keys: &LockKeys, of: Site<&str>, stop: &StopFlag, ui: &Ui) -> Result<Turn, Exit> {
    let names = of.lock_names(keys);
    let Ok(dir) = workspace::snapshot_turn_locks() else {
        return Ok(Turn { held: Vec::new() });
    };
    let mut said = false;
    let mut held = Vec::with_capacity(names.len());
    // Taken over from STILL_HELD, with the instant each may go.
    let mut own = Vec::new();
    // In the sorted order of the names (see `LockKeys::lock_names`).
    for name in names {
        let still_ours = {
            let mut still = STILL_HELD.lock().unwrap_or_else(PoisonError::into_inner);
            still
                .iter()
                .position(|(k, _, _)| *k == name)
                .map(|at| still.swap_remove(at))
        };
        if let Some(entry) = still_ours {
            own.push(entry);
            continue;
        }
        // A file that cannot be opened serialises nothing; the others still do.
        let Ok(file) = runs::open_lock_file(&dir.join(&name)) else {
            continue;
        };
        let waited = runs::lock_waiting(&file, stop, || {
            if !std::mem::replace(&mut said, true) {
                ui.note(&format!(
                    "another aimem run is creating a snapshot of {of} on this server; waiting for its turn"
                ));
            }
        });
        if let Err(exit) = waited {
            // Those taken over go back until their second is over: our last snapshot's name
            // must stay ours.
            STILL_HELD
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(own);
            return Err(exit);
        }
        held.push((name, file));
    }
    // Still ours: only the rest of the second since our last snapshot is waited out.
    if let Some(until) = own.iter().map(|(_, _, until)| *until).max() {
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }
    held.extend(own.into_iter().map(|(name, file, _)| (name, file)));
    Ok(Turn { held })
}

impl Turn {
    /// The server answered: the locks go a second later, on a thread, so this run goes on
    /// (unless its next creation takes them over first).
    pub fn release_after_answer(self) {
        if self.held.is_empty() {
            return;
        }
        let until = Instant::now() + NAME_RESOLUTION;
        let names: Vec<String> = self.held.iter().map(|(name, _)| name.clone()).collect();
        STILL_HELD
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(
                self.held
                    .into_iter()
                    .map(|(name, file)| (name, file, until)),
            );
        std::thread::spawn(move || {
            std::thread::sleep(NAME_RESOLUTION);
            let mut still = STILL_HELD.lock().unwrap_or_else(PoisonError::into_inner);
            // Only this release's own locks: a later creation may have taken them over.
            still.retain(|(k, _, u)| !(names.contains(k) && *u == until));
        });
    }
}
