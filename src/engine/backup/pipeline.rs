//! `--jobs N`: up to N collections backed up at the same time, so that while Qdrant builds one
//! snapshot another is downloaded (and a third synced), instead of the server, the network
//! and the disk each waiting for the others.
//!
//! Each collection is one job (schema and count before, create, count and schema after,
//! download and hash, delete on the server), taken in the planned order by a small pool of
//! scoped threads. The finished file's fsync is handed to one more thread, so it overlaps the
//! next job instead of holding up its worker; every file is synced before this returns, so
//! before the staging folder can be published. What they return is put back in the planned order, so the manifest and
//! the checksums file are the same as those of a one-at-a-time run. The first failure stops
//! the pool from starting more jobs; the running ones finish (each registers what it made in
//! the shared undo log), and the caller's cleanup removes everything.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use camino::{Utf8Path, Utf8PathBuf};

use super::dest::Dest;
use super::snapshot::Durability;
use super::undo::Undo;
use super::{
    Backed, BackupError, CollectionDone, CollectionEntry, Context, Planned, backup_collection,
    lock, stopped,
};
use crate::ui::human_size;

/// The default `--jobs`, chosen from `bench/transfer.sh`.
pub const DEFAULT_JOBS: u8 = 3;

/// Backs up every planned collection, `--jobs` at a time, and returns (name, manifest
/// entry) in the planned order. `--json`'s collections are reported in that order too.
pub(super) fn back_up_collections(
    cx: &Context,
    planned: &[Planned],
    snapshot_dir: &Dest,
    undo: &Mutex<Undo>,
) -> Backed<Vec<(String, CollectionEntry)>> {
    let jobs = usize::from(cx.options.jobs).clamp(1, planned.len().max(1));
    if jobs == 1 {
        return one_at_a_time(cx, planned, snapshot_dir, undo);
    }
    let next = AtomicUsize::new(0);
    let first_failure: Mutex<Option<BackupError>> = Mutex::new(None);
    let finished: Vec<Mutex<Option<(CollectionEntry, CollectionDone)>>> =
        planned.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        let (to_sync, syncing) = mpsc::channel::<Utf8PathBuf>();
        let first_failure = &first_failure;
        scope.spawn(move || {
            for path in syncing {
                if let Err(failure) = sync_file(&path) {
                    lock(first_failure).get_or_insert(failure);
                }
            }
        });
        for _ in 0..jobs {
            let to_sync = to_sync.clone();
            let (next, finished) = (&next, &finished);
            scope.spawn(move || {
                loop {
                    // A failure or a signal: no new collection is started.
                    if lock(first_failure).is_some() || cx.stop.requested().is_some() {
                        return;
                    }
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let (Some(collection), Some(slot)) = (planned.get(index), finished.get(index))
                    else {
                        return;
                    };
                    cx.ui.step(&format!("Backing up {}...", collection.name));
                    cx.ui.phase_started("collection", Some(&collection.name));
                    let job = caught(&collection.name, || {
                        backup_collection(
                            cx,
                            collection,
                            snapshot_dir,
                            undo,
                            Durability::CallerSyncs,
                        )
                    });
                    phase_finished(cx, &collection.name, job.as_ref().ok().map(|(e, _)| e));
                    match job {
                        Ok((entry, report)) => {
                            // The syncer outlives every worker: this send cannot fail. Should
                            // it, the file is synced here instead. A cluster collection's
                            // shard files were synced as they were downloaded.
                            // (A file streamed into a staging area by name is durable once
                            // written.)
                            let local = snapshot_dir
                                .join(&collection.name.snapshot_file())
                                .path()
                                .map(Utf8Path::to_owned);
                            if let (
                                crate::manifest::CollectionBackup::Snapshot { .. },
                                Some(path),
                            ) = (&entry.backup, local)
                            {
                                if let Err(mpsc::SendError(path)) = to_sync.send(path)
                                    && let Err(failure) = sync_file(&path)
                                {
                                    lock(first_failure).get_or_insert(failure);
                                    return;
                                }
                            }
                            cx.ui.ok(&format!(
                                "{}: {} records, {} ({})",
                                collection.name,
                                entry.records,
                                report.method.done(),
                                human_size(entry.size_bytes)
                            ));
                            *lock(slot) = Some((entry, report));
                        }
                        Err(failure) => {
                            lock(first_failure).get_or_insert(failure);
                            return;
                        }
                    }
                }
            });
        }
        // The workers hold the only senders left: the syncer ends once they all have.
        drop(to_sync);
    });
    let mut done = Vec::with_capacity(planned.len());
    for (collection, slot) in planned.iter().zip(finished) {
        let result = slot
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((entry, report)) = result {
            cx.progress.collection_done(report);
            done.push((collection.name.to_string(), entry));
        }
    }
    let failure = first_failure
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(failure) = failure {
        return Err(failure);
    }
    stopped(cx.stop)?;
    if done.len() != planned.len() {
        // Every job ran to success (no failure, no signal), so this cannot happen; should it,
        // a backup missing a collection must not be published.
        return Err(BackupError::Incomplete);
    }
    Ok(done)
}

/// `--jobs 1`: one collection after another, exactly as before `--jobs` existed.
fn one_at_a_time(
    cx: &Context,
    planned: &[Planned],
    snapshot_dir: &Dest,
    undo: &Mutex<Undo>,
) -> Backed<Vec<(String, CollectionEntry)>> {
    let mut done = Vec::with_capacity(planned.len());
    for collection in planned {
        stopped(cx.stop)?;
        cx.ui.step(&format!("Backing up {}...", collection.name));
        cx.ui.phase_started("collection", Some(&collection.name));
        let job = caught(&collection.name, || {
            backup_collection(cx, collection, snapshot_dir, undo, Durability::SyncedNow)
        });
        phase_finished(cx, &collection.name, job.as_ref().ok().map(|(e, _)| e));
        let (entry, report) = job?;
        let how = report.method.done();
        cx.progress.collection_done(report);
        cx.ui.ok(&format!(
            "{} records, {how} ({})",
            entry.records,
            human_size(entry.size_bytes)
        ));
        done.push((collection.name.to_string(), entry));
    }
    Ok(done)
}

/// `--progress json`: the end of a collection's phase, with its records and bytes when it
/// was backed up (`entry`).
fn phase_finished(cx: &Context, collection: &str, entry: Option<&CollectionEntry>) {
    let made = match entry {
        Some(entry) => serde_json::json!({ "records": entry.records, "bytes": entry.size_bytes }),
        None => serde_json::json!({}),
    };
    cx.ui
        .phase_finished("collection", Some(collection), entry.is_some(), made);
}

/// Runs one collection's job. A panic (a bug in aimem) fails that collection like any other
/// error instead of unwinding past the cleanup, which then still deletes the run's server
/// snapshots and staging folder (the undo log's lock survives it, see [`lock`]).
fn caught<T>(collection: &str, job: impl FnOnce() -> Backed<T>) -> Backed<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or_else(|_| {
        Err(BackupError::Panicked {
            collection: collection.to_string(),
        })
    })
}

/// Syncs a downloaded snapshot file to the disk; a full disk fails with the disk-space status.
fn sync_file(path: &Utf8Path) -> Backed {
    std::fs::File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|source| BackupError::Folder {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;
    use crate::failure::ExitStatus;

    #[test]
    fn a_panicking_job_fails_its_collection_instead_of_unwinding() {
        let outcome: Backed<()> = caught("notes", || panic!("a bug"));
        let failure = outcome.expect_err("a failure");
        assert_eq!(failure.exit_status(), Exit::Failed);
        assert!(failure.to_string().contains("`notes`"));
        assert_eq!(caught("notes", || Ok(7)).ok(), Some(7));
    }
}
