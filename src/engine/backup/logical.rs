//! `backup --format logical`: a collection's points exported by scroll into Parquet files
//! (docs/logical-format.md), with the definition that recreates the collection anywhere.
//!
//! The export is taken like a snapshot, inside [`consistent`]: count and schema before and
//! after, taken again when points were written meanwhile (a scroll is no point-in-time view).
//! It runs in several id ranges at once, each its own file (`points-<n>.parquet`): an ids-only
//! scroll first finds where each range starts, then each range is read by one thread while
//! another encodes and writes the page before (one page in flight per range), so fetching,
//! decoding, encoding and writing overlap and memory stays bounded by the pages and one row
//! group per range, whatever the collection's size. A custom-sharded collection is read one
//! shard key at a time instead, so that every row carries its key.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::time::Instant;

use camino::Utf8PathBuf;
use miette::Diagnostic;
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::consistent::{self, Consistent};
use super::dest::Dest;
use super::take::Method;
use super::{Backed, CollectionDone, Context, Planned, collection_error, stopped};
use crate::logical::LogicalError;
use crate::logical::columns::Columns;
use crate::logical::point::{Point, PointId};
use crate::logical::write::{PointsWriter, rows_per_file};
use crate::manifest::CollectionEntry;
use crate::manifest::cluster::ShardKey;
use crate::manifest::points::{
    Definition, MAX_POINTS_FILES, PointsFile, PointsRecord, points_file, points_file_name,
};
use crate::qdrant::{Client, QdrantError};
use crate::repo::NewFile;

/// Points per scroll page: large enough that a request's overhead is small next to its
/// vectors, small enough that a few pages per range stay a few MiB.
pub const PAGE: usize = 256;
/// Id ranges a collection is split into (fewer for a small one), and the run's range slots
/// (or `--jobs`, if more).
pub const RANGES: usize = 4;
/// Ids per page of the ids-only scroll that finds where the ranges start.
const ID_PAGE: usize = 10_000;

/// Why a collection's points could not be exported.
#[derive(Debug, Error, Diagnostic)]
pub enum ExportError {
    #[error("{0}")]
    #[diagnostic(transparent)]
    Qdrant(QdrantError),
    #[error("writing {path} failed: {source}")]
    #[diagnostic(help(
        "Check the backup root's disk (space, permissions) and run the backup again."
    ))]
    Write {
        path: Utf8PathBuf,
        source: std::io::Error,
    },
    #[error("encoding {path} failed: {source}")]
    #[diagnostic(help(
        "The server answered points aimem cannot write as its logical format: run with -v and report it."
    ))]
    Encode {
        path: Utf8PathBuf,
        source: LogicalError,
    },
    #[error("encoding {path} failed: {source}")]
    #[diagnostic(help(
        "aimem cannot restore a point that big from a logical backup: back this collection up with --format snapshot."
    ))]
    Unrestorable {
        path: Utf8PathBuf,
        source: LogicalError,
    },
    #[error("the collection's definition cannot be exported: {0}")]
    #[diagnostic(help(
        "aimem's logical format takes dense, sparse and multi vectors; back this collection up with --format snapshot."
    ))]
    Definition(LogicalError),
    #[error("the export stopped: a signal arrived")]
    Stopped,
    #[error("its shard keys changed while its points were read")]
    #[diagnostic(help("Run the backup again once no shard key is being created or deleted."))]
    KeysChanged,
    #[error("reading one of its id ranges failed: aimem hit an internal error (above)")]
    #[diagnostic(help("Run the backup again; if it happens again, report the message above."))]
    Panicked,
}

impl ExportError {
    /// A full disk under the backup root.
    pub fn is_out_of_space(&self) -> bool {
        matches!(self, ExportError::Write { source, .. } if super::disk::is_out_of_space(source))
    }
}

/// The id ranges read at once in a run: a counting semaphore that the collections backed up
/// at the same time share, so that the run reads as many ranges at once from start to end
/// (a fixed share per collection would leave the last collection one range while the others'
/// shares sit idle).
pub(super) struct RangeSlots {
    total: usize,
    free: Mutex<usize>,
    freed: Condvar,
}

impl RangeSlots {
    pub(super) fn new(total: usize) -> RangeSlots {
        let total = total.max(1);
        RangeSlots {
            total,
            free: Mutex::new(total),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free slot; it is given back when the guard drops (a panic too). Holders
    /// give theirs back within a page of a signal, so a waiter never waits long for one.
    fn take(&self) -> RangeSlot<'_> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        RangeSlot(self)
    }
}

/// A taken range slot.
struct RangeSlot<'s>(&'s RangeSlots);

impl Drop for RangeSlot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
    }
}

/// One range of the export: the points from `start` (the first without) up to, not including,
/// `end` (to the last without), of `shard_key`'s shards when the collection is custom-sharded.
#[derive(Debug, Clone)]
struct Range {
    start: Option<PointId>,
    end: Option<PointId>,
    shard_key: Option<Value>,
}

/// Backs up `collection`'s points into `snapshot_dir/<name>/points-<n>.parquet`; returns its
/// manifest entry and what `--json` says about it.
pub(super) fn backup_collection(
    cx: &Context,
    collection: &Planned,
    snapshot_dir: &Dest,
) -> Backed<(CollectionEntry, CollectionDone)> {
    let name = &collection.name;
    let started = Instant::now();
    let folder = snapshot_dir.join(name.as_str());
    folder.create_dir().map_err(|source| {
        collection_error(
            name,
            ExportError::Write {
                path: folder.shown().into(),
                source,
            },
        )
    })?;
    // The keys counted around the export; each attempt reads them again with the definition.
    let shard_keys = keys_of(cx, name, &read_config(cx, name)?)?;
    let Consistent {
        taken: attempt,
        records,
        records_max,
        key_records: _,
        schema,
    } = consistent::consistent(
        cx,
        name,
        &shard_keys,
        consistent::Scope::Points,
        || attempt(cx, name, &folder, &shard_keys),
        |attempt| remove(&folder, &attempt.files),
    )?;
    let Attempt { files, config } = attempt;
    // The counts around the export may agree while points came and went inside it (a scroll
    // is no point-in-time view): the rows written are what the backup holds.
    let rows: u64 = files.iter().map(|f| f.rows).sum();
    let (low, high) = (records.min(rows), records_max.unwrap_or(records).max(rows));
    let (records, records_max) = match low == high {
        true => (low, None),
        false => {
            cx.ui.warn(&format!(
                "`{name}` changed while its points were read: the backup holds {rows} of the {low} to {high} points it had"
            ));
            (low, Some(high))
        }
    };
    // One file per key, in the keys' order: its rows are the key's exact count in the backup.
    let key_records = match shard_keys.is_empty() {
        true => Vec::new(),
        false => files.iter().map(|f| f.rows).collect(),
    };
    let aliases = cx
        .client
        .aliases_of(name)
        .map_err(|e| collection_error(name, e))?;
    let size: u64 = files.iter().map(|f| f.size_bytes).sum();
    let record = PointsRecord {
        format: crate::logical::FORMAT_VERSION,
        files,
        definition: Definition {
            config,
            payload_schema: schema
                .as_value()
                .get("payload_schema")
                .cloned()
                .unwrap_or_default(),
            aliases,
            shard_keys: shard_keys.clone(),
            key_records,
        },
    };
    let report = CollectionDone {
        name: name.to_string(),
        records,
        records_max,
        size,
        sha256: String::new(),
        snapshot: String::new(),
        server_snapshot_deleted: true,
        method: Method::Exported,
        seconds: started.elapsed().as_secs_f64(),
    };
    let entry = CollectionEntry {
        name: name.to_string(),
        records,
        records_max,
        backup: crate::manifest::CollectionBackup::Points(record),
        size_bytes: size,
        schema: Some(schema.as_value().clone()),
        sha256: None,
        schema_digest: Some(schema.digest()),
    };
    Ok((entry, report))
}

/// One attempt's files, and the collection's config as read with them.
struct Attempt {
    files: Vec<PointsFile>,
    config: Value,
}

/// `config` of `GET /collections/{name}`.
fn read_config(cx: &Context, name: &str) -> Backed<Value> {
    let info = cx
        .client
        .collection_info(name)
        .map_err(|e| collection_error(name, e))?;
    Ok(info.get("config").cloned().unwrap_or(Value::Null))
}

/// A custom-sharded collection's keys in creation order (none otherwise).
fn keys_of(cx: &Context, name: &str, config: &Value) -> Backed<Vec<ShardKey>> {
    match config
        .pointer("/params/sharding_method")
        .and_then(Value::as_str)
        == Some("custom")
    {
        true => cx
            .client
            .shard_keys(name)
            .map_err(|e| collection_error(name, e)),
        false => Ok(Vec::new()),
    }
}

/// One attempt inside the consistency window: the definition read again (a change to it
/// meanwhile shows as a schema change and the attempt is taken again), then the points.
fn attempt(
    cx: &Context,
    name: &crate::names::SafeName,
    folder: &Dest,
    counted_keys: &[ShardKey],
) -> Backed<Attempt> {
    let config = read_config(cx, name)?;
    let params = config.get("params").cloned().unwrap_or(Value::Null);
    let columns = Columns::of_params(&params)
        .map_err(|e| collection_error(name, ExportError::Definition(e)))?;
    if keys_of(cx, name, &config)? != counted_keys {
        return Err(collection_error(name, ExportError::KeysChanged));
    }
    let files = export(cx, name, folder, &columns, counted_keys).map_err(|e| match e {
        ExportError::Stopped => super::stopped(cx.stop)
            .err()
            .unwrap_or_else(|| collection_error(name, ExportError::Stopped)),
        e => collection_error(name, e),
    })?;
    Ok(Attempt { files, config })
}

/// Deletes an attempt's files (it is taken again).
fn remove(folder: &Dest, files: &[PointsFile]) {
    for index in 0..files.len() {
        let _ = folder.join(&points_file_name(index)).remove_file();
    }
}

/// One attempt: every range exported at once, each into its own file.
fn export(
    cx: &Context,
    name: &crate::names::SafeName,
    folder: &Dest,
    columns: &Columns,
    shard_keys: &[ShardKey],
) -> Result<Vec<PointsFile>, ExportError> {
    let ranges = match shard_keys.is_empty() {
        // (A custom-sharded collection without keys too: one empty file.)
        true => id_ranges(cx.client, name, columns, cx.stop)?,
        false => shard_keys
            .iter()
            .map(|key| Range {
                start: None,
                end: None,
                shard_key: Some(key.to_value()),
            })
            .collect(),
    };
    // Workers take the ranges in turn, each holding one of the run's range slots while it
    // reads one: the collections backed up at once share [`RangeSlots`], so a collection left
    // alone at the end of the run gets all of them.
    let workers = cx.range_slots.total.min(ranges.len()).max(1);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<Mutex<Option<Result<PointsFile, ExportError>>>> =
        ranges.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (next, failed, results, ranges) = (&next, &failed, &results, &ranges);
            scope.spawn(move || {
                loop {
                    let _slot = cx.range_slots.take();
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let (Some(range), Some(slot)) = (ranges.get(index), results.get(index)) else {
                        return;
                    };
                    let path = folder.join(&points_file_name(index));
                    let written = match failed.load(Ordering::SeqCst) {
                        // Another range failed: this one is not read at all.
                        true => Err(ExportError::Stopped),
                        false => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            export_range(cx, name, range, columns, &path, failed)
                        }))
                        .unwrap_or(Err(ExportError::Panicked)),
                    };
                    if written.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    let file = written.map(|written| PointsFile {
                        file: points_file(name, index),
                        size_bytes: written.size,
                        rows: written.rows,
                        sha256: written.sha256,
                    });
                    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(file);
                }
            });
        }
    });
    // The first real failure, not a range that stopped because of it.
    let results: Vec<Result<PointsFile, ExportError>> = results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .unwrap_or(Err(ExportError::Stopped))
        })
        .collect();
    let first_real = results
        .iter()
        .position(|r| matches!(r, Err(e) if !matches!(e, ExportError::Stopped)));
    let mut results = results;
    if let Some(i) = first_real {
        results.swap(0, i);
    }
    let mut files = Vec::with_capacity(results.len());
    let mut failure = None;
    for result in results {
        match result {
            Ok(file) => files.push(file),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    match failure {
        Some(e) => {
            for index in 0..ranges.len() {
                let _ = folder.join(&points_file_name(index)).remove_file();
            }
            Err(e)
        }
        None => Ok(files),
    }
}

/// Where each id range starts, from an ids-only scroll: [`RANGES`] ranges of about equal
/// counts, or more for a collection too big for that many files (each file's footer must stay
/// small, see [`rows_per_file`]); a collection smaller than two pages is one range.
fn id_ranges(
    client: &Client,
    name: &str,
    columns: &Columns,
    stop: &crate::signals::StopFlag,
) -> Result<Vec<Range>, ExportError> {
    let count = client.count_exact(name).map_err(ExportError::Qdrant)?;
    let ways = match count < (2 * PAGE) as u64 {
        true => 1,
        false => usize::try_from(count.div_ceil(rows_per_file(columns)))
            .unwrap_or(usize::MAX)
            .clamp(RANGES, MAX_POINTS_FILES),
    };
    let per_range = count.div_ceil(ways as u64).max(1);
    let mut starts: Vec<Option<PointId>> = vec![None];
    let mut seen = 0u64;
    let mut offset: Option<PointId> = None;
    while ways > 1 && starts.len() < ways {
        if stop.requested().is_some() {
            return Err(ExportError::Stopped);
        }
        let (ids, next) = client
            .scroll_ids(name, offset.as_ref(), ID_PAGE, None)
            .map_err(ExportError::Qdrant)?;
        for id in ids {
            if seen > 0 && seen % per_range == 0 && starts.len() < ways {
                starts.push(Some(id));
            }
            seen += 1;
        }
        match next {
            Some(next) => offset = Some(next),
            None => break,
        }
    }
    let ends = starts.iter().skip(1).cloned().chain([None]);
    Ok(starts
        .iter()
        .cloned()
        .zip(ends)
        .map(|(start, end)| Range {
            start,
            end,
            shard_key: None,
        })
        .collect())
}

/// What one range's file holds.
struct Written {
    rows: u64,
    size: u64,
    sha256: String,
}

/// Reads `range` page by page on this thread's helper while this thread encodes and writes
/// the page before into `path`.
fn export_range(
    cx: &Context,
    name: &str,
    range: &Range,
    columns: &Columns,
    target: &Dest,
    failed: &AtomicBool,
) -> Result<Written, ExportError> {
    let path = Utf8PathBuf::from(target.shown());
    let write_error = |source| ExportError::Write {
        path: path.clone(),
        source,
    };
    let file = target.create().map_err(write_error)?;
    let out = HashingFile::new(file);
    let write_failure = out.failed.clone();
    // A write error is the disk's (a full disk has its own exit status), whatever the Parquet
    // writer made of it; any other is the encoding's.
    let encode_error = |source: LogicalError| match write_failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
    {
        Some(source) => ExportError::Write {
            path: path.clone(),
            source,
        },
        None if matches!(source, LogicalError::Unrestorable(_)) => ExportError::Unrestorable {
            path: path.to_owned(),
            source,
        },
        None => ExportError::Encode {
            path: path.clone(),
            source,
        },
    };
    let mut writer = PointsWriter::new(out, columns.clone()).map_err(encode_error)?;
    std::thread::scope(|scope| -> Result<Written, ExportError> {
        // One page in flight: the reader fetches the next while this thread writes this one.
        let (pages, arriving) = mpsc::sync_channel::<Result<Vec<Point>, ExportError>>(1);
        scope.spawn(move || read_range(cx, name, range, pages, failed));
        for page in arriving {
            let page = page?;
            for point in &page {
                writer.push(point).map_err(encode_error)?;
            }
        }
        let (rows, out) = writer.finish().map_err(encode_error)?;
        let (file, sha256, size) = out.finish().map_err(write_error)?;
        file.finish().map_err(write_error)?;
        Ok(Written { rows, size, sha256 })
    })
}

/// Scrolls `range` and sends its pages (a custom-sharded collection's points with their key);
/// ends at the range's end, the collection's end, a failure, or when the writer is gone.
fn read_range(
    cx: &Context,
    name: &str,
    range: &Range,
    pages: mpsc::SyncSender<Result<Vec<Point>, ExportError>>,
    failed: &AtomicBool,
) {
    let mut offset = range.start.clone();
    // Points with big payloads make a page longer than the client reads: the page is asked
    // again with half as many points, down to one (a point longer than that cannot be read).
    let mut page_size = PAGE;
    loop {
        // A signal, or another range's failure: this one stops too.
        if stopped(cx.stop).is_err() || failed.load(Ordering::SeqCst) {
            let _ = pages.send(Err(ExportError::Stopped));
            return;
        }
        let page =
            match cx
                .client
                .scroll(name, offset.as_ref(), page_size, range.shard_key.as_ref())
            {
                Ok(page) => page,
                Err(QdrantError::AnswerTooLong { .. }) if page_size > 1 => {
                    page_size /= 2;
                    log::info!("`{name}`: a page of points was too long; asking for {page_size}");
                    continue;
                }
                Err(e) => {
                    let _ = pages.send(Err(ExportError::Qdrant(e)));
                    return;
                }
            };
        let mut points = page.points;
        // Ids come in Qdrant's order (integers, then UUIDs), which `PointId` orders alike.
        let reached_end = match &range.end {
            Some(end) => {
                let before = points.iter().take_while(|p| p.id < *end).count();
                let reached = before < points.len();
                points.truncate(before);
                reached
            }
            None => false,
        };
        if let Some(key) = &range.shard_key {
            for point in points.iter_mut().filter(|p| p.shard_key.is_none()) {
                point.shard_key = Some(key.clone());
            }
        }
        if !points.is_empty() && pages.send(Ok(points)).is_err() {
            return;
        }
        match (reached_end, page.next) {
            (false, Some(next)) if range.end.as_ref().is_none_or(|end| next < *end) => {
                offset = Some(next)
            }
            _ => return,
        }
    }
}

/// A file written through a SHA-256 of its bytes, keeping the first write error (the Parquet
/// writer's own error hides whether the disk was full).
struct HashingFile {
    file: Box<dyn NewFile>,
    hasher: Sha256,
    size: u64,
    failed: Arc<Mutex<Option<std::io::Error>>>,
}

impl HashingFile {
    fn new(file: Box<dyn NewFile>) -> HashingFile {
        HashingFile {
            file,
            hasher: Sha256::new(),
            size: 0,
            failed: Arc::default(),
        }
    }

    /// The file (to be finished), its SHA-256 in hex and its size; the first write error, if
    /// any.
    fn finish(mut self) -> std::io::Result<(Box<dyn NewFile>, String, u64)> {
        if let Some(e) = self
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            return Err(e);
        }
        self.file.flush()?;
        let digest = self.hasher.finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok((self.file, hex, self.size))
    }
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.file.write(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.size += n as u64;
                Ok(n)
            }
            Err(e) => {
                let kind = e.kind();
                let message = e.to_string();
                self.failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(e);
                Err(std::io::Error::new(kind, message))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_slots_are_shared_and_given_back() {
        let slots = RangeSlots::new(2);
        let (a, b) = (slots.take(), slots.take());
        let taken = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let _c = slots.take();
                taken.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(std::time::Duration::from_millis(100));
            // Both slots are held: the third taker waits.
            assert!(!taken.load(Ordering::SeqCst));
            drop(a);
        });
        assert!(taken.load(Ordering::SeqCst));
        drop(b);
        assert_eq!(*slots.free.lock().unwrap(), 2);
    }
}
