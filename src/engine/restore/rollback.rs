//! The undo log of a restore, and the rollback that replays it.
//!
//! Every change is recorded *before* it is made, so a failure at any point (or a signal) leaves
//! enough here to put things back: collections this run created are deleted, collections that
//! existed are recovered from the pre-restore copy taken before they were touched (a snapshot
//! of the collection, or on a cluster one of each shard, put back on every replica) and then
//! checked against what they were, and config files get their old content back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};

use super::check::{self, Against, Counted, Failed};
use super::config::{self, Previous};
use super::replica_uploads::{self, ShardUpload, UnclearShard, UploadError, Uploads};
use super::replicas::{self, Expected, Node, Placement, Settle};
use crate::fingerprint::Fingerprint;
use crate::manifest::cluster::ShardKey;
use crate::qdrant::{Cancelled, Client};
use crate::ui::Ui;

/// A pre-existing collection, saved before it was overwritten.
#[derive(Debug)]
pub struct Saved {
    pub collection: String,
    /// Its schema before the restore: the rollback checks it is that again.
    pub fingerprint: Fingerprint,
    /// Points counted just before and just after the copy was taken: it holds between the two
    /// (equal unless something wrote to the collection meanwhile).
    pub points: u64,
    pub points_max: u64,
    /// An upload into it was started and not refused: it must be recovered on rollback.
    pub touched: bool,
    /// The copy, by where it was taken and goes back.
    pub copies: Copies,
}

/// Where a saved collection's copy was taken, and so how it goes back.
#[derive(Debug)]
pub enum Copies {
    /// A snapshot of the whole collection (a single node).
    Collection {
        /// The local copy (survives the server losing its snapshot folder).
        local: Utf8PathBuf,
        sha256: String,
        /// The snapshot's name on the server, until deleted.
        server_snapshot: Option<String>,
    },
    /// One snapshot per shard, each put back on every peer that held it (a cluster).
    Shards(ShardCopies),
}

/// The shard by shard copy of a cluster collection.
#[derive(Clone)]
pub struct ShardCopies {
    /// The peers, as reached when it was saved.
    pub nodes: Vec<Node>,
    pub shards: Vec<SavedShard>,
    /// Its shard ids and keys.
    pub layout: BTreeMap<u32, Option<ShardKey>>,
    /// Each shard key's exact count, when it did not move while the shards were saved.
    pub key_points: Vec<(ShardKey, u64)>,
    /// How long the rollback waits for every replica to turn Active.
    pub settle_limit: Duration,
    /// Shard uploads whose outcome is unknown: waited for before the rollback touches it.
    pub unclear: Vec<UnclearShard>,
    /// A second Ctrl-C gives up waiting for them.
    pub stop: crate::signals::StopFlag,
}

impl std::fmt::Debug for ShardCopies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardCopies")
            .field("shards", &self.shards)
            .field("unclear", &self.unclear)
            .finish_non_exhaustive()
    }
}

/// One shard of an existing collection, saved before it was overwritten.
#[derive(Debug, Clone)]
pub struct SavedShard {
    pub shard_id: u32,
    pub local: Utf8PathBuf,
    pub sha256: String,
    /// The peers that held a replica of it when it was saved: where it goes back.
    pub holders: Vec<u64>,
}

impl ShardCopies {
    /// The REST address (as shown, credentials hidden) of each peer that held `shard`.
    pub fn holder_urls(&self, shard: &SavedShard) -> Vec<&str> {
        shard
            .holders
            .iter()
            .filter_map(|peer| self.nodes.iter().find(|n| n.peer_id == *peer))
            .map(|n| n.client.display_url())
            .collect()
    }
}

impl Saved {
    /// The local copies, in the pre-restore folder.
    pub fn files(&self) -> Vec<&Utf8PathBuf> {
        match &self.copies {
            Copies::Collection { local, .. } => vec![local],
            Copies::Shards(copies) => copies.shards.iter().map(|s| &s.local).collect(),
        }
    }

    /// How it goes back, for the messages: "from its pre-restore snapshot".
    fn how(&self) -> &'static str {
        match &self.copies {
            Copies::Collection { .. } => "from its pre-restore snapshot",
            Copies::Shards(_) => "shard by shard from its pre-restore copy",
        }
    }
}

/// An upload whose outcome is unknown (no answer, a timeout, a lost connection, a gateway
/// error): Qdrant may still be recovering the collection from it (docs/qdrant.md, "Uploads and
/// recovery").
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
    /// Existing collections, saved before being overwritten.
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
    /// The journal of the pre-restore server snapshots and uploaded copies, in the user's
    /// state folder (see `journal.rs`), shared by the parallel workers' logs.
    pub journal: Option<super::journal::SharedJournal>,
    /// A selective merge that began writing into a live collection: what puts it back.
    pub merged: Option<super::merge::MergeUndo>,
    /// Aliases this run created (a logical restore's).
    pub aliases: Vec<String>,
    /// Indexing thresholds this run changed on collections that existed (a logical restore's).
    pub thresholds: Vec<Threshold>,
}

/// The indexing threshold an existing collection had before this run set another: the
/// rollback sets it back once the collection's points are back (recovering a copy into the
/// existing collection, a snapshot of the whole collection or of its shards, keeps the
/// collection's settings as they are, so it would not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threshold {
    pub collection: String,
    pub previous: u64,
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
        let mut out = RollbackOutcome::default();
        self.settle_unclear(settle, &mut out);
        let unsettled: Vec<String> = self
            .unsettled
            .iter()
            .map(|u| u.collection.clone())
            .collect();
        // Its uploaded copy may be what Qdrant is recovering from: not deleted either.
        let kept_uploads: Vec<(String, String)> = self
            .uploads
            .iter()
            .filter(|(c, _)| unsettled.contains(c))
            .cloned()
            .collect();
        self.uploads.retain(|(c, _)| !unsettled.contains(c));
        self.put_back_config(&mut out);
        for alias in std::mem::take(&mut self.aliases) {
            match client.delete_alias(&alias) {
                Ok(()) => out.done.push(format!("alias `{alias}` deleted")),
                Err(e) => out.failed.push(Unrestored {
                    what: format!("deleting the alias `{alias}` it created"),
                    why: e.to_string(),
                }),
            }
        }
        if let Some(merged) = self.merged.take() {
            match merged.put_back(client) {
                Ok(()) => {
                    out.done.push(format!(
                        "`{}`: the merge undone (its overwritten points written back from {}, the added ones deleted)",
                        merged.collection, merged.saved
                    ));
                    out.rolled_back.push(merged.collection.clone());
                }
                Err(why) => out.failed.push(Unrestored {
                    what: format!(
                        "undoing the merge into `{}` (its overwritten points are saved in {})",
                        merged.collection, merged.saved
                    ),
                    why,
                }),
            }
        }
        // Uploaded copies first: once a collection is deleted its snapshot folder is out of reach.
        self.delete_uploads(client, ui);
        self.uploads = kept_uploads;
        self.delete_created(client, &unsettled, &mut out);
        self.recover_saved(client, ui, stamp, &unsettled, &mut out);
        // After the recoveries: the points are back first, whatever becomes of a setting.
        self.put_back_thresholds(client, &unsettled, &mut out);
        if out.failed.is_empty() {
            self.discard_saved(client, ui);
        } else {
            // The copies of what is back as it was are not needed; the others are kept.
            self.discard_saved_of(client, ui, &out.rolled_back);
        }
        out
    }

    /// Waits (`settle`) for each upload whose outcome is unknown; a collection Qdrant may
    /// still be recovering is moved to `unsettled`, and left alone.
    fn settle_unclear(
        &mut self,
        settle: &mut dyn FnMut(&Unclear) -> Result<(), String>,
        out: &mut RollbackOutcome,
    ) {
        for unclear in std::mem::take(&mut self.unclear) {
            if let Err(why) = settle(&unclear) {
                out.failed.push(Unrestored {
                    what: format!(
                        "`{}`: Qdrant may still be recovering it from the backup, so it was not rolled back",
                        unclear.collection
                    ),
                    why,
                });
                self.unsettled.push(unclear);
            }
        }
    }

    /// Gives the config files their old content back, the last written first.
    fn put_back_config(&mut self, out: &mut RollbackOutcome) {
        for previous in self.config.drain(..).rev() {
            match config::undo(&previous) {
                Ok(()) => out
                    .done
                    .push(format!("config file {} put back", previous.shown)),
                Err(e) => out.failed.push(Unrestored {
                    what: format!("config file {}", previous.shown),
                    why: e.to_string(),
                }),
            }
        }
    }

    /// Gives each existing collection whose indexing threshold this run changed the one it had
    /// (`PATCH /collections/{c}`), the last changed first, but those left alone (`unsettled`).
    /// Called after the recoveries, which do not put it back: a snapshot recovered into an
    /// existing collection, the whole collection's (a single node) or a shard's, leaves the
    /// collection's configuration as it is (docs/qdrant.md, "Uploads and recovery"), the
    /// threshold this run set included.
    fn put_back_thresholds(
        &mut self,
        client: &Client,
        unsettled: &[String],
        out: &mut RollbackOutcome,
    ) {
        for changed in std::mem::take(&mut self.thresholds).into_iter().rev() {
            if unsettled.contains(&changed.collection) {
                continue;
            }
            let body = serde_json::json!({
                "optimizers_config": { "indexing_threshold": changed.previous }
            });
            match client.update_collection(&changed.collection, &body) {
                Ok(()) => out.done.push(format!(
                    "`{}`: its indexing threshold set back to {}",
                    changed.collection, changed.previous
                )),
                Err(e) => out.failed.push(Unrestored {
                    what: format!(
                        "setting the indexing threshold of `{}` back to {}",
                        changed.collection, changed.previous
                    ),
                    why: e.to_string(),
                }),
            }
        }
    }

    /// Deletes the collections this run created, but those left alone (`unsettled`).
    fn delete_created(&mut self, client: &Client, unsettled: &[String], out: &mut RollbackOutcome) {
        let created = std::mem::take(&mut self.created);
        let (kept_created, created): (Vec<String>, Vec<String>) =
            created.into_iter().partition(|c| unsettled.contains(c));
        self.created = kept_created;
        for name in created.into_iter().rev() {
            match client.delete_collection(&name) {
                Ok(_) => {
                    out.done
                        .push(format!("`{name}` (created by this restore) deleted"));
                    out.rolled_back.push(name.clone());
                }
                Err(e) => out.failed.push(Unrestored {
                    what: format!("deleting `{name}`, which this restore created"),
                    why: e.to_string(),
                }),
            }
        }
    }

    /// Recovers every saved collection an upload touched from its copy, the last first, but
    /// those left alone (`unsettled`).
    fn recover_saved(
        &self,
        client: &Client,
        ui: &Ui,
        stamp: &str,
        unsettled: &[String],
        out: &mut RollbackOutcome,
    ) {
        for saved in self
            .saved
            .iter()
            .rev()
            .filter(|s| s.touched && !unsettled.contains(&s.collection))
        {
            let how = saved.how();
            ui.step(&format!("Rolling back {} {how}...", saved.collection));
            let recovered = match &saved.copies {
                Copies::Collection { local, sha256, .. } => {
                    let copy = (local.as_path(), sha256.as_str());
                    recover_collection(client, saved, copy, stamp, self.journal.as_ref())
                }
                Copies::Shards(copies) => recover_shards(saved, copies, stamp, ui),
            };
            match recovered {
                Ok(()) => {
                    ui.ok(&format!("{} points, schema as before", saved.points));
                    out.done.push(format!(
                        "`{}` recovered {how} ({} points, schema as before)",
                        saved.collection, saved.points
                    ));
                    out.rolled_back.push(saved.collection.clone());
                }
                Err(why) => out.failed.push(Unrestored {
                    what: format!("recovering `{}`", saved.collection),
                    why,
                }),
            }
        }
    }

    /// The pre-restore copies (local and on the server) of `collections` only.
    fn discard_saved_of(&mut self, client: &Client, ui: &Ui, collections: &[String]) {
        let mut rest = Undo::default();
        let (discard, keep): (Vec<Saved>, Vec<Saved>) = std::mem::take(&mut self.saved)
            .into_iter()
            .partition(|s| collections.contains(&s.collection));
        rest.saved = discard;
        rest.journal = self.journal.clone();
        rest.discard_copies(client, ui);
        self.saved = keep;
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
            if let Copies::Collection {
                server_snapshot: Some(name),
                ..
            } = &saved.copies
            {
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
            for local in saved.files() {
                if let Err(e) = std::fs::remove_file(local) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        ui.warn(&format!("could not delete {local}: {e}"));
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
            && self.thresholds.is_empty()
            && self.unclear.is_empty()
            && self.unsettled.is_empty()
            && !self.saved.iter().any(|s| s.touched)
    }

    /// The pre-restore snapshots kept after a failed rollback: (collection, local path).
    pub fn kept(&self) -> Vec<(&str, &Utf8PathBuf)> {
        self.saved
            .iter()
            .flat_map(|s| {
                s.files()
                    .into_iter()
                    .map(|local| (s.collection.as_str(), local))
            })
            .collect()
    }
}

/// Uploads the pre-restore snapshot (`local`, its SHA-256) back and checks the collection
/// is as it was.
fn recover_collection(
    client: &Client,
    saved: &Saved,
    (local, sha256): (&Utf8Path, &str),
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
        local.as_std_path(),
        &file_name,
        sha256,
        &mut never,
    );
    match client.delete_snapshot(&saved.collection, &file_name) {
        Ok(()) => super::journal::record_upload_gone(journal, &saved.collection, &file_name, None),
        Err(e) if e.is_not_found() => {
            super::journal::record_upload_gone(journal, &saved.collection, &file_name, None);
        }
        Err(_) => {}
    }
    uploaded.map_err(|e| format!("uploading {} failed: {e}", local))?;
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

/// Puts a cluster collection back shard by shard: once the uploads whose outcome was unknown
/// are over and its replicas have settled, every replica of every shard from its pre-restore
/// copy, then the same checks as after a restore (schema as before, count within what it
/// was, on every replica).
fn recover_shards(saved: &Saved, copies: &ShardCopies, stamp: &str, ui: &Ui) -> Result<(), String> {
    let target = saved.collection.as_str();
    for unclear in &copies.unclear {
        wait_until_recovered(copies, target, unclear, ui)?;
    }
    // A second Ctrl-C ends the process: stopping half way would lose data.
    let never = crate::signals::StopFlag::never();
    let placement = settle_for_rollback(copies, target, &never, ui)?;
    upload_copies(copies, target, &placement, stamp, &never, ui)?;
    let client = &copies
        .nodes
        .first()
        .ok_or_else(|| "no peer to check it on".to_string())?
        .client;
    schema_as_before(client, target, &saved.fingerprint)?;
    let expected = Expected {
        shards: copies.layout.clone(),
        points: (saved.points, saved.points_max),
        keys: copies.key_points.clone(),
        against: Against::Before,
    };
    let spinner = ui.spinner(&format!("checking every replica of {target}"));
    let checked = replicas::settle_and_verify(
        &copies.nodes,
        client,
        target,
        &expected,
        copies.settle_limit,
        &never,
    );
    spinner.finish_and_clear();
    checked.map_err(|e| format!("after the rollback {e}"))
}

/// Waits until the peer of a shard upload whose outcome is unknown is no longer recovering
/// from it: a rollback meanwhile would be overwritten by it.
fn wait_until_recovered(
    copies: &ShardCopies,
    target: &str,
    unclear: &UnclearShard,
    ui: &Ui,
) -> Result<(), String> {
    let node = copies
        .nodes
        .iter()
        .find(|n| n.peer_id == unclear.peer_id)
        .ok_or_else(|| format!("peer {} is no longer known", unclear.peer_id))?;
    let watch = super::recovery::Watch {
        client: &node.client,
        ui,
        stop: &copies.stop,
        limit: copies.settle_limit,
    };
    let upload = Unclear {
        collection: target.to_string(),
        upload: unclear.upload.clone(),
        size: unclear.size,
    };
    super::recovery::wait_until_recovered(&watch, &upload).map_err(|why| {
        format!(
            "peer {} may still be recovering shard {} from the restore's upload, so it was not \
             rolled back: {why}",
            unclear.peer_id, unclear.shard_id
        )
    })
}

/// Every replica Active and no transfer running first: a transfer into a replica left Dead
/// by a failed upload would race the rollback's upload. A Dead replica that nothing refills
/// is recovered from the copy like the others.
fn settle_for_rollback(
    copies: &ShardCopies,
    target: &str,
    never: &crate::signals::StopFlag,
    ui: &Ui,
) -> Result<Placement, String> {
    let deadline = Instant::now() + copies.settle_limit;
    let settle = Settle {
        shards: Some(&copies.layout),
        dead_is_enough: true,
    };
    let spinner = ui.spinner(&format!(
        "waiting for every replica of {target} to be Active or Dead for good"
    ));
    let settled = replicas::wait_settled(&copies.nodes, target, deadline, never, settle);
    spinner.finish_and_clear();
    let settled =
        settled.map_err(|e| format!("its replicas did not settle before the rollback: {e}"))?;
    for dead in &settled.accepted_dead {
        ui.warn(&format!(
            "{dead} of `{target}` is Dead and nothing refills it: the rollback recovers it from its copy"
        ));
    }
    Ok(settled.placement)
}

/// Recovers every replica of every shard from its pre-restore copy. Not interruptible:
/// stopping half way would lose data. Every replica is tried even when one fails; a failure,
/// or an upload whose outcome is unknown, fails the rollback, which then keeps the
/// pre-restore copies.
fn upload_copies(
    copies: &ShardCopies,
    target: &str,
    placement: &Placement,
    stamp: &str,
    never: &crate::signals::StopFlag,
    ui: &Ui,
) -> Result<(), String> {
    let mut files = Vec::new();
    for shard in &copies.shards {
        let file = std::fs::File::open(&shard.local)
            .and_then(crate::manifest::files::Opened::file)
            .map_err(|e| format!("cannot read {}: {e}", shard.local))?;
        files.push(ShardUpload {
            shard: shard.shard_id,
            file,
            shown: shard.local.to_string(),
            sha256: shard.sha256.clone(),
        });
    }
    let file_name = |shard: u32| {
        format!(
            "aimem-rollback-{target}-shard-{shard}-{stamp}-{}.snapshot",
            std::process::id()
        )
    };
    let unclear = std::sync::Mutex::new(Vec::new());
    let changed = std::sync::atomic::AtomicBool::new(false);
    let uploads = Uploads {
        target,
        nodes: &copies.nodes,
        placement,
        whole_collection: false,
        file_name: &file_name,
        stop: never,
        unclear: &unclear,
        keep_going: true,
        // Shard uploads: the peers keep no copy.
        journal: None,
        changed: &changed,
    };
    let spinner = ui.spinner(&format!(
        "Qdrant recovering every replica of {target} from its pre-restore copy"
    ));
    let recovered = replica_uploads::recover_every_replica(&uploads, files);
    spinner.finish_and_clear();
    match recovered {
        Ok(_) => Ok(()),
        Err(UploadError::Failed(why)) => Err(why),
        Err(UploadError::Interrupted) => Err("stopped".to_string()),
    }
}
