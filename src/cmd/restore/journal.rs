//! The journal of a restore's pre-restore server snapshots: the backup journal's format and
//! lock ([`crate::cmd::backup::journal`]), kept in the run's pre-restore folder, so a restore
//! killed with `kill -9` between asking for a pre-restore snapshot and deleting it still tells
//! the next `aimem restore` or `aimem backup` what to delete on the server.
//!
//! Only server snapshots are ever deleted from a dead restore's record: its pre-restore folder
//! may hold the only copy of the data the restore was about to overwrite, so it is kept and
//! said where it is.

use std::sync::{Arc, Mutex};

use camino::{Utf8Path, Utf8PathBuf};

use super::PRERESTORE_PREFIX;
use super::rollback::Undo;
use crate::cmd::backup::journal::{self, JOURNAL_FILE, Journal, Leftover, Record};
use crate::cmd::peers::Topology;
use crate::cmd::runs::Owner;
use crate::qdrant::Client;
use crate::ui::Ui;

/// The pre-restore folders in `root` whose journal nobody holds: their restore is dead. Each is
/// locked by this process until dropped, so two runs never clear the same one.
pub(crate) fn dead_restores(root: &Utf8Path) -> Vec<Leftover> {
    let Ok(entries) = root.read_dir_utf8() else {
        return Vec::new();
    };
    let mut found: Vec<Leftover> = entries
        .flatten()
        .filter(|entry| entry.file_name().starts_with(PRERESTORE_PREFIX))
        .filter(|entry| {
            entry
                .path()
                .symlink_metadata()
                .is_ok_and(|meta| meta.is_dir())
        })
        .filter_map(|entry| journal::read_dead(entry.path()))
        .collect();
    found.sort_by(|a, b| a.staging.cmp(&b.staging));
    found
}

/// Deletes what dead restores left on the server `client` talks to (`server`, as journals name
/// it) and drops their journals; their pre-restore folders are kept. A record of another server
/// is reported and kept.
pub(crate) fn clear_dead_restores(
    root: &Utf8Path,
    client: &Client,
    server: &str,
    topology: &Topology,
    ui: &Ui,
) {
    for leftover in dead_restores(root) {
        clear(&leftover, client, server, topology, ui);
    }
}

fn clear(leftover: &Leftover, client: &Client, server: &str, topology: &Topology, ui: &Ui) {
    let folder = &leftover.staging;
    let who = leftover
        .owner
        .as_ref()
        .map_or_else(|| "an unknown run".to_string(), Owner::describe);
    if leftover.has_server_snapshots() {
        if leftover.server.as_deref() != Some(server) {
            ui.warn(&format!(
                "{folder}: left by a killed restore ({who}), which may have left pre-restore \
                 snapshots on {}; run `aimem restore` or `aimem backup` against that server to delete them",
                leftover.server.as_deref().map_or("another server", clean_server)
            ));
            return;
        }
        ui.note(&format!(
            "{folder}: left by a killed restore ({who}); deleting its pre-restore snapshots from the server"
        ));
        if !journal::delete_server_snapshots(leftover, client, topology, ui) {
            ui.warn(&format!(
                "kept the journal in {folder} so the next restore or backup tries again"
            ));
            return;
        }
    }
    if let Err(e) = std::fs::remove_file(folder.join(JOURNAL_FILE)) {
        ui.warn(&format!(
            "could not remove {}: {e}",
            folder.join(JOURNAL_FILE)
        ));
    }
    // An empty folder holds no one's data; anything in it is kept.
    if std::fs::remove_dir(folder).is_err() && folder.exists() {
        ui.warn(&format!(
            "{}: what a killed restore ({who}) saved before overwriting is kept there (aimem never deletes it)",
            kept_folder(folder)
        ));
    }
}

/// Text read from a journal, without control characters.
fn clean_server(text: &str) -> &str {
    if text.chars().any(char::is_control) {
        "another server"
    } else {
        text
    }
}

fn kept_folder(folder: &Utf8Path) -> Utf8PathBuf {
    std::path::absolute(folder)
        .ok()
        .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
        .unwrap_or_else(|| folder.to_owned())
}

/// The open, locked journal of this restore, and how many of the server snapshots it asked
/// for are not known to be gone (asked for and neither refused nor deleted).
#[derive(Debug)]
pub struct RestoreJournal {
    journal: Journal,
    open: usize,
}

/// The run's journal, shared by the logs of parallel workers.
pub type SharedJournal = Arc<Mutex<RestoreJournal>>;

impl RestoreJournal {
    /// Starts the journal in this run's new pre-restore folder.
    pub fn create(folder: &Utf8Path, server: &str) -> std::io::Result<SharedJournal> {
        Ok(Arc::new(Mutex::new(RestoreJournal {
            journal: Journal::create(folder, server)?,
            open: 0,
        })))
    }
}

fn locked(shared: &SharedJournal) -> std::sync::MutexGuard<'_, RestoreJournal> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Undo {
    /// Records (synced) that a pre-restore snapshot of `collection` is about to be asked for:
    /// from here on a killed run leaves the next one enough to find it.
    pub(super) fn journal_creating(
        &mut self,
        collection: &str,
        asked_at: String,
        existing: Vec<String>,
    ) -> std::io::Result<()> {
        let Some(shared) = &self.journal else {
            return Ok(());
        };
        let mut open = locked(shared);
        open.journal.record(&Record::Creating {
            collection: collection.to_string(),
            asked_at,
            asked_before: journal::asked_before(),
            existing,
        })?;
        open.open += 1;
        Ok(())
    }

    /// Records the server's answer to the last creation asked for `collection`: its snapshot's
    /// name, or `None` when it refused (nothing was made).
    pub(super) fn journal_answered(&mut self, collection: &str, snapshot: Option<&str>) {
        let Some(shared) = &self.journal else {
            return;
        };
        let mut open = locked(shared);
        let record = match snapshot {
            Some(snapshot) => Record::Created {
                collection: collection.to_string(),
                snapshot: snapshot.to_string(),
            },
            None => Record::Refused {
                collection: collection.to_string(),
            },
        };
        // Best effort: a missing answer only makes the next run look for the snapshot by name.
        if open.journal.record(&record).is_ok() && snapshot.is_none() {
            open.open = open.open.saturating_sub(1);
        }
    }

    /// Records that a pre-restore snapshot is gone from the server.
    pub(super) fn journal_deleted(&mut self, collection: &str, snapshot: &str) {
        let Some(shared) = &self.journal else {
            return;
        };
        let mut open = locked(shared);
        let record = Record::Deleted {
            collection: collection.to_string(),
            snapshot: snapshot.to_string(),
        };
        // Best effort: a deletion missing from the journal only costs the next run a 404.
        if open.journal.record(&record).is_ok() {
            open.open = open.open.saturating_sub(1);
        }
    }

    /// Records (synced) that a pre-restore snapshot of `shard` is about to be asked of peer
    /// `peer` (at `peer_url`, as shown): from here on a killed run leaves the next one enough
    /// to find it on that peer.
    pub(super) fn journal_shard_creating(
        &mut self,
        collection: &str,
        shard: u32,
        peer: (u64, &str),
        asked_at: String,
        existing: Vec<String>,
    ) -> std::io::Result<()> {
        let Some(shared) = &self.journal else {
            return Ok(());
        };
        let mut open = locked(shared);
        let (peer_id, peer_url) = peer;
        open.journal.record(&Record::ShardCreating {
            collection: collection.to_string(),
            shard,
            peer_id,
            peer_url: peer_url.to_string(),
            asked_at,
            asked_before: journal::asked_before(),
            existing,
        })?;
        open.open += 1;
        Ok(())
    }

    /// Records a peer's answer to that creation: the shard snapshot's name, or `None` when it
    /// refused. Best effort, as for collection snapshots.
    pub(super) fn journal_shard_answered(
        &mut self,
        collection: &str,
        shard: u32,
        peer: (u64, &str),
        snapshot: Option<&str>,
    ) {
        let Some(shared) = &self.journal else {
            return;
        };
        let mut open = locked(shared);
        let (peer_id, peer_url) = peer;
        let record = match snapshot {
            Some(snapshot) => Record::ShardCreated {
                collection: collection.to_string(),
                shard,
                peer_id,
                peer_url: peer_url.to_string(),
                snapshot: snapshot.to_string(),
            },
            None => Record::ShardRefused {
                collection: collection.to_string(),
                shard,
                peer_id,
            },
        };
        if open.journal.record(&record).is_ok() && snapshot.is_none() {
            open.open = open.open.saturating_sub(1);
        }
    }

    /// Records that a pre-restore shard snapshot is gone from its peer.
    pub(super) fn journal_shard_deleted(
        &mut self,
        collection: &str,
        shard: u32,
        peer_id: u64,
        snapshot: &str,
    ) {
        let Some(shared) = &self.journal else {
            return;
        };
        let mut open = locked(shared);
        let record = Record::ShardDeleted {
            collection: collection.to_string(),
            shard,
            peer_id,
            snapshot: snapshot.to_string(),
        };
        if open.journal.record(&record).is_ok() {
            open.open = open.open.saturating_sub(1);
        }
    }

    /// The run ends: its journal goes when nothing it names may be left on the server; else it
    /// stays (unlocked once this process ends) for the next run to clear.
    pub(super) fn finish_journal(&mut self) {
        // Workers' copies are gone by now; should one remain, the journal stays (harmless:
        // the next run finds nothing left on the server and drops it).
        let Some(Ok(open)) = self.journal.take().map(Arc::try_unwrap) else {
            return;
        };
        let open = open
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if open.open == 0 {
            let _ = open.journal.finish();
        }
    }
}
