//! The points of a logical backup loaded into a collection: each Parquet file decoded by a
//! reader thread into batches, sent by a few sender threads as upserts that do not wait for
//! the points to be applied (`wait=false`), so at most [`SENDERS`] requests are in flight and
//! at most [`QUEUED`] batches wait between them: memory stays bounded whatever the size of
//! the collection. The caller waits for the points to be applied (the exact count) after.
//!
//! A custom-sharded collection's batches hold points of one shard key each (an upsert names
//! one key for all its points).

use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

use super::source::{PointsFile, PointsSource};
use crate::engine::restore::act::{Context, StepError};
use crate::logical::point::Point;
use crate::logical::read::PointsReader;
use crate::qdrant::QdrantError;

/// Points per upsert.
pub const BATCH: usize = 256;
/// Upserts in flight at once.
pub const SENDERS: usize = 4;
/// Batches decoded ahead of the senders.
const QUEUED: usize = 2;
/// Files decoded at once: one decoder keeps four senders busy (the server's indexing, not
/// the decoding, sets the pace).
const READERS: usize = 1;

/// One upsert: points of one shard key (none without custom sharding).
struct Batch {
    points: Vec<Point>,
    shard_key: Option<Value>,
}

/// Upserts every point of `points` into `target`. The first failure stops the others.
pub(super) fn load(
    cx: &Context,
    target: &str,
    points: &PointsSource,
    go_on: &dyn Fn() -> Result<(), StepError>,
) -> Result<(), StepError> {
    let failure: Mutex<Option<StepError>> = Mutex::new(None);
    let failed = || {
        failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    };
    let fail = |e: StepError| {
        failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(e);
    };
    let next_file = Mutex::new(points.files.iter());
    let (batches, to_send) = mpsc::sync_channel::<Batch>(QUEUED);
    let to_send = Mutex::new(to_send);
    std::thread::scope(|scope| {
        for _ in 0..READERS.min(points.files.len()) {
            let batches = batches.clone();
            let (next_file, failed, fail) = (&next_file, &failed, &fail);
            scope.spawn(move || {
                loop {
                    let file = next_file
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .next();
                    let Some(file) = file else { return };
                    if failed() || cx.stop.requested().is_some() {
                        return;
                    }
                    if let Err(e) = read_file(target, file, &batches, failed) {
                        fail(e);
                        return;
                    }
                }
            });
        }
        drop(batches);
        for _ in 0..SENDERS {
            let (to_send, failed, fail) = (&to_send, &failed, &fail);
            scope.spawn(move || {
                loop {
                    let batch = to_send
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .recv();
                    let Ok(batch) = batch else { return };
                    if failed() || cx.stop.requested().is_some() {
                        continue;
                    }
                    let sent = cx.client.upsert_points(
                        target,
                        &batch.points,
                        batch.shard_key.as_ref(),
                        false,
                    );
                    if let Err(e) = sent {
                        fail(match e {
                            QdrantError::Interrupted => StepError::Interrupted,
                            source => StepError::Qdrant {
                                step: "loading points into",
                                collection: target.to_string(),
                                source,
                            },
                        });
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(e);
    }
    go_on()
}

/// Decodes one file into batches; a file that does not read back whole as the manifest
/// records it fails the restore (its checksum was verified, so this is aimem's or the disk's
/// fault, not the backup's).
fn read_file(
    target: &str,
    file: &PointsFile,
    batches: &mpsc::SyncSender<Batch>,
    failed: &dyn Fn() -> bool,
) -> Result<(), StepError> {
    let damaged = |detail: String| StepError::Load {
        collection: target.to_string(),
        file: file.relative.clone(),
        detail,
    };
    let handle = file.file.try_clone().map_err(|e| damaged(e.to_string()))?;
    let reader = PointsReader::open(handle).map_err(|e| damaged(e.to_string()))?;
    if reader.rows() != file.rows {
        return Err(damaged(format!(
            "it holds {} points, the manifest records {}",
            reader.rows(),
            file.rows
        )));
    }
    let mut batch = Batch {
        points: Vec::with_capacity(BATCH),
        shard_key: None,
    };
    let send = |batch: &mut Batch, next_key: Option<Value>| -> bool {
        let full = std::mem::replace(
            batch,
            Batch {
                points: Vec::with_capacity(BATCH),
                shard_key: next_key,
            },
        );
        full.points.is_empty() || batches.send(full).is_ok()
    };
    for point in reader.points().map_err(|e| damaged(e.to_string()))? {
        if failed() {
            return Ok(());
        }
        let mut point = point.map_err(|e| damaged(e.to_string()))?;
        let key = point.shard_key.take();
        let full = batch.points.len() == BATCH;
        let other_key = key != batch.shard_key && !batch.points.is_empty();
        if (full || other_key) && !send(&mut batch, key.clone()) {
            return Ok(());
        }
        batch.shard_key = key;
        batch.points.push(point);
    }
    send(&mut batch, None);
    Ok(())
}
