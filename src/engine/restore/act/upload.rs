//! Uploading the backup into the collection: one collection snapshot streamed to a single
//! node, or, restored shard by shard, each shard's file to every replica of it on the peers
//! that hold it ([`super::super::replica_uploads`]). Either marks a saved collection touched
//! first, and records for the rollback an upload whose outcome is unknown.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::placement::cluster_failure;
use super::{Context, Effect, StepError, effect_of, qdrant, stopped};
use crate::engine::restore::journal::SharedJournal;
use crate::engine::restore::plan::Source;
use crate::engine::restore::replica_uploads::{
    self, ShardUpload, UnclearShard, UploadError, Uploads,
};
use crate::engine::restore::replicas::{Node, Placement};
use crate::engine::restore::rollback::{Copies, Saved, Unclear, Undo};
use crate::engine::worker;
use crate::manifest::checksums;
use crate::manifest::files::Opened;
use crate::qdrant::{Cancelled, QdrantError};

/// Streams the backup's snapshot into the target and deletes the server's kept copy.
pub(super) fn upload(cx: &Context, source: &Source, undo: &mut Undo) -> Result<(), StepError> {
    let target = &source.target;
    let sha256 = sha256_of(
        &source.file,
        source.verified_sha256.as_ref(),
        source.snapshot.as_str(),
    )?;
    stopped(cx.stop)?;
    let file_name = format!(
        "aimem-restore-{target}-{}-{}.snapshot",
        cx.stamp,
        std::process::id()
    );
    undo.record_upload(target, &file_name)
        .map_err(|source| StepError::Journal { source })?;
    touch(undo, target, true);
    let size = source.file.len();
    let opened = source.file.reader_from(0);
    let result = send(cx, source, &file_name, &sha256, (opened, size));
    if let Err(e) = result {
        match effect_of(&e) {
            Effect::Unchanged => touch(undo, target, false),
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

/// Sends the opened snapshot (`size` bytes) as `file_name`, with a progress bar that turns
/// into a spinner while Qdrant recovers.
fn send(
    cx: &Context,
    source: &Source,
    file_name: &str,
    sha256: &str,
    (opened, size): (Opened, u64),
) -> Result<(), QdrantError> {
    let target = &source.target;
    let bar = cx
        .ui
        .transfer_bar(&format!("upload {target}"), Some(target), Some(size));
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
            file_name.to_string(),
            sha256.to_string(),
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
    result
}

/// Where an upload's body stands: still going out, all read from the file, or cut by a stop.
const SENDING: u8 = 0;
const SENT: u8 = 1;
const CUT: u8 = 2;

/// Recovers every replica of every shard of `source` from the backup's files, on the settled
/// `placement`. An existing collection's copy is marked touched first (and untouched again
/// when every upload was refused before it changed anything: nothing needs putting back),
/// and the uploads whose outcome is unknown are kept with it for the rollback to wait for; a
/// collection this run created is deleted on rollback, whatever Qdrant still recovers.
pub(super) fn upload_every_replica(
    cx: &Context,
    source: &Source,
    (nodes, placement): (&[Node], &Placement),
    undo: &mut Undo,
) -> Result<(), StepError> {
    let target = source.target.as_str();
    touch(undo, target, true);
    let unclear = Mutex::new(Vec::new());
    let changed = AtomicBool::new(false);
    let uploaded = recover_every_replica(
        cx,
        source,
        (nodes, placement),
        (&unclear, &changed),
        undo.journal.as_ref(),
    );
    if uploaded.is_err() && !changed.load(Ordering::SeqCst) {
        touch(undo, target, false);
    }
    if let (
        Ok(unclear),
        Some(Saved {
            copies: Copies::Shards(copies),
            ..
        }),
    ) = (
        unclear.into_inner(),
        undo.saved.iter_mut().find(|s| s.collection == target),
    ) {
        copies.unclear.extend(unclear);
    }
    uploaded
}

/// Sends each shard file of `source` (its one collection snapshot, from a single-node backup)
/// to every peer holding a replica of the shard.
fn recover_every_replica(
    cx: &Context,
    source: &Source,
    (nodes, placement): (&[Node], &Placement),
    (unclear, changed): (&Mutex<Vec<UnclearShard>>, &AtomicBool),
    journal: Option<&SharedJournal>,
) -> Result<(), StepError> {
    let target = source.target.as_str();
    let files = shard_uploads(source)?;
    let replicas: usize = files.iter().map(|f| placement.holders(f.shard).len()).sum();
    let spinner = cx.ui.spinner(&format!(
        "Qdrant recovering {} shard file(s) of {target} on {replicas} replica(s)",
        files.len()
    ));
    let stamp = cx.stamp.clone();
    let file_name = move |shard: u32| {
        format!(
            "aimem-restore-{target}-shard-{shard}-{stamp}-{}.snapshot",
            std::process::id()
        )
    };
    let uploads = Uploads {
        target,
        nodes,
        placement,
        whole_collection: source.cluster.is_none(),
        file_name: &file_name,
        stop: cx.stop,
        unclear,
        keep_going: false,
        journal,
        changed,
    };
    let recovered = replica_uploads::recover_every_replica(&uploads, files);
    spinner.finish_and_clear();
    match recovered {
        Ok(total) => {
            cx.ui.ok(&format!(
                "every replica of `{target}` recovered from its shard file ({total} upload(s))"
            ));
            Ok(())
        }
        Err(UploadError::Interrupted) => Err(StepError::Interrupted),
        Err(UploadError::Failed(detail)) => Err(cluster_failure(target, detail)),
    }
}

/// The files to upload, by shard id: each shard file of a cluster backup, or shard 0's whole
/// collection snapshot from a single-node backup.
fn shard_uploads(source: &Source) -> Result<Vec<ShardUpload>, StepError> {
    // (shard id, file, shown path, sha256)
    let opened: Vec<(u32, &Opened, String, Option<&String>)> = match &source.cluster {
        Some(cluster) => cluster
            .shards
            .iter()
            .map(|shard| {
                (
                    shard.record.shard_id,
                    &shard.file,
                    shard.relative.clone(),
                    shard.verified_sha256.as_ref(),
                )
            })
            .collect(),
        None => vec![(
            0,
            &source.file,
            source.snapshot.to_string(),
            source.verified_sha256.as_ref(),
        )],
    };
    let mut files = Vec::new();
    for (shard, file, shown, verified) in opened {
        let sha256 = sha256_of(file, verified, &shown)?;
        let file = file.reader_from(0);
        files.push(ShardUpload {
            shard,
            file,
            shown,
            sha256,
        });
    }
    Ok(files)
}

/// The SHA-256 of a file to upload: the one CHECKSUMS.sha256 verified, or, not verified
/// (--skip-checksum-verify), hashed now, so the server at least checks that it received this
/// file intact.
fn sha256_of(file: &Opened, verified: Option<&String>, shown: &str) -> Result<String, StepError> {
    match verified {
        Some(sha) => Ok(sha.clone()),
        None => {
            let (sha, _) =
                checksums::hash_reader(file.reader_from(0)).map_err(|source| StepError::Io {
                    path: shown.to_string(),
                    source,
                })?;
            Ok(sha)
        }
    }
}

/// Marks the saved copy of `target` (an existing collection) as uploaded into, or not.
fn touch(undo: &mut Undo, target: &str, touched: bool) {
    if let Some(saved) = undo.saved.iter_mut().find(|s| s.collection == target) {
        saved.touched = touched;
    }
}
