//! Selective restore (`restore --collection C --filter JSON`): the backed-up points that match
//! a Qdrant filter merged into the live collection, nothing else of it changed.
//!
//! So that the filter means exactly what it means in Qdrant, the backup is loaded into a
//! temporary collection on the same server (any format, through the ordinary restore of a
//! new collection) and the filter is run there. The temporary collection is journaled before
//! it is made and always deleted (a killed run's is deleted by the next run against the
//! server). Before the merge writes anything, every live point it will overwrite is saved
//! into a local file (the logical format), and the ids it will add are kept ([`MergeUndo`], in
//! the undo log): on a failure or a signal the rollback writes the saved points back and
//! deletes the added ones.

use std::time::Instant;

use camino::Utf8PathBuf;
use serde::Serialize;
use serde_json::Value;

use super::act::{self, Context, StepError, qdrant};
use super::journal;
use super::plan::{Action, Planned, Source};
use super::rollback::Undo;
use crate::logical::columns::Columns;
use crate::logical::point::{Point, PointId};
use crate::logical::read::PointsReader;
use crate::logical::write::PointsWriter;
use crate::names::{SafeName, TEMPORARY_PREFIX};

/// Points per page read from the temporary collection and written into the live one.
const PAGE: usize = 256;

/// What a merge did, or (a dry run) would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MergeReport {
    /// The live collection merged into.
    pub collection: String,
    /// Backed-up points that match the filter.
    pub matched: u64,
    /// Of those, the ones that exist in the live collection now (overwritten by the merge).
    pub existing: u64,
    /// True once the matching points are written (a rollback may undo them after: see the
    /// report's `rollback`).
    pub merged: bool,
    /// The local copy of the overwritten live points (kept after the run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved: Option<String>,
    pub seconds: f64,
}

/// A fresh temporary collection name for this run.
pub fn temporary_name(stamp: &str) -> Result<SafeName, StepError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let stamp: String = stamp
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect::<String>();
    let name = format!("{TEMPORARY_PREFIX}{stamp}-{}-{nanos:x}", std::process::id());
    SafeName::new(&name).map_err(|e| StepError::Check {
        collection: name.clone(),
        detail: format!("not a name for a temporary collection: {e}"),
    })
}

/// Merges into `source.target` the points of `source`'s backup that match `filter`; with
/// `dry_run` only counts them. `undo` holds the temporary collection (deleted on a failure by
/// the caller's rollback as one this run created); once it writes into the live collection,
/// `undo.merged` says how to undo that, and the caller's rollback does on any failure or
/// signal.
pub fn merge(
    cx: &Context,
    source: &Source,
    filter: &Value,
    dry_run: bool,
    undo: &mut Undo,
    report: &mut MergeReport,
) -> Result<(), StepError> {
    let started = Instant::now();
    let live = source.target.as_str();
    report.collection = live.to_string();
    let temporary = temporary_name(&cx.stamp)?;
    // A name this run makes up, checked unused: only then is the collection provably ours.
    if cx
        .client
        .collection_exists(&temporary)
        .map_err(qdrant("checking", &temporary))?
    {
        return Err(StepError::Check {
            collection: temporary.to_string(),
            detail: "a collection of that name exists already; run the restore again".into(),
        });
    }
    journal::record_temp_collection(undo.journal.as_ref(), &temporary)
        .map_err(|source| StepError::Journal { source })?;
    let result = merge_through(cx, source, filter, dry_run, undo, report, &temporary);
    // Always gone, whatever happened, when this run made it (it only ever held a copy of the
    // backup); never when its creation was refused (another's of the same name).
    let made = undo.created.iter().any(|c| *c == *temporary);
    match made {
        false => journal::record_temp_collection_gone(undo.journal.as_ref(), &temporary),
        true => match cx.client.delete_collection(&temporary) {
            Ok(_) => {
                journal::record_temp_collection_gone(undo.journal.as_ref(), &temporary);
                undo.created.retain(|c| *c != *temporary);
            }
            Err(e) => cx.ui.warn(&format!(
                "could not delete the temporary collection `{temporary}`: {e} (the next aimem run against this server deletes it)"
            )),
        },
    }
    report.seconds = started.elapsed().as_secs_f64();
    result
}

fn merge_through(
    cx: &Context,
    source: &Source,
    filter: &Value,
    dry_run: bool,
    undo: &mut Undo,
    report: &mut MergeReport,
    temporary: &SafeName,
) -> Result<(), StepError> {
    let live = source.target.as_str();
    cx.ui.step(&format!(
        "Loading the backup of `{}` into the temporary collection `{temporary}`...",
        source.entry.name
    ));
    let staged = Planned {
        source: Source {
            target: temporary.clone(),
            ..source.clone()
        },
        action: Action::Create,
    };
    act::restore_one(cx, &staged, undo, &|| act::stopped(cx.stop), true)?;
    let matched = cx
        .client
        .count_exact_where(temporary, filter)
        .map_err(qdrant("filtering", temporary))?;
    report.matched = matched;
    if dry_run {
        let (existing, _) = compare_live(cx, temporary, live, filter, |_| Ok(()))?;
        report.existing = existing;
        cx.ui.ok(&format!(
            "{matched} backed-up points match the filter; {existing} of them exist in `{live}`"
        ));
        return Ok(());
    }
    // One pass: what is saved and what counts as added are read together.
    let (saved, existing, added) = save_live(cx, temporary, live, filter, undo)?;
    report.existing = existing;
    cx.ui.ok(&format!(
        "{matched} backed-up points match the filter; {existing} of them exist in `{live}`, saved first"
    ));
    report.saved = Some(saved.to_string());
    // From the first write on, the rollback undoes the merge.
    undo.merged = Some(MergeUndo {
        collection: live.to_string(),
        saved: saved.clone(),
        added,
    });
    cx.ui
        .step(&format!("Merging {matched} points into `{live}`..."));
    write_matching(cx, temporary, live, filter)?;
    report.merged = true;
    cx.ui.ok(&format!(
        "{matched} points merged into `{live}` ({existing} overwritten, {} added); the overwritten ones are saved in {saved}",
        matched.saturating_sub(existing)
    ));
    Ok(())
}

/// Walks the matching points of the temporary collection page by page (ids in order), `each`
/// given every page.
fn each_page(
    cx: &Context,
    temporary: &str,
    filter: &Value,
    mut each: impl FnMut(Vec<Point>) -> Result<(), StepError>,
) -> Result<(), StepError> {
    let mut offset: Option<PointId> = None;
    loop {
        act::stopped(cx.stop)?;
        let page = cx
            .client
            .scroll_where(temporary, offset.as_ref(), PAGE, None, Some(filter))
            .map_err(qdrant("reading", temporary))?;
        if !page.points.is_empty() {
            each(page.points)?;
        }
        match page.next {
            Some(next) => offset = Some(next),
            None => return Ok(()),
        }
    }
}

/// Walks the matching points and the live points of the same ids: how many exist live, and
/// those that do not (the merge adds them; a rollback deletes them). `each_live` is given every
/// live point found (saved before a merge).
fn compare_live(
    cx: &Context,
    temporary: &str,
    live: &str,
    filter: &Value,
    mut each_live: impl FnMut(&Point) -> Result<(), StepError>,
) -> Result<(u64, Vec<Added>), StepError> {
    let mut existing = 0u64;
    let mut added = Vec::new();
    each_page(cx, temporary, filter, |page| {
        let ids: Vec<PointId> = page.iter().map(|p| p.id.clone()).collect();
        let found = cx
            .client
            .retrieve(live, &ids)
            .map_err(qdrant("reading", live))?;
        existing += found.len() as u64;
        for point in &found {
            each_live(point)?;
        }
        let found: std::collections::BTreeSet<PointId> = found.into_iter().map(|p| p.id).collect();
        added.extend(
            page.into_iter()
                .filter(|p| !found.contains(&p.id))
                .map(|p| Added {
                    id: p.id,
                    shard_key: p.shard_key,
                }),
        );
        Ok(())
    })?;
    Ok((existing, added))
}

/// A point the merge adds: deleted again by a rollback (under its shard key, when custom
/// sharding gives it one).
#[derive(Debug)]
pub struct Added {
    pub id: PointId,
    pub shard_key: Option<Value>,
}

/// Saves every live point the merge will overwrite into a file of the pre-restore folder
/// (synced before the first write): `merge-<collection>.parquet`.
fn save_live(
    cx: &Context,
    temporary: &str,
    live: &str,
    filter: &Value,
    undo: &mut Undo,
) -> Result<(Utf8PathBuf, u64, Vec<Added>), StepError> {
    let folder = act::prerestore_folder(cx, undo)?;
    let path = folder.join(format!("merge-{live}.parquet"));
    let io = |source: std::io::Error| StepError::Io {
        path: path.to_string(),
        source,
    };
    let info = cx
        .client
        .collection_info(live)
        .map_err(qdrant("reading", live))?;
    let params = info
        .pointer("/config/params")
        .cloned()
        .unwrap_or(Value::Null);
    let encode = |e: crate::logical::LogicalError| StepError::Io {
        path: path.to_string(),
        source: std::io::Error::other(e.to_string()),
    };
    let columns = Columns::of_params(&params).map_err(encode)?;
    let file = crate::manifest::layout::private_file(&path).map_err(io)?;
    let mut writer = PointsWriter::new(file, columns).map_err(encode)?;
    let (existing, added) = compare_live(cx, temporary, live, filter, |point| {
        writer.push(point).map_err(encode)
    })?;
    let (_, file) = writer.finish().map_err(encode)?;
    file.sync_all().map_err(io)?;
    Ok((path, existing, added))
}

/// Upserts the matching points as backed up into the live collection (waiting for each).
fn write_matching(
    cx: &Context,
    temporary: &str,
    live: &str,
    filter: &Value,
) -> Result<(), StepError> {
    each_page(cx, temporary, filter, |page| {
        upsert_by_key(cx.client, live, page)
    })
}

/// Upserts `points` into `collection`, one request per shard key (custom sharding) or one.
fn upsert_by_key(
    client: &crate::qdrant::Client,
    collection: &str,
    mut points: Vec<Point>,
) -> Result<(), StepError> {
    while !points.is_empty() {
        let key = points[0].shard_key.clone();
        let split = points
            .iter()
            .position(|p| p.shard_key != key)
            .unwrap_or(points.len());
        let rest = points.split_off(split);
        for point in &mut points {
            point.shard_key = None;
        }
        client
            .upsert_points(collection, &points, key.as_ref(), true)
            .map_err(qdrant("merging into", collection))?;
        points = rest;
    }
    Ok(())
}

/// What undoes a merge: the live points it overwrote, saved before its first write, and the
/// ids it added.
#[derive(Debug)]
pub struct MergeUndo {
    pub collection: String,
    /// The overwritten points, in the logical format.
    pub saved: Utf8PathBuf,
    pub added: Vec<Added>,
}

impl MergeUndo {
    /// Writes the saved live points back and deletes the ones the merge added. Not stopped
    /// by a signal: this is the rollback.
    pub fn put_back(&self, client: &crate::qdrant::Client) -> Result<(), String> {
        let live = self.collection.as_str();
        let file = std::fs::File::open(&self.saved).map_err(|e| e.to_string())?;
        let reader = PointsReader::open(file).map_err(|e| e.to_string())?;
        let mut page = Vec::with_capacity(PAGE);
        for point in reader.points().map_err(|e| e.to_string())? {
            page.push(point.map_err(|e| e.to_string())?);
            if page.len() == PAGE {
                upsert_by_key(client, live, std::mem::take(&mut page))
                    .map_err(|e| e.to_string())?;
            }
        }
        upsert_by_key(client, live, page).map_err(|e| e.to_string())?;
        for chunk in self.added.chunks(PAGE) {
            let mut keys: Vec<Option<&Value>> =
                chunk.iter().map(|a| a.shard_key.as_ref()).collect();
            keys.dedup();
            for key in keys {
                let ids: Vec<PointId> = chunk
                    .iter()
                    .filter(|a| a.shard_key.as_ref() == key)
                    .map(|a| a.id.clone())
                    .collect();
                client
                    .delete_points(live, &ids, key)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}
