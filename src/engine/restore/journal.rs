//! The journal of a restore: every object it makes on the server (its pre-restore snapshots,
//! and the uploaded copies Qdrant keeps under aimem's file names), recorded (synced) before it
//! is asked for, so a restore killed with `kill -9` still tells the next aimem run against that
//! server what to delete. It uses the backup journal's format and lock
//! ([`crate::engine::backup::journal`]) and lives in the user's state folder
//! (`restores` in [`crate::workspace::runs::state_dir`], or its fallback: see
//! [`crate::workspace::restore_journal_dir`]), not beside the backup: the next run
//! finds it wherever the restored backup lives (a USB disk, another root). Journals of older
//! aimem versions, in pre-restore folders beside backups, are still found there.
//!
//! Only server objects are ever deleted from a dead restore's record: its pre-restore folder
//! may hold the only copy of the data the restore was about to overwrite, so it is kept and
//! said where it is.

use std::sync::{Arc, Mutex};

use camino::{Utf8Path, Utf8PathBuf};

use super::rollback::Undo;
use crate::engine::backup::journal::{self, Journal, Leftover, Record};
use crate::engine::backup::site::Site;
use crate::engine::peers::Topology;
use crate::qdrant::Client;
use crate::ui::Ui;
use crate::workspace::runs::Owner;

/// Dead restores: journals nobody holds, in the state folder (and its fallback), and (from
/// older aimem versions) in pre-restore folders in `root`. Each is locked by this process
/// until dropped, so two runs never clear the same one.
pub(crate) fn dead_restores(root: &Utf8Path, ui: &Ui) -> Vec<Leftover> {
    let mut found: Vec<Leftover> = crate::workspace::restore_journals(root, ui)
        .into_iter()
        .filter_map(|place| {
            let mut dead = journal::read_dead_journal(&place.journal, &place.folder)?;
            if place.prerestore.is_some() {
                dead.folder = place.prerestore;
            }
            Some(dead)
        })
        .collect();
    found.sort_by(|a, b| a.journal.cmp(&b.journal));
    found
}

/// Deletes what dead restores left on the server `client` talks to (`server` as journals name
/// it, and its identity) and drops their journals; their pre-restore folders are kept. A
/// record of another server is reported and kept, as is one that leaves a snapshot aimem
/// cannot prove to be the dead restore's.
pub(crate) fn clear_dead_restores(
    root: &Utf8Path,
    client: &Client,
    server: (&str, &str),
    topology: &Topology,
    ui: &Ui,
) {
    for leftover in dead_restores(root, ui) {
        clear(&leftover, client, server, topology, ui);
    }
}

/// One sentence on a dead restore: its journal, whose, and where its local copies are. A
/// journal outlives its run when the run was killed, and also when it ended (exit 5, a
/// failed deletion) while the server still held something it made: the words fit both.
pub fn describe(leftover: &Leftover) -> String {
    let who = leftover
        .owner
        .as_ref()
        .map_or_else(|| "an unknown run".to_string(), Owner::describe);
    let folder = match &leftover.folder {
        Some(folder) if folder.exists() => {
            format!("; its pre-restore copies are in {}", kept_folder(folder))
        }
        _ => String::new(),
    };
    format!(
        "an earlier restore ({who}) that did not finish deleting what it made on the server \
         (killed, or it ended first), journal {}{folder}",
        leftover.journal
    )
}

fn clear(leftover: &Leftover, client: &Client, server: (&str, &str), topology: &Topology, ui: &Ui) {
    let described = describe(leftover);
    if let Some(damage) = leftover.damage(&leftover.journal) {
        ui.warn(&format!("{described}: {damage}"));
        return;
    }
    if leftover.has_server_snapshots() {
        if !leftover.is_of(server.0, server.1) {
            ui.warn(&format!(
                "{described}: it may have left snapshots on {}; run `aimem restore` or `aimem backup` \
                 against that server to delete them{}",
                leftover.server.as_deref().map_or_else(|| "another server".to_string(), crate::qdrant::describe_stored),
                leftover.why_other_server(server.0, server.1)
            ));
            return;
        }
        ui.note(&format!("{described}: deleting what it left on the server"));
        let cleanup = journal::delete_server_snapshots(leftover, client, topology, ui);
        // The journals folder is shared by every restore: name this one's journal.
        let subject = format!(
            "restore journal {}",
            leftover.journal.file_name().unwrap_or_default()
        );
        let again = format!(
            "kept {} so the next restore or backup tries again",
            leftover.journal
        );
        if !cleanup.report(leftover, &subject, &again, ui) {
            return;
        }
    }
    if let Err(e) = std::fs::remove_file(&leftover.journal) {
        ui.warn(&format!("could not remove {}: {e}", leftover.journal));
    }
    // An empty pre-restore folder holds no one's data; anything in it is kept.
    if let Some(folder) = &leftover.folder
        && std::fs::remove_dir(folder).is_err()
        && folder.exists()
    {
        ui.warn(&format!(
            "{}: what an earlier restore saved before overwriting is kept there (aimem never deletes it)",
            kept_folder(folder)
        ));
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
    /// Starts this run's journal in the state folder, before the restore changes anything.
    pub fn create(server: &str, identity: &str, ui: &Ui) -> std::io::Result<SharedJournal> {
        let dir = crate::workspace::restore_journal_dir(ui)?;
        let name = format!(
            "restore-{}-{}-{:x}{}",
            crate::engine::backup::undo::snapshot_time(time::OffsetDateTime::now_utc()),
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos()),
            crate::workspace::RESTORE_JOURNAL_SUFFIX
        );
        Ok(Arc::new(Mutex::new(RestoreJournal {
            journal: Journal::create_at(&dir.join(name), server, identity)?,
            open: 0,
        })))
    }
}

/// Records (synced) that a file named `file` is about to be uploaded into `collection` (on
/// cluster peer `peer`, id and URL as shown, when given): the server keeps such an upload.
pub fn record_uploading(
    shared: Option<&SharedJournal>,
    collection: &str,
    file: &str,
    peer: Option<(u64, &str)>,
) -> std::io::Result<()> {
    let Some(shared) = shared else {
        return Ok(());
    };
    let mut open = locked(shared);
    open.journal.record(&Record::Uploading {
        collection: collection.to_string(),
        file: file.to_string(),
        peer_id: peer.map(|(id, _)| id),
        peer_url: peer.map(|(_, url)| url.to_string()),
    })?;
    open.open += 1;
    Ok(())
}

/// Records that an uploaded copy is gone from the server (best effort: a missing record only
/// costs the next run a 404).
pub fn record_upload_gone(
    shared: Option<&SharedJournal>,
    collection: &str,
    file: &str,
    peer_id: Option<u64>,
) {
    let Some(shared) = shared else {
        return;
    };
    let mut open = locked(shared);
    let record = Record::UploadGone {
        collection: collection.to_string(),
        file: file.to_string(),
        peer_id,
    };
    if open.journal.record(&record).is_ok() {
        open.open = open.open.saturating_sub(1);
    }
}

/// Records (synced) that temporary collection `collection` is about to be created: a killed
/// run leaves the next one its name to delete.
pub fn record_temp_collection(
    shared: Option<&SharedJournal>,
    collection: &str,
) -> std::io::Result<()> {
    let Some(shared) = shared else {
        return Ok(());
    };
    let mut open = locked(shared);
    open.journal.record(&Record::TempCollection {
        collection: collection.to_string(),
    })?;
    open.open += 1;
    Ok(())
}

/// Records that temporary collection `collection` is deleted (best effort).
pub fn record_temp_collection_gone(shared: Option<&SharedJournal>, collection: &str) {
    let Some(shared) = shared else {
        return;
    };
    let mut open = locked(shared);
    let record = Record::TempCollectionGone {
        collection: collection.to_string(),
    };
    if open.journal.record(&record).is_ok() {
        open.open = open.open.saturating_sub(1);
    }
}

fn locked(shared: &SharedJournal) -> std::sync::MutexGuard<'_, RestoreJournal> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Undo {
    /// Records the pre-restore folder this run made (where its local copies are).
    pub(super) fn journal_folder(&mut self, folder: &Utf8Path) -> std::io::Result<()> {
        let Some(shared) = &self.journal else {
            return Ok(());
        };
        locked(shared).journal.record(&Record::Folder {
            path: kept_folder(folder).to_string(),
        })
    }

    /// Notes an upload into `collection` under `file` for the rollback, and journals it
    /// first (synced): the server keeps that copy until it is deleted.
    pub(super) fn record_upload(&mut self, collection: &str, file: &str) -> std::io::Result<()> {
        record_uploading(self.journal.as_ref(), collection, file, None)?;
        self.uploads
            .push((collection.to_string(), file.to_string()));
        Ok(())
    }

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
            site: Site::Collection(collection.to_string()),
            peer_url: None,
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
                site: Site::Collection(collection.to_string()),
                peer_url: None,
                snapshot: snapshot.to_string(),
            },
            None => Record::Refused {
                site: Site::Collection(collection.to_string()),
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
            site: Site::Collection(collection.to_string()),
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
        open.journal.record(&Record::Creating {
            site: Site::Shard {
                collection: collection.to_string(),
                shard,
                peer: peer_id,
            },
            peer_url: Some(peer_url.to_string()),
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
            Some(snapshot) => Record::Created {
                site: Site::Shard {
                    collection: collection.to_string(),
                    shard,
                    peer: peer_id,
                },
                peer_url: Some(peer_url.to_string()),
                snapshot: snapshot.to_string(),
            },
            None => Record::Refused {
                site: Site::Shard {
                    collection: collection.to_string(),
                    shard,
                    peer: peer_id,
                },
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
        let record = Record::Deleted {
            site: Site::Shard {
                collection: collection.to_string(),
                shard,
                peer: peer_id,
            },
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
