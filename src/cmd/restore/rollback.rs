//! The undo log of a restore, and the rollback that replays it.
//!
//! Every change is recorded *before* it is made, so a failure at any point (or a signal) leaves
//! enough here to put things back: collections this run created are deleted, collections that
//! existed are recovered from the pre-restore snapshot taken before they were touched and then
//! checked against what they were, and config files get their old content back.

use camino::Utf8PathBuf;

use super::check::{self, Against, Counted, Failed};
use super::config::{self, Previous};
use crate::fingerprint::Fingerprint;
use crate::qdrant::{Cancelled, Client};
use crate::ui::Ui;

/// A pre-existing collection, saved before it was overwritten.
#[derive(Debug)]
pub struct Saved {
    pub collection: String,
    /// The local copy (survives the server losing its snapshot folder).
    pub local: Utf8PathBuf,
    pub sha256: String,
    /// The snapshot's name on the server, until deleted.
    pub server_snapshot: Option<String>,
    pub fingerprint: Fingerprint,
    /// Points counted just before and just after the snapshot: it holds between the two
    /// (equal unless something wrote to the collection meanwhile).
    pub points: u64,
    pub points_max: u64,
    /// An upload into it was started and not refused: it must be recovered on rollback.
    pub touched: bool,
}

/// An upload whose outcome is unknown (no answer, a timeout, a lost connection, a gateway
/// error): Qdrant may still be recovering the collection from it (api.md §0.3).
#[derive(Debug, Clone)]
pub struct Unclear {
    pub collection: String,
    /// The uploaded file's name on the server.
    pub upload: String,
    /// Its size: Qdrant hashes it before recovering, which takes time in proportion.
    pub size: u64,
}

/// What this run changed, in order.
#[derive(Debug, Default)]
pub struct Undo {
    /// Collections created by this run.
    pub created: Vec<String>,
    pub saved: Vec<Saved>,
    /// Uploaded copies the server keeps in its snapshot folder: (collection, file name).
    pub uploads: Vec<(String, String)>,
    pub config: Vec<Previous>,
    /// `.aimem-prerestore-<ts>-<random>`, created by this run (exclusively: nothing in it is
    /// anyone else's).
    pub folder: Option<Utf8PathBuf>,
    /// Uploads that may still be recovering: waited for before anything of them is rolled back.
    pub unclear: Vec<Unclear>,
    /// Collections whose recovery could not be confirmed finished: left alone by the rollback.
    pub unsettled: Vec<Unclear>,
    /// Existing cluster collections, saved shard by shard before being overwritten.
    pub cluster_saved: Vec<super::cluster_overwrite::SavedCluster>,
    /// The journal of the pre-restore server snapshots and uploaded copies, in the user's
    /// state folder (see `journal.rs`), shared by the parallel workers' logs.
    pub journal: Option<super::journal::SharedJournal>,
}

/// A rollback step that failed.
#[derive(Debug)]
pub struct Unrestored {
    pub what: String,
    pub why: String,
}

/// What a rollback did: the one account the terminal report, the `--json` document and the
/// recovery help are all made from.
#[derive(Debug, Default)]
pub struct RollbackOutcome {
    /// One line per thing put back.
    pub done: Vec<String>,
    /// Collections put back as they were (or deleted, when this run had created them).
    pub rolled_back: Vec<String>,
    /// What could not be put back, and why.
    pub failed: Vec<Unrestored>,
}

impl RollbackOutcome {
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

impl Undo {
    /// Puts everything back. Returns one line per thing rolled back, or what could not be.
    /// Pre-restore snapshots are removed only if everything succeeded.
    ///
    /// `settle` is called first for each upload whose outcome is unknown, and must return once
    /// Qdrant is no longer recovering that collection; if it cannot tell, the collection is
    /// left alone (rolling it back now would race the recovery) and reported as not restored.
    pub fn rollback(
        &mut self,
        client: &Client,
        ui: &Ui,
        stamp: &str,
        settle: &mut dyn FnMut(&Unclear) -> Result<(), String>,
    ) -> RollbackOutcome {
        let mut done = Vec::new();
        let mut rolled_back = Vec::new();
        let mut failed = Vec::new();
        for unclear in std::mem::take(&mut self.unclear) {
            if let Err(why) = settle(&unclear) {
                failed.push(Unrestored {
                    what: format!(
                        "`{}`: Qdrant may still be recovering it from the backup, so it was not rolled back",
                        unclear.collection
                    ),
                    why,
                });
                self.unsettled.push(unclear);
            }
        }
        let unsettled: Vec<String> = self
            .unsettled
            .iter()
            .map(|u| u.collection.clone())
            .collect();
        let left_alone = |c: &String| unsettled.contains(c);
        // Its uploaded copy may be what Qdrant is recovering from: not deleted either.
        let kept_uploads: Vec<(String, String)> = self
            .uploads
            .iter()
            .filter(|(c, _)| left_alone(c))
            .cloned()
            .collect();
        self.uploads.retain(|(c, _)| !left_alone(c));
        for previous in self.config.drain(..).rev() {
            match config::undo(&previous) {
                Ok(()) => done.push(format!("config file {} put back", previous.shown)),
                Err(e) => failed.push(Unrestored {
                    what: format!("config file {}", previous.shown),
                    why: e.to_string(),
                }),
            }
        }
        // Uploaded copies first: once a collection is deleted its snapshot folder is out of reach.
        self.delete_uploads(client, ui);
        self.uploads = kept_uploads;
        let created = std::mem::take(&mut self.created);
        let (kept_created, created): (Vec<String>, Vec<String>) =
            created.into_iter().partition(|c| left_alone(c));
        self.created = kept_created;
        for name in created.into_iter().rev() {
            match client.delete_collection(&name) {
                Ok(_) => {
                    done.push(format!("`{name}` (created by this restore) deleted"));
                    rolled_back.push(name.clone());
                }
                Err(e) => failed.push(Unrestored {
                    what: format!("deleting `{name}`, which this restore created"),
                    why: e.to_string(),
                }),
            }
        }
        for saved in self
            .saved
            .iter()
            .rev()
            .filter(|s| s.touched && !left_alone(&s.collection))
        {
            ui.step(&format!(
                "Rolling back {} from its pre-restore snapshot...",
                saved.collection
            ));
            match recover(client, saved, stamp, self.journal.as_ref()) {
                Ok(()) => {
                    ui.ok(&format!("{} points, schema as before", saved.points));
                    done.push(format!(
                        "`{}` recovered from its pre-restore snapshot ({} points, schema as before)",
                        saved.collection, saved.points
                    ));
                    rolled_back.push(saved.collection.clone());
                }
                Err(why) => failed.push(Unrestored {
                    what: format!("recovering `{}`", saved.collection),
                    why,
                }),
            }
        }
        for saved in self
            .cluster_saved
            .iter()
            .rev()
            .filter(|s| s.touched && !left_alone(&s.collection))
        {
            ui.step(&format!(
                "Rolling back {} shard by shard from its pre-restore copy...",
                saved.collection
            ));
            match super::cluster_overwrite::recover(saved, stamp, ui) {
                Ok(()) => {
                    ui.ok(&format!("{} points, schema as before", saved.points));
                    done.push(format!(
                        "`{}` recovered shard by shard from its pre-restore copy ({} points, schema as before)",
                        saved.collection, saved.points
                    ));
                    rolled_back.push(saved.collection.clone());
                }
                Err(why) => failed.push(Unrestored {
                    what: format!("recovering `{}`", saved.collection),
                    why,
                }),
            }
        }
        if failed.is_empty() {
            self.discard_saved(client, ui);
        } else {
            // The copies of what is back as it was are not needed; the others are kept.
            self.discard_saved_of(client, ui, &rolled_back);
        }
        RollbackOutcome {
            done,
            rolled_back,
            failed,
        }
    }

    /// The pre-restore copies (local and on the server) of `collections` only.
    fn discard_saved_of(&mut self, client: &Client, ui: &Ui, collections: &[String]) {
        let mut rest = Undo::default();
        let (discard, keep): (Vec<Saved>, Vec<Saved>) = std::mem::take(&mut self.saved)
            .into_iter()
            .partition(|s| collections.contains(&s.collection));
        let (discard_cluster, keep_cluster) = std::mem::take(&mut self.cluster_saved)
            .into_iter()
            .partition(|s| collections.contains(&s.collection));
        rest.saved = discard;
        rest.cluster_saved = discard_cluster;
        rest.journal = self.journal.clone();
        rest.discard_copies(client, ui);
        self.saved = keep;
        self.cluster_saved = keep_cluster;
    }

    /// After success (or a complete rollback): the pre-restore snapshots are not needed.
    pub fn discard_saved(&mut self, client: &Client, ui: &Ui) {
        self.discard_copies(client, ui);
        self.finish_journal();
        self.remove_folder();
    }

    /// Deletes the pre-restore copies this log holds: on the server, then on disk.
    fn discard_copies(&mut self, client: &Client, ui: &Ui) {
        for saved in std::mem::take(&mut self.saved) {
            if let Some(name) = &saved.server_snapshot {
                match client.delete_snapshot(&saved.collection, name) {
                    Ok(()) => self.journal_deleted(&saved.collection, name),
                    Err(e) if e.is_not_found() => {
                        self.journal_deleted(&saved.collection, name);
                    }
                    Err(e) => ui.warn(&format!(
                        "could not delete the pre-restore snapshot {name} of `{}` from the server: {e}",
                        saved.collection
                    )),
                }
            }
            if let Err(e) = std::fs::remove_file(&saved.local) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    ui.warn(&format!("could not delete {}: {e}", saved.local));
                }
            }
        }
        for saved in self.cluster_saved.drain(..) {
            for shard in saved.shards {
                if let Err(e) = std::fs::remove_file(&shard.local) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        ui.warn(&format!("could not delete {}: {e}", shard.local));
                    }
                }
            }
        }
    }

    /// Removes the pre-restore folder when nothing but leftovers of this run is in it.
    fn remove_folder(&mut self) {
        if let Some(folder) = self.folder.take() {
            // A download cut by Ctrl-C leaves its hidden partial file (the same temporary
            // name `backup` uses); then the folder goes, only if empty: anything else in it is
            // not ours to delete.
            if let Ok(entries) = folder.read_dir_utf8() {
                for entry in entries.flatten() {
                    if entry.file_name().starts_with(".partial-") {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&folder);
        }
    }

    /// Deletes the uploaded copies the server would otherwise keep forever.
    pub fn delete_uploads(&mut self, client: &Client, ui: &Ui) {
        for (collection, file) in std::mem::take(&mut self.uploads) {
            match client.delete_snapshot(&collection, &file) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    ui.warn(&format!(
                        "could not delete the uploaded copy {file} of `{collection}` from the server: {e}"
                    ));
                    continue;
                }
            }
            super::journal::record_upload_gone(self.journal.as_ref(), &collection, &file, None);
        }
    }

    /// True when this run changed nothing yet: no collection created, none uploaded into (or
    /// maybe uploaded into), no config file replaced.
    pub fn changed_nothing(&self) -> bool {
        self.created.is_empty()
            && self.config.is_empty()
            && self.unclear.is_empty()
            && self.unsettled.is_empty()
            && !self.saved.iter().any(|s| s.touched)
            && !self.cluster_saved.iter().any(|s| s.touched)
    }

    /// The pre-restore snapshots kept after a failed rollback: (collection, local path).
    pub fn kept(&self) -> Vec<(&str, &Utf8PathBuf)> {
        let shards = self.cluster_saved.iter().flat_map(|s| {
            s.shards
                .iter()
                .map(move |shard| (s.collection.as_str(), &shard.local))
        });
        self.saved
            .iter()
            .map(|s| (s.collection.as_str(), &s.local))
            .chain(shards)
            .collect()
    }
}

/// Uploads the pre-restore snapshot back and checks the collection is as it was.
fn recover(
    client: &Client,
    saved: &Saved,
    stamp: &str,
    journal: Option<&super::journal::SharedJournal>,
) -> Result<(), String> {
    let file_name = format!(
        "aimem-rollback-{}-{stamp}-{}.snapshot",
        saved.collection,
        std::process::id()
    );
    // The server keeps the uploaded copy: recorded first, like every object aimem makes there.
    super::journal::record_uploading(journal, &saved.collection, &file_name, None)
        .map_err(|e| format!("cannot write the restore's journal: {e}"))?;
    // A rollback is not interruptible by a first Ctrl-C: stopping half way would lose data.
    let mut never = |_| Ok::<(), Cancelled>(());
    let uploaded = client.upload_snapshot(
        &saved.collection,
        saved.local.as_std_path(),
        &file_name,
        &saved.sha256,
        &mut never,
    );
    match client.delete_snapshot(&saved.collection, &file_name) {
        Ok(()) => super::journal::record_upload_gone(journal, &saved.collection, &file_name, None),
        Err(e) if e.is_not_found() => {
            super::journal::record_upload_gone(journal, &saved.collection, &file_name, None);
        }
        Err(_) => {}
    }
    uploaded.map_err(|e| format!("uploading {} failed: {e}", saved.local))?;
    schema_as_before(client, &saved.collection, &saved.fingerprint)?;
    let points = client
        .count_exact(&saved.collection)
        .map_err(|e| format!("counting its points failed: {e}"))?;
    check::points(points, (saved.points, saved.points_max), Against::Before)
        .map_err(|e| format!("after the rollback {e}"))
}

/// A rolled-back collection's schema must be the one it had before the restore.
pub(super) fn schema_as_before(
    client: &Client,
    collection: &str,
    before: &Fingerprint,
) -> Result<(), String> {
    check::schema(
        client,
        collection,
        Some(before),
        Against::Before,
        Counted::Every,
    )
    .map_err(|failed| match failed {
        Failed::Read(e) => format!("checking it afterwards failed: {e}"),
        Failed::Differs(detail) => detail,
    })
}
