//! Two backups at the same time (into one root or not): each gets its own folder, and they
//! never ask the server for a snapshot of the same collection in the same second.
//!
//! Qdrant names a snapshot `{collection}-{peer id}-{UTC second}.snapshot` (a shard's
//! `{collection}-shard-{id}-…`, on the peer that makes it) and has no limit on concurrent
//! creations (api.md §snapshots): two creations in one second get one name, the later
//! overwrites the earlier, and whichever run finishes first deletes the other's. So every
//! creation aimem asks for (a backup's, a restore's pre-restore copy; of a collection, or of one
//! shard on one peer) takes the lock of its (server, collection or shard) and keeps it until a
//! second has passed since the server answered (the name was chosen before the answer, so the
//! next creation of that collection lands in a later second). Other collections and downloads
//! are not held up. The lock is an `flock` on one file per name the server goes by
//! ([`LockKeys`]), all taken in one order, in this user's private lock folder
//! ([`runs::lock_dir`]).

use std::fs::File;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};

use super::site::Site;
use crate::cmd::peers::LockKeys;
use crate::cmd::runs;
use crate::exit::Exit;
use crate::signals::StopFlag;
use crate::ui::Ui;

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
    let Ok(dir) = runs::lock_dir() else {
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

/// Renames the finished staging folder to `wanted`, or, when another run took that name
/// meanwhile, to the next free `-N` name. Never replaces anything. Returns the name used.
pub fn publish_no_replace(staging: &Utf8Path, wanted: &Utf8Path) -> std::io::Result<Utf8PathBuf> {
    let root = wanted.parent().unwrap_or(Utf8Path::new("."));
    let base = wanted.file_name().unwrap_or("backup");
    let mut candidate = wanted.to_owned();
    let mut n = 2;
    loop {
        match crate::manifest::layout::rename_new(staging, &candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if taken(&e) && n < 10_000 => {
                candidate = root.join(format!("{base}-{n}"));
                n += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The target exists: EEXIST from RENAME_NOREPLACE, ENOTEMPTY/EEXIST from a plain rename onto
/// a folder.
fn taken(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == rustix::io::Errno::EXIST.raw_os_error()
            || code == rustix::io::Errno::NOTEMPTY.raw_os_error()
    ) || e.kind() == std::io::ErrorKind::AlreadyExists
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_name_is_never_replaced_the_next_free_one_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        for name in ["a", "b"] {
            std::fs::create_dir(root.join(name)).unwrap();
            std::fs::write(root.join(name).join("f"), name).unwrap();
        }
        // Another run published `x` (even empty) and `x-2` meanwhile.
        std::fs::create_dir(root.join("x")).unwrap();
        std::fs::create_dir(root.join("x-2")).unwrap();
        let used = publish_no_replace(&root.join("a"), &root.join("x")).unwrap();
        assert_eq!(used, root.join("x-3"));
        assert_eq!(std::fs::read_to_string(root.join("x-3/f")).unwrap(), "a");
        let used = publish_no_replace(&root.join("b"), &root.join("y")).unwrap();
        assert_eq!(used, root.join("y"));
        assert!(root.join("x").read_dir().unwrap().next().is_none());
    }
}
