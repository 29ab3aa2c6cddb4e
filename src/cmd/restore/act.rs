//! The changing part of a restore: per collection, save what is there, create or overwrite it
//! from the backup, and check the result. Every change goes into the [`Undo`] log first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use camino::{Utf8Path, Utf8PathBuf};
use miette::Diagnostic;
use thiserror::Error;

use super::check::{self, Against, Counted, Failed};
use super::config::{self, ConfigFile};
use super::plan::{Action, Planned, Source};
use super::rollback::{Copies, Saved, Unclear, Undo};
use crate::cmd::backup::concurrent::{self, SnapshotOf};
use crate::cmd::backup::disk;
use crate::cmd::backup::snapshot::{self, DownloadError};
use crate::cmd::worker;
use crate::fingerprint::Fingerprint;
use crate::manifest::{checksums, layout};
use crate::names::SafeName;
use crate::qdrant::{Cancelled, Client, QdrantError};
use crate::signals::StopFlag;
use crate::ui::{Ui, human_size};

/// What every step needs.
pub struct Context<'a> {
    pub client: &'a Client,
    pub ui: &'a Ui,
    pub stop: &'a StopFlag,
    /// The folder (the backup's parent) in which the pre-restore folder is created, on first
    /// use, as `<prerestore_prefix><random>`: a new folder owned by this run alone
    /// ([`layout::create_working_dir`]), kept in `Undo::folder`.
    pub prerestore_in: Utf8PathBuf,
    /// `.aimem-prerestore-<stamp>-`.
    pub prerestore_prefix: String,
    /// Makes uploaded file names unique.
    pub stamp: String,
    /// The server: a single node, or every peer of a cluster.
    pub topology: &'a crate::cmd::peers::Topology,
    /// The names the server goes by in snapshot turns (a backup's creations take them too).
    pub lock_keys: &'a crate::cmd::peers::LockKeys,
    /// How long a cluster restore waits for every replica to turn Active (--recovery-timeout).
    pub settle_limit: std::time::Duration,
}

/// A step that failed; the restore is rolled back after it.
#[derive(Debug, Error, Diagnostic)]
pub enum StepError {
    #[error("{step} `{collection}` failed")]
    #[diagnostic(code(aimem::restore::step))]
    Qdrant {
        step: &'static str,
        collection: String,
        #[source]
        #[diagnostic_source]
        source: QdrantError,
    },

    #[error("saving `{collection}` before overwriting it failed")]
    #[diagnostic(code(aimem::restore::prerestore))]
    Save {
        collection: String,
        #[source]
        #[diagnostic_source]
        source: DownloadError,
    },

    #[error("cannot create the folder for pre-restore snapshots {path}: {source}")]
    #[diagnostic(
        code(aimem::restore::prerestore),
        help(
            "aimem keeps a copy of each collection it overwrites next to the backup folder. Make the \
             backup's parent folder writable, or copy the backup somewhere writable."
        )
    )]
    PrerestoreFolder {
        path: String,
        source: std::io::Error,
    },

    #[error(
        "not enough free space in {path} for the pre-restore snapshot of `{collection}`: about {} needed, {} free",
        human_size(*.needed),
        human_size(*.free)
    )]
    #[diagnostic(
        code(aimem::restore::space),
        help("Free space there, or copy the backup to a larger disk and restore from that copy.")
    )]
    NoSpace {
        collection: String,
        path: String,
        needed: u64,
        free: u64,
    },

    #[error("cannot write {path}: {source}")]
    #[diagnostic(
        code(aimem::restore::io),
        help("Check that the folder is writable and its disk is not full.")
    )]
    Io {
        path: String,
        source: std::io::Error,
    },

    #[error("`{collection}` does not match the backup after the restore: {detail}")]
    #[diagnostic(
        code(aimem::restore::check),
        help(
            "Qdrant did not restore what the backup holds. Check the server's logs and disk space."
        )
    )]
    Check { collection: String, detail: String },

    #[error("cannot write the restore's journal: {source}")]
    #[diagnostic(
        code(aimem::restore::journal),
        help(
            "aimem records what it makes on the server before it asks for it, in its state folder \
             ($XDG_STATE_HOME/aimem, else ~/.local/state/aimem). Make that folder writable and private \
             to you, or free space on its disk."
        )
    )]
    Journal { source: std::io::Error },

    #[error("stopped by a signal")]
    #[diagnostic(code(aimem::interrupted))]
    Interrupted,

    #[error("restoring `{collection}` failed: aimem hit an internal error (above)")]
    #[diagnostic(
        code(aimem::restore::internal),
        help("If it happens again, report the message above.")
    )]
    Panicked { collection: String },

    #[error("restoring `{collection}` shard by shard failed: {detail}")]
    #[diagnostic(
        code(aimem::restore::cluster),
        help(
            "Check every peer's logs and GET /collections/NAME/cluster on the peers; a slow cluster may \
             need a longer --recovery-timeout."
        )
    )]
    Cluster { collection: String, detail: String },
}

fn qdrant(step: &'static str, collection: &str) -> impl FnOnce(QdrantError) -> StepError {
    let collection = collection.to_string();
    move |source| match source {
        QdrantError::Interrupted => StepError::Interrupted,
        source => StepError::Qdrant {
            step,
            collection,
            source,
        },
    }
}

impl StepError {
    /// Saving what is there before overwriting it failed: a restore that ends here changed
    /// nothing if nothing else was changed before.
    pub fn is_prerestore(&self) -> bool {
        matches!(
            self,
            StepError::Save { .. } | StepError::PrerestoreFolder { .. } | StepError::NoSpace { .. }
        ) || matches!(self, StepError::Qdrant { step, .. } if *step == SNAPSHOTTING)
    }
}

impl StepError {
    /// The step failed for want of disk space: the disk-space check said so, or a write of
    /// the pre-restore copy hit a full disk or quota.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            StepError::NoSpace { .. } => true,
            StepError::Save { source, .. } => source.is_out_of_space(),
            StepError::PrerestoreFolder { source, .. } | StepError::Io { source, .. } => {
                disk::is_out_of_space(source)
            }
            _ => false,
        }
    }
}

const SNAPSHOTTING: &str = "snapshotting";

/// What a failed upload did to the collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    /// Refused before anything changed: a definite 4xx answer (Qdrant checks access, the
    /// checksum and compatibility before it clears anything; a proxy's 413 or 403 never reaches
    /// it), or a body aimem cut short itself.
    Unchanged,
    /// Nobody knows: no answer, a timeout, a lost connection, a gateway's 502/503/504 or a 408.
    /// Qdrant may be recovering still.
    Unclear,
    /// Qdrant answered an error after it started (a 500 mid-recovery): it may have cleared data.
    Changed,
}

pub(super) fn effect_of(error: &QdrantError) -> Effect {
    match (error, error.status()) {
        (QdrantError::Interrupted | QdrantError::LocalRead { .. }, _) => Effect::Unchanged,
        (_, Some(408 | 502 | 503 | 504)) => Effect::Unclear,
        (_, Some(400..=499)) => Effect::Unchanged,
        (_, Some(_)) => Effect::Changed,
        (_, None) => Effect::Unclear,
    }
}

pub(super) fn stopped(stop: &StopFlag) -> Result<(), StepError> {
    match stop.requested() {
        Some(_) => Err(StepError::Interrupted),
        None => Ok(()),
    }
}

/// Restores every planned collection in order (refusals were handled before).
pub fn restore_collections(
    cx: &Context,
    plans: &[Planned],
    undo: &mut Undo,
    timings: &mut Vec<(String, f64)>,
) -> Result<(), StepError> {
    cx.ui.step("Restoring collections...");
    for planned in plans {
        let restored = caught(&planned.source.target, || {
            restore_one(cx, planned, undo, &|| stopped(cx.stop), false)
        })?;
        if let Some(seconds) = restored {
            timings.push((planned.source.target.to_string(), seconds));
        }
    }
    Ok(())
}

/// Runs one collection's restore. A panic (a bug in aimem) fails that collection like any
/// other error instead of unwinding past the rollback: what the undo log holds up to the
/// panic is still put back.
pub(super) fn caught<T>(
    collection: &str,
    restore: impl FnOnce() -> Result<T, StepError>,
) -> Result<T, StepError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(restore)).unwrap_or_else(|_| {
        Err(StepError::Panicked {
            collection: collection.to_string(),
        })
    })
}

/// Restores one planned collection: create or save, upload, check. `go_on` is asked before
/// each step (a signal, or with `--jobs` another collection's failure, ends it there);
/// `named` puts the collection's name in the closing line (several run at once). Returns
/// the seconds it took, or `None` for a refused collection (nothing done).
pub(super) fn restore_one(
    cx: &Context,
    planned: &Planned,
    undo: &mut Undo,
    go_on: &dyn Fn() -> Result<(), StepError>,
    named: bool,
) -> Result<Option<f64>, StepError> {
    let started = std::time::Instant::now();
    go_on()?;
    let source = &planned.source;
    if super::plan::shard_aware(cx.topology, source) {
        return super::shards::restore_one(cx, planned, undo, go_on, named);
    }
    cx.ui.step(&format!(
        "  Restoring {} ({} records)...",
        source.target, source.entry.records
    ));
    match &planned.action {
        Action::Create => create(cx, planned, undo)?,
        Action::Overwrite { live, points, .. } => {
            save(cx, &source.target, live, *points, undo)?;
        }
        Action::Refuse(_) => return Ok(None),
    }
    go_on()?;
    upload(cx, planned, undo)?;
    // A signal that arrived while the server was recovering still asks for the rollback.
    stopped(cx.stop)?;
    check(cx, planned)?;
    let recovered = match named {
        true => format!("`{}` recovered", source.target),
        false => "Collection recovered".to_string(),
    };
    cx.ui
        .ok(&format!("{recovered} ({} records)", source.entry.records));
    Ok(Some(started.elapsed().as_secs_f64()))
}

/// Creates an absent collection from the backup's fingerprint, with its payload indexes.
fn create(cx: &Context, planned: &Planned, undo: &mut Undo) -> Result<(), StepError> {
    let target = &planned.source.target;
    let Some(fingerprint) = &planned.source.fingerprint else {
        return Ok(());
    };
    match cx
        .client
        .create_collection(target, &fingerprint.create_collection_body())
    {
        Ok(()) => undo.created.push(target.to_string()),
        Err(e) => {
            // Without an answer (timeout, lost connection) the server may have created it
            // anyway: it was absent when planned, so it is ours to delete. A refusal (409 if
            // someone else created it meanwhile) means it is not ours.
            if e.status().is_none() {
                undo.created.push(target.to_string());
            }
            return Err(qdrant("creating", target)(e));
        }
    }
    super::indexes::build(cx.client, cx.stop, target, &fingerprint.payload_indexes())?;
    cx.ui
        .ok(&format!("`{target}` created from the backup's schema"));
    Ok(())
}

/// Takes a server-side snapshot of an existing collection and keeps a local copy of it.
fn save(
    cx: &Context,
    target: &SafeName,
    live: &Fingerprint,
    points: u64,
    undo: &mut Undo,
) -> Result<(), StepError> {
    let folder = prerestore_folder(cx, undo)?;
    // The count again, right before the snapshot: the rollback checks against this.
    let points = cx
        .client
        .count_exact(target)
        .map_err(qdrant("counting", target))
        .unwrap_or(points);
    check_space(&folder, target, disk::estimate_snapshot_size(live, points))?;
    // The count again, after the snapshot: writes in between mean the snapshot holds
    // somewhere between the two, and the rollback's check must accept that range.
    // Built on a worker thread: a signal meanwhile waits for it to end, since Qdrant finishes
    // the snapshot anyway and only then can it be deleted again (a second Ctrl-C stops
    // waiting: the restore holds signals from its first change on, see `mod.rs`).
    let description = {
        let client = cx.client.clone();
        let name = target.to_string();
        let told = std::cell::Cell::new(false);
        // Its name is the collection's and the second's: a backup's snapshot of it in the same
        // second would get the same one (see `concurrent`).
        let turn = concurrent::take_turn(
            cx.lock_keys,
            SnapshotOf::Collection(target.as_str()),
            cx.stop,
            cx.ui,
        )
        .map_err(|_| StepError::Interrupted)?;
        let spinner = cx.ui.spinner(&format!(
            "Qdrant building the pre-restore snapshot of {target}"
        ));
        // On disk before the server is asked: a run killed from here on (even by `kill -9`)
        // leaves the next one a record of the snapshot to delete.
        let asked_at = crate::cmd::backup::undo::snapshot_time(
            time::OffsetDateTime::now_utc() - time::Duration::minutes(1),
        );
        let existing: Vec<String> = cx
            .client
            .list_snapshots(target)
            .map(|list| list.into_iter().map(|s| s.name).collect())
            .unwrap_or_default();
        undo.journal_creating(target, asked_at, existing)
            .map_err(|source| StepError::PrerestoreFolder {
                path: folder.to_string(),
                source,
            })?;
        let created = worker::until(
            || {
                if cx.stop.requested().is_some() && !told.replace(true) {
                    cx.ui.warn(&format!(
                        "waiting for Qdrant to finish the pre-restore snapshot of `{target}` so it can be deleted \
                         (Ctrl-C again stops waiting and leaves it on the server)"
                    ));
                }
                cx.stop.abandoned()
            },
            move || client.create_snapshot(&name),
        );
        // Answered or not: this run never looks for a snapshot whose answer it missed (the
        // next run finds it by the journal's record), so the turn need not outlive the wait.
        turn.release_after_answer();
        spinner.finish_and_clear();
        let created = created.unwrap_or(Err(QdrantError::Interrupted));
        match &created {
            Ok(description) => undo.journal_answered(target, Some(&description.name)),
            // A refusal made nothing; without an answer the record stays for the next run.
            Err(e) if e.status().is_some() => undo.journal_answered(target, None),
            Err(_) => {}
        }
        created.map_err(qdrant(SNAPSHOTTING, target))?
    };
    let points_after = cx
        .client
        .count_exact(target)
        .map_err(qdrant("counting", target))
        .unwrap_or(points);
    let local = target.snapshot_path(&folder);
    undo.saved.push(Saved {
        collection: target.to_string(),
        fingerprint: live.clone(),
        points: points.min(points_after),
        points_max: points.max(points_after),
        touched: false,
        copies: Copies::Collection {
            local: local.clone(),
            sha256: String::new(),
            server_snapshot: Some(description.name.clone()),
        },
    });
    stopped(cx.stop)?;
    if let Some(size) = description.size {
        check_space(&folder, target, size)?;
    }
    // On a worker thread, so Ctrl-C is noticed even while the download is stalled.
    let downloaded = {
        let (client, name, description, local) = (
            cx.client.clone(),
            target.to_string(),
            description.clone(),
            local.clone(),
        );
        let (ui, stop) = (cx.ui.clone(), cx.stop.clone());
        worker::interruptible(cx.stop, move || {
            let label = format!("pre-restore copy of {name}");
            snapshot::download_verified(&client, &name, &description, &local, 1, &label, &ui, &stop)
        })
        .unwrap_or(Err(DownloadError::Qdrant(QdrantError::Interrupted)))
    };
    let downloaded = downloaded.map_err(|source| match source {
        DownloadError::Qdrant(QdrantError::Interrupted) => StepError::Interrupted,
        source => StepError::Save {
            collection: target.to_string(),
            source,
        },
    })?;
    if let Some(Saved {
        copies: Copies::Collection { sha256, .. },
        ..
    }) = undo.saved.last_mut()
    {
        *sha256 = downloaded.sha256;
    }
    cx.ui.ok(&format!(
        "Pre-restore snapshot of `{target}` saved: {local} ({})",
        human_size(downloaded.size)
    ));
    Ok(())
}

/// The run's pre-restore folder, created on first use and kept in `undo.folder`.
pub(super) fn prerestore_folder(cx: &Context, undo: &mut Undo) -> Result<Utf8PathBuf, StepError> {
    if let Some(folder) = &undo.folder {
        return Ok(folder.clone());
    }
    let (parent, prefix) = (&cx.prerestore_in, &cx.prerestore_prefix);
    let folder = layout::create_working_dir(parent, prefix, "").map_err(|source| {
        StepError::PrerestoreFolder {
            path: parent.to_string(),
            source,
        }
    })?;
    undo.folder = Some(folder.clone());
    undo.journal_folder(&folder)
        .map_err(|source| StepError::PrerestoreFolder {
            path: folder.to_string(),
            source,
        })?;
    Ok(folder)
}

/// Fails unless the pre-restore folder's filesystem has `needed` bytes free.
pub(super) fn check_space(folder: &Utf8Path, target: &str, needed: u64) -> Result<(), StepError> {
    let free = disk::free_space(folder).map_err(|source| StepError::PrerestoreFolder {
        path: folder.to_string(),
        source,
    })?;
    if free < needed {
        return Err(StepError::NoSpace {
            collection: target.to_string(),
            path: folder.to_string(),
            needed,
            free,
        });
    }
    Ok(())
}

/// A new handle on the opened snapshot, at its start (handles share one position).
pub(super) fn rewound(file: &std::fs::File) -> std::io::Result<std::fs::File> {
    let mut handle = file.try_clone()?;
    std::io::Seek::seek(&mut handle, std::io::SeekFrom::Start(0))?;
    Ok(handle)
}

/// Streams the backup's snapshot into the target and deletes the server's kept copy.
fn upload(cx: &Context, planned: &Planned, undo: &mut Undo) -> Result<(), StepError> {
    let source = &planned.source;
    let target = &source.target;
    let sha256 = match &source.verified_sha256 {
        Some(sha) => sha.clone(),
        // Not verified (--skip-checksum-verify): hash it now, so the server at least checks
        // that it received this file intact.
        None => {
            rewound(&source.file)
                .and_then(checksums::hash_reader)
                .map_err(|e| StepError::Io {
                    path: source.snapshot.to_string(),
                    source: e,
                })?
                .0
        }
    };
    stopped(cx.stop)?;
    let file_name = format!(
        "aimem-restore-{target}-{}-{}.snapshot",
        cx.stamp,
        std::process::id()
    );
    undo.record_upload(target, &file_name)
        .map_err(|source| StepError::Journal { source })?;
    let touch = |undo: &mut Undo, touched: bool| {
        if let Some(saved) = undo.saved.iter_mut().find(|s| &s.collection == target) {
            saved.touched = touched;
        }
    };
    touch(undo, true);
    let size = source.file.metadata().map(|m| m.len()).unwrap_or(0);
    let opened = rewound(&source.file).map_err(|e| StepError::Io {
        path: source.snapshot.to_string(),
        source: e,
    })?;
    let bar = cx.ui.transfer_bar(&format!("upload {target}"), Some(size));
    // On a worker thread, so a signal is noticed at once. While the body is being sent a stop
    // cuts it: the next block the worker reads from the file is refused, so Qdrant never gets
    // the whole body and recovers nothing. Once the last block is read Qdrant is (about to be)
    // recovering, and the safe thing is to wait for its answer and then roll back, unless the
    // user insists (a second Ctrl-C): then the outcome is unknown, and the rollback handles it
    // as such (it cannot confirm it and says what to check: exit 5).
    let progress = Arc::new(AtomicU8::new(SENDING));
    let told = std::cell::Cell::new(false);
    let outcome = {
        let client = cx.client.clone();
        let (name, path, file, sha) = (
            target.clone(),
            source.snapshot.clone(),
            file_name.clone(),
            sha256.clone(),
        );
        let (worker_bar, worker_progress) = (bar.clone(), Arc::clone(&progress));
        let name_shown = target.to_string();
        let read = AtomicU64::new(0);
        worker::until(
            || {
                if cx.stop.requested().is_none() {
                    return false;
                }
                // Only one side wins: either the worker read the last block first (SENT), or
                // the cut comes first and the worker refuses every block after it.
                let cut = progress
                    .compare_exchange(SENDING, CUT, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok();
                if cut || cx.stop.abandoned() {
                    return true;
                }
                if !told.replace(true) {
                    // Ui hides the bars itself while it prints.
                    cx.ui.warn(&format!(
                        "waiting for Qdrant to finish recovering `{target}`, then rolling back \
                         (Ctrl-C again stops waiting; a third time ends aimem at once)"
                    ));
                }
                false
            },
            move || {
                let mut on_block = |n: u64| {
                    if worker_progress.load(Ordering::SeqCst) == CUT {
                        return Err(Cancelled);
                    }
                    let total = read.fetch_add(n, Ordering::SeqCst) + n;
                    if total >= size
                        && worker_progress
                            .compare_exchange(SENDING, SENT, Ordering::SeqCst, Ordering::SeqCst)
                            .is_err()
                    {
                        // Cut meanwhile: this last block must not go out either.
                        return Err(Cancelled);
                    }
                    worker_bar.inc(n);
                    if total >= size {
                        // All sent: from here on Qdrant unpacks and recovers before it answers.
                        crate::ui::into_spinner(
                            &worker_bar,
                            &format!("Qdrant recovering {name_shown}"),
                        );
                    }
                    Ok(())
                };
                client.upload_snapshot_file(
                    &name,
                    opened,
                    path.as_str(),
                    &file,
                    &sha,
                    crate::qdrant::RecoveryPriority::Snapshot,
                    &mut on_block,
                )
            },
        )
    };
    let result = match outcome {
        Some(result) => result,
        // Cut while the body was still going out: Qdrant has not got it whole.
        None if progress.load(Ordering::SeqCst) == CUT => Err(QdrantError::Interrupted),
        // Given up after it was all sent: Qdrant may be recovering from it.
        None => Err(QdrantError::Transport {
            what: format!("waiting for Qdrant to recover `{target}`"),
            detail: "stopped waiting on request (Ctrl-C twice); Qdrant may still be recovering"
                .to_string(),
        }),
    };
    bar.finish_and_clear();
    if let Err(e) = result {
        match effect_of(&e) {
            Effect::Unchanged => touch(undo, false),
            Effect::Unclear => undo.unclear.push(Unclear {
                collection: target.to_string(),
                upload: file_name.clone(),
                size,
            }),
            Effect::Changed => {}
        }
        return Err(qdrant("uploading the snapshot into", target)(e));
    }
    cx.ui.ok(&format!("Snapshot of `{target}` uploaded"));
    // The server keeps every uploaded file: remove it now rather than fill its disk.
    let mut done = Undo {
        uploads: vec![(target.to_string(), file_name.clone())],
        journal: undo.journal.clone(),
        ..Undo::default()
    };
    done.delete_uploads(cx.client, cx.ui);
    undo.uploads
        .retain(|(c, f)| !(c == target && f == &file_name));
    Ok(())
}

/// Where an upload's body stands: still going out, all read from the file, or cut by a stop.
const SENDING: u8 = 0;
const SENT: u8 = 1;
const CUT: u8 = 2;

/// The restored collection must have the backup's schema and exactly its record count.
fn check(cx: &Context, planned: &Planned) -> Result<(), StepError> {
    let source = &planned.source;
    let target = &source.target;
    check_schema(cx, source, matches!(planned.action, Action::Create))?;
    let points = cx
        .client
        .count_exact(target)
        .map_err(qdrant("counting", target))?;
    check::points(points, source.recorded_points(), Against::Backup).map_err(|detail| {
        StepError::Check {
            collection: target.to_string(),
            detail,
        }
    })
}

/// The restored collection's schema against the backup's: every difference counts in a
/// collection this run `created` in the backup's own layout, only structure otherwise
/// ([`Counted::after_restore`]).
pub(super) fn check_schema(cx: &Context, source: &Source, created: bool) -> Result<(), StepError> {
    let target = &source.target;
    let same_layout = source.cluster.is_some() == cx.topology.is_cluster();
    check::schema(
        cx.client,
        target,
        source.fingerprint.as_ref(),
        Against::Backup,
        Counted::after_restore(created, same_layout),
    )
    .map_err(|failed| match failed {
        Failed::Read(e) => qdrant("checking", target)(e),
        Failed::Differs(detail) => StepError::Check {
            collection: target.to_string(),
            detail,
        },
    })
}

/// Writes the config files, each atomically, recording how to put the old ones back.
pub fn restore_config(
    cx: &Context,
    files: &[ConfigFile],
    undo: &mut Undo,
) -> Result<(), StepError> {
    cx.ui.step("Restoring config files...");
    for file in files {
        stopped(cx.stop)?;
        config::write(file, &mut undo.config).map_err(|source| StepError::Io {
            path: file.to.to_string(),
            source,
        })?;
        cx.ui.ok(&format!(
            "{} → {} (mode {:o})",
            file.name, file.to, file.mode
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_while_saving_the_pre_restore_copy_is_out_of_space() {
        let full = || std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let save = StepError::Save {
            collection: "c".into(),
            source: DownloadError::Qdrant(QdrantError::LocalWrite(full())),
        };
        let folder = StepError::PrerestoreFolder {
            path: "p".into(),
            source: full(),
        };
        let checked = StepError::NoSpace {
            collection: "c".into(),
            path: "p".into(),
            needed: 2,
            free: 1,
        };
        let damaged = StepError::Save {
            collection: "c".into(),
            source: DownloadError::Mismatch { detail: "x".into() },
        };
        assert!(save.is_out_of_space());
        assert!(folder.is_out_of_space());
        assert!(checked.is_out_of_space());
        assert!(!damaged.is_out_of_space());
    }

    #[test]
    fn a_panicking_restore_fails_its_collection_instead_of_unwinding() {
        let outcome: Result<(), StepError> = caught("notes", || panic!("a bug"));
        assert!(
            matches!(outcome, Err(StepError::Panicked { collection }) if collection == "notes")
        );
        assert_eq!(caught("notes", || Ok(7)).ok(), Some(7));
    }
}
