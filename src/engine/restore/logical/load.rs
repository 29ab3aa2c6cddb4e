//! The points of a logical backup loaded into a collection: a reader thread decodes the
//! Parquet files column by column and writes each upsert's JSON body straight from the
//! decoded rows ([`UpsertBody`]), of at most [`BATCH`] points and [`BATCH_BYTES`] bytes (a
//! bigger point alone); a few sender threads send them as upserts that do not wait
//! for the points to be applied (`wait=false`). The bodies are a fixed pool of
//! [`BODIES`] buffers passed round (reader → senders → reader): at most [`SENDERS`] requests
//! are in flight, and memory stays at the pool's size whatever the size of the collection.
//! The caller waits for the points to be applied (the exact count) after.
//!
//! A custom-sharded collection's bodies hold points of one shard key each (an upsert names
//! one key for all its points).

use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};

use super::source::{PointsFile, PointsSource};
use crate::engine::restore::act::{Context, StepError};
use crate::logical::read::PointsReader;
use crate::qdrant::QdrantError;
use crate::qdrant::upsert::UpsertBody;

/// Points per upsert at most: about 2 MiB of JSON with a 768-d vector.
pub const BATCH: usize = 256;
/// Bytes an upsert's body may reach, at most: one goes once the next point would take it past
/// this, and a point bigger than this goes alone. A quarter of the 32 MiB Qdrant takes in one
/// request by default (`service.max_request_size_mb`): 256 points with payloads of 130 KiB
/// would pass that in one body.
pub const BATCH_BYTES: usize = 8 << 20;
/// Upserts in flight at once, per collection. The server's parsing and writing of the points
/// sets the pace, not aimem's decoding: on two cores, two collections at once loaded their
/// 80,000 points as fast with one or two in flight as with four (which cost the server more
/// CPU and aimem 12 MiB more); two keep the server busy when one collection loads alone.
pub const SENDERS: usize = 2;
/// Bodies in circulation: one being written, one ready, and one per sender.
const BODIES: usize = SENDERS + 2;

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
    // Full bodies to the senders, and empty ones back: the pool is all there is.
    let (full, to_send) = mpsc::sync_channel::<UpsertBody>(BODIES);
    let (free, emptied) = mpsc::sync_channel::<UpsertBody>(BODIES);
    for _ in 0..BODIES {
        let _ = free.send(UpsertBody::default());
    }
    let to_send = Mutex::new(to_send);
    std::thread::scope(|scope| {
        let (failed_ref, fail_ref) = (&failed, &fail);
        scope.spawn(move || {
            let stopped = || failed_ref() || cx.stop.requested().is_some();
            let pool = Pool {
                full,
                emptied,
                stopped: &stopped,
            };
            // One body at a time is written, across files: it goes when full.
            let Some(mut body) = pool.take(None) else {
                return;
            };
            for file in &points.files {
                if stopped() {
                    return;
                }
                match read_file(target, file, &pool, &mut body) {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        fail_ref(e);
                        return;
                    }
                }
            }
            pool.send(body);
        });
        for _ in 0..SENDERS {
            let (to_send, failed, fail, free) = (&to_send, &failed, &fail, free.clone());
            scope.spawn(move || {
                loop {
                    let body = to_send
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .recv();
                    let Ok(body) = body else { return };
                    if !failed() && cx.stop.requested().is_none() {
                        let sent = cx.client.upsert_body(target, &body, false);
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
                    // Back to the reader (gone after a failure: then it is dropped).
                    let _ = free.send(body);
                }
            });
        }
        drop(free);
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(e);
    }
    go_on()
}

/// The reader's end of the pool of bodies.
struct Pool<'a> {
    full: mpsc::SyncSender<UpsertBody>,
    emptied: mpsc::Receiver<UpsertBody>,
    stopped: &'a dyn Fn() -> bool,
}

impl Pool<'_> {
    /// An empty body for points of `shard_key`; `None` once the senders are gone.
    fn take(&self, shard_key: Option<serde_json::Value>) -> Option<UpsertBody> {
        let mut body = self.emptied.recv().ok()?;
        body.reset(shard_key);
        Some(body)
    }

    /// Hands `body` to the senders; false when they are gone or the load stops. An empty
    /// body (a backup without points) is not sent.
    fn send(&self, mut body: UpsertBody) -> bool {
        if (self.stopped)() {
            return false;
        }
        if body.is_empty() {
            return true;
        }
        if body.finish().is_err() {
            return false;
        }
        self.full.send(body).is_ok()
    }
}

/// Decodes one file into bodies; a file that does not read back whole as the manifest
/// records it fails the restore (its checksum was verified, so this is aimem's or the disk's
/// fault, not the backup's). Ok(false): the load stops (a failure elsewhere, or a signal).
fn read_file(
    target: &str,
    file: &PointsFile,
    pool: &Pool<'_>,
    body: &mut UpsertBody,
) -> Result<bool, StepError> {
    let damaged = |detail: String| StepError::Load {
        collection: target.to_string(),
        file: file.relative.clone(),
        detail,
    };
    let reader =
        PointsReader::open_from(file.file.reader_from(0)).map_err(|e| damaged(e.to_string()))?;
    if reader.rows() != file.rows {
        return Err(damaged(format!(
            "it holds {} points, the manifest records {}",
            reader.rows(),
            file.rows
        )));
    }
    let mut chunks = reader.chunks();
    while chunks.advance().map_err(|e| damaged(e.to_string()))? {
        if (pool.stopped)() {
            return Ok(false);
        }
        let chunk = chunks.chunk();
        for row in 0..chunk.rows() {
            let point = chunk.point(row).map_err(|e| damaged(e.to_string()))?;
            let full = body.len() == BATCH;
            let other_key = point.shard_key.as_ref() != body.shard_key() && !body.is_empty();
            if full || other_key {
                if !send_and_take(pool, body, point.shard_key.clone()) {
                    return Ok(false);
                }
            } else if body.is_empty() {
                body.reset(point.shard_key.clone());
            }
            let pushed = body
                .push_within(&point, BATCH_BYTES)
                .map_err(|e| damaged(e.to_string()))?;
            if !pushed {
                // It would take the body past its bytes: it starts the next one.
                if !send_and_take(pool, body, point.shard_key.clone()) {
                    return Ok(false);
                }
                body.push(&point).map_err(|e| damaged(e.to_string()))?;
            }
        }
    }
    Ok(true)
}

/// Hands `body` to the senders and takes an empty one for points of `shard_key` in its place;
/// false when the load stops.
fn send_and_take(
    pool: &Pool<'_>,
    body: &mut UpsertBody,
    shard_key: Option<serde_json::Value>,
) -> bool {
    if !pool.send(std::mem::take(body)) {
        return false;
    }
    match pool.take(shard_key) {
        Some(next) => {
            *body = next;
            true
        }
        None => false,
    }
}
