//! Local state that never moves to a repository: what this machine keeps for its own runs,
//! whatever and wherever the backup root is ([`crate::repo`]).
//!
//! The one home of "where is the local place for X of backup root R":
//!
//! - locks, their owners, the lock folder and the state folder: [`runs`];
//! - a backup run's journal: in its staging folder in the root ([`backup_journal`],
//!   [`backup_journals`]), so its `flock` sits beside what it describes; leftover snapshots of
//!   a finished backup are handed on in a staging folder of their own ([`journal_folder`]);
//! - a restore's journal: `$XDG_STATE_HOME/aimem/restores` (or the fallback in the lock
//!   folder), wherever the restored backup lives ([`restore_journal_dir`],
//!   [`restore_journals`]); older aimem versions left theirs in pre-restore folders in the
//!   root, still read;
//! - pre-restore copies: beside the restored backup, unless other users can change that
//!   folder, then in the state folder ([`prerestore_home`]);
//! - partial downloads: beside the file they become ([`partial_download`]);
//! - snapshot turns: lock files in the lock folder ([`snapshot_turn_locks`]).

pub mod runs;

use std::io;

use camino::{Utf8Path, Utf8PathBuf};
use tempfile::NamedTempFile;

use crate::manifest::layout;
use crate::names::SafeName;
use crate::ui::Ui;

/// A backup run's journal, inside its staging folder.
pub const JOURNAL_FILE: &str = ".aimem-journal";

/// Pre-restore folders (of the copies a restore takes before it overwrites) start so.
pub const PRERESTORE_PREFIX: &str = ".aimem-prerestore-";

/// The state folder's subfolder for restore journals.
const RESTORES: &str = "restores";

/// A restore journal's name ends so (only such files in [`restore_journal_dir`] are read).
pub const RESTORE_JOURNAL_SUFFIX: &str = ".journal";

/// A journal that may be a dead run's, and what it is reported under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalPlace {
    /// The journal file.
    pub journal: Utf8PathBuf,
    /// The folder it belongs to: a backup's staging folder, or the folder holding a restore
    /// journal.
    pub folder: Utf8PathBuf,
    /// The pre-restore folder that holds it (older aimem versions' restore journals).
    pub prerestore: Option<Utf8PathBuf>,
}

/// The journal of the backup being written in the staging folder `staging`.
pub fn backup_journal(staging: &Utf8Path) -> Utf8PathBuf {
    staging.join(JOURNAL_FILE)
}

/// The journals of backup runs in the root `root` that may be dead: one per staging folder
/// (links are not followed). A root that cannot be read has none.
pub fn backup_journals(root: &Utf8Path) -> Vec<JournalPlace> {
    let Ok(entries) = root.read_dir_utf8() else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| {
            layout::is_staging(entry.file_name()) && entry.file_type().is_ok_and(|t| t.is_dir())
        })
        .map(|entry| JournalPlace {
            journal: backup_journal(entry.path()),
            folder: entry.path().to_owned(),
            prerestore: None,
        })
        .collect()
}

/// The state folder's subfolder for the journals of backups kept outside a local folder.
const REMOTE_BACKUPS: &str = "backups";

/// Where the journals of backups into `root` live: the root itself for a local folder (each
/// journal in its backup's staging folder); for a root in object storage, a folder of this
/// user's state folder named after the root (a digest of its URL), made if missing, which
/// holds a journal-only staging folder per run, read as a local root's are. `missing` says
/// whether a reading run (`list`, `prune --dry-run`) may create it.
pub fn journal_root(root: &Utf8Path, missing: runs::Missing, ui: &Ui) -> io::Result<Utf8PathBuf> {
    if !crate::s3::S3Location::is_s3(root.as_str()) {
        return Ok(root.to_owned());
    }
    let state = runs::state_dir(missing, ui)
        .and_then(|dir| runs::state_subdir(&dir, REMOTE_BACKUPS, missing, ui))
        .map_err(|e| io::Error::other(e.to_string()))?;
    let digest = crate::manifest::checksums::hash_reader(root.as_str().as_bytes())?.0;
    let dir = state.join(&digest[..16]);
    if missing == runs::Missing::Create && !dir.is_dir() {
        layout::create_private_dir(&dir)?;
    }
    Ok(dir)
}

/// A new folder in the root `root` to hand a finished backup's journal on in: a staging
/// folder of its own (named after the backup, `final_name`), which the next backup into
/// `root` takes for a dead run's.
pub fn journal_folder(root: &Utf8Path, final_name: &str) -> io::Result<Utf8PathBuf> {
    let name = SafeName::new(final_name)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    crate::repo::local::create_staging_folder(root, &name)
}

/// The folder for this restore's journal: `restores` in this user's state folder, made if
/// missing.
///
/// Without a usable state folder (none named, or refused: see [`runs::state_dir`]) the
/// journal goes to the fallback, with a warning that says where. Safest that way: the journal
/// is what lets the next run delete what a killed restore leaves on the server, so one in a
/// folder that may not outlive a reboot is better than none, and refusing the restore would
/// leave the user without one because of a misplaced folder. The fallback is this user's
/// private lock folder, so nobody else can read or plant a record there, and the runs after
/// look there too ([`restore_journals`]). (The pre-restore copies, which may become the only
/// copy of what the restore overwrites, never go to the fallback: see [`prerestore_home`].)
pub fn restore_journal_dir(ui: &Ui) -> io::Result<Utf8PathBuf> {
    let create = runs::Missing::Create;
    let state =
        runs::state_dir(create, ui).and_then(|dir| runs::state_subdir(&dir, RESTORES, create, ui));
    match state {
        Ok(dir) => Ok(dir),
        Err(refused) => {
            let dir = runs::fallback_state_dir(create, ui)
                .and_then(|dir| runs::state_subdir(&dir, RESTORES, create, ui))
                .map_err(|e| io::Error::other(format!("{refused}; and {e}")))?;
            ui.warn(&format!(
                "{refused}; this restore's journal goes to {dir} instead, which may not outlive a reboot"
            ));
            Ok(dir)
        }
    }
}

/// The folders that may hold restore journals, those that exist: `restores` in the state
/// folder, and in the fallback, where a run put its journal while the state folder could not
/// be used. Nothing is created: an absent folder holds nothing to read.
fn restore_journal_dirs(ui: &Ui) -> Vec<Utf8PathBuf> {
    let skip = runs::Missing::Skip;
    let state =
        runs::state_dir(skip, ui).and_then(|dir| runs::state_subdir(&dir, RESTORES, skip, ui));
    let fallback = runs::fallback_state_dir(skip, ui)
        .and_then(|dir| runs::state_subdir(&dir, RESTORES, skip, ui));
    [state, fallback]
        .into_iter()
        .filter_map(|found| match found {
            Ok(dir) => Some(dir),
            Err(runs::StateError::Unset | runs::StateError::Absent(_)) => None,
            Err(refused) => {
                ui.warn(&format!(
                    "{refused}; killed restores recorded there are not looked for"
                ));
                None
            }
        })
        .collect()
}

/// Restore journals that may be dead runs': those in the state folder (and its fallback), and
/// (from older aimem versions) those in pre-restore folders in the root `root` (links not
/// followed).
pub fn restore_journals(root: &Utf8Path, ui: &Ui) -> Vec<JournalPlace> {
    let mut found = Vec::new();
    for dir in restore_journal_dirs(ui) {
        if let Ok(entries) = dir.read_dir_utf8() {
            found.extend(
                entries
                    .flatten()
                    .filter(|entry| entry.file_name().ends_with(RESTORE_JOURNAL_SUFFIX))
                    .map(|entry| JournalPlace {
                        journal: entry.path().to_owned(),
                        folder: dir.clone(),
                        prerestore: None,
                    }),
            );
        }
    }
    if let Ok(entries) = root.read_dir_utf8() {
        found.extend(
            entries
                .flatten()
                .filter(|entry| entry.file_name().starts_with(PRERESTORE_PREFIX))
                .filter(|entry| {
                    entry
                        .path()
                        .symlink_metadata()
                        .is_ok_and(|meta| meta.is_dir())
                })
                .map(|entry| JournalPlace {
                    journal: backup_journal(entry.path()),
                    folder: entry.path().to_owned(),
                    prerestore: Some(entry.path().to_owned()),
                }),
        );
    }
    found
}

/// The folder to make a restore's pre-restore folder in, for the backup folder `backup`:
/// beside the backup (the same disk the user chose for backups; absolute, so the recovery
/// instructions work from anywhere), unless someone else controls that folder: then this
/// user's own state folder, said with a note. Never the fallback a journal may use
/// ([`runs::fallback_state_dir`]): the copy may become the only one of what the restore
/// overwrites, and that folder is often in memory and gone at the next reboot. Without a
/// state folder, the reason there is none (the restore stops then, before any change).
pub fn prerestore_home(backup: &Utf8Path, ui: &Ui) -> Result<Utf8PathBuf, String> {
    let absolute = std::path::absolute(backup)
        .ok()
        .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
        .unwrap_or_else(|| backup.to_owned());
    let beside = absolute.parent().unwrap_or(&absolute).to_owned();
    if layout::only_we_control(&beside) {
        return Ok(beside);
    }
    let own = runs::state_dir(runs::Missing::Create, ui).map_err(|e| {
        format!(
            "{beside} can be changed by other users, and aimem's own state folder cannot hold the copy instead: {e}"
        )
    })?;
    ui.note(&format!(
        "other users can change {beside}: the pre-restore snapshots go to {own} instead"
    ));
    Ok(own)
}

/// Where the pre-restore copies go when the restored backup is a temporary local copy (of a
/// backup in object storage): this user's state folder, never beside the copy, which goes
/// when the run ends (and may be on a tmpfs).
pub fn prerestore_home_for_copy(ui: &Ui) -> Result<Utf8PathBuf, String> {
    runs::state_dir(runs::Missing::Create, ui).map_err(|e| {
        format!("the backup is read from a temporary copy, and aimem's state folder cannot hold the pre-restore copies instead: {e}")
    })
}

/// A new, private partial file for a download that is to become a file in `dir`: hidden,
/// beside it (so it becomes it by a rename), removed when dropped unless persisted.
pub fn partial_download(dir: &Utf8Path) -> io::Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".partial-")
        .suffix(".snapshot")
        .tempfile_in(dir)
}

/// The folder of the lock files that give runs their turns to create snapshots: this user's
/// lock folder ([`runs::lock_dir`]).
pub fn snapshot_turn_locks() -> io::Result<Utf8PathBuf> {
    runs::lock_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_journal_lies_in_its_staging_folder_and_only_those_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let staging = journal_folder(root, "2026-02-03_143052").unwrap();
        std::fs::create_dir(root.join("2026-02-03_143052")).unwrap();
        std::fs::create_dir(root.join(".aimem-prerestore-x")).unwrap();
        std::os::unix::fs::symlink(&staging, root.join(".aimem-staging-link")).unwrap();
        assert!(journal_folder(root, "../x").is_err());
        assert_eq!(
            backup_journals(root),
            vec![JournalPlace {
                journal: staging.join(".aimem-journal"),
                folder: staging.clone(),
                prerestore: None,
            }]
        );
        assert_eq!(backup_journal(&staging), staging.join(JOURNAL_FILE));
    }

    #[test]
    fn a_partial_download_is_hidden_beside_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let folder = Utf8Path::from_path(dir.path()).unwrap();
        let partial = partial_download(folder).unwrap();
        let path = Utf8Path::from_path(partial.path()).unwrap();
        assert_eq!(path.parent(), Some(folder));
        let name = path.file_name().unwrap();
        assert!(name.starts_with(".partial-") && name.ends_with(".snapshot"));
    }
}
