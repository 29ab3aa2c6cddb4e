//! Restoring a logical backup (docs/logical-format.md): the collection created from its
//! recorded definition in any layout ([`create`]), or an existing one emptied after its
//! pre-restore copy, then the points loaded from the Parquet files with upserts ([`load`]),
//! the payload indexes and aliases, and the check.
//!
//! A collection this run creates and that is big enough for Qdrant to index is loaded with
//! its vector indexing off, then given its recorded indexing threshold back, and an existing
//! one given the recorded threshold if a killed restore left it at 0 ([`deferral`]); the
//! check compares the threshold with the one the restore leaves.
//!
//! The contract is the snapshot restore's: what this run creates is in the undo log before it
//! is made (deleted on rollback), and an existing collection is saved (a snapshot, or a copy
//! of each shard on a cluster) and marked touched before its first point is deleted, so the
//! rollback puts it back whole.

pub mod create;
pub mod deferral;
pub mod load;
pub mod source;

use std::time::{Duration, Instant};

use serde_json::Value;

use super::act::{Context, StepError, qdrant};
use super::check::Against;
use super::plan::{Action, Planned, Source};
use super::rollback::Undo;
use crate::fingerprint::{self, Severity};
use source::PointsSource;

/// What the command line decides about a logical restore.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogicalOptions {
    /// `--shard-number`: the restored collection's shards (default: as recorded).
    pub shard_number: Option<u32>,
    /// `--replication-factor`: its replicas of each shard (default: as recorded, at most the
    /// cluster's peers).
    pub replication_factor: Option<u32>,
    /// `--allow-unknown-settings`: go on when the target server does not know a recorded
    /// setting (it is reported and left out).
    pub allow_unknown_settings: bool,
}

/// Schema paths that say how a collection is laid out, not what it is: a logical backup
/// restores into any layout, so they never fail its checks.
const LAYOUT_PATHS: [&str; 3] = [
    "params.shard_number",
    "params.replication_factor",
    "params.write_consistency_factor",
];

/// Whether schema difference `path` is one of layout only.
pub fn is_layout(path: &str) -> bool {
    LAYOUT_PATHS.contains(&path)
}

/// Restores one planned collection from its points: see the module's comment. Returns the
/// seconds it took.
pub(in crate::engine::restore) fn restore_one(
    cx: &Context,
    planned: &Planned,
    points: &PointsSource,
    undo: &mut Undo,
    go_on: &dyn Fn() -> Result<(), StepError>,
    named: bool,
) -> Result<Option<f64>, StepError> {
    let started = Instant::now();
    let source = &planned.source;
    let target = source.target.as_str();
    let created = match &planned.action {
        Action::Create => true,
        Action::Overwrite { .. } => false,
        Action::Refuse(_) => return Ok(None),
    };
    cx.ui.step(&format!(
        "  Restoring {target} ({} records from its points{})...",
        source.entry.records,
        match created {
            true => "",
            false => ", over the existing collection",
        }
    ));
    // An existing collection keeps its settings (its indexing threshold too, unless a killed
    // restore left it at 0: see `deferral`).
    let mut deferred = None;
    match &planned.action {
        Action::Overwrite {
            live,
            points: count,
            ..
        } => {
            super::act::save_existing(cx, source, live, *count, undo)?;
            go_on()?;
            // From here the live collection changes: the rollback puts its copy back.
            mark_touched(undo, target);
            empty(cx, target, live)?;
        }
        _ => {
            deferred = create::create(cx, source, points, undo)?;
            super::act::placement::wait_created_settled(cx, target)?;
        }
    }
    go_on()?;
    let expected = points.record.rows();
    load::load(cx, target, points, go_on)?;
    wait_applied(cx, target, expected, go_on)?;
    if created && let Some(fingerprint) = &source.fingerprint {
        super::indexes::build(cx.client, cx.stop, target, &fingerprint.payload_indexes())?;
    }
    wait_green(cx, target, go_on)?;
    let definition = &points.record.definition;
    match created {
        true => deferral::set_back(cx, target, deferred, go_on)?,
        false => deferral::as_recorded(cx, target, definition, undo, go_on)?,
    }
    check(cx, source, points, created)?;
    // Last, once the collection is known good; a selective restore's temporary collection
    // takes none.
    if !crate::names::is_temporary_collection(target) {
        create::aliases(cx, target, &points.record.definition.aliases, undo)?;
    }
    let recovered = match named {
        true => format!("`{target}` restored from its points"),
        false => "Collection restored from its points".to_string(),
    };
    cx.ui.ok(&format!("{recovered} ({expected} records)"));
    Ok(Some(started.elapsed().as_secs_f64()))
}

/// Deletes every point of `target` (a custom-sharded collection's key by key: Qdrant refuses
/// a delete without a key there).
fn empty(cx: &Context, target: &str, live: &fingerprint::Fingerprint) -> Result<(), StepError> {
    let all = serde_json::json!({});
    let custom = live
        .as_value()
        .pointer("/params/sharding_method")
        .and_then(Value::as_str)
        == Some("custom");
    if !custom {
        return cx
            .client
            .delete_points_where(target, &all, None)
            .map_err(qdrant("emptying", target));
    }
    let keys = cx
        .client
        .shard_keys(target)
        .map_err(qdrant("reading the shard keys of", target))?;
    for key in keys {
        cx.client
            .delete_points_where(target, &all, Some(&key.to_value()))
            .map_err(qdrant("emptying", target))?;
    }
    Ok(())
}

fn mark_touched(undo: &mut Undo, target: &str) {
    if let Some(saved) = undo.saved.iter_mut().find(|s| s.collection == target) {
        saved.touched = true;
    }
}

/// How often the count and the status are asked while waiting.
const POLL: Duration = Duration::from_millis(200);

/// Upserts sent without waiting are applied in the background: the barrier is the exact
/// count reaching what was sent (docs/qdrant.md, "Points": an empty upsert cannot serve).
fn wait_applied(
    cx: &Context,
    target: &str,
    expected: u64,
    go_on: &dyn Fn() -> Result<(), StepError>,
) -> Result<(), StepError> {
    let deadline = Instant::now() + cx.settle_limit;
    loop {
        go_on()?;
        let points = cx
            .client
            .count_exact(target)
            .map_err(qdrant("counting", target))?;
        if points >= expected {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(StepError::Check {
                collection: target.to_string(),
                detail: format!(
                    "{points} of the {expected} points sent were applied within {}s (--recovery-timeout): \
                     an upsert Qdrant queued may have failed on the server (see its log), or it needs longer",
                    cx.settle_limit.as_secs()
                ),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// The nodes whose view of the collection the waits read: on a cluster every peer, since each
/// reports the optimizations of the replicas it holds (a replica builds its index on its own,
/// so one peer may say green while another still builds); on a single node the node. Each
/// with its peer id on a cluster, for messages.
fn nodes<'c>(cx: &'c Context) -> Vec<(Option<u64>, &'c crate::qdrant::Client)> {
    match cx.topology.peers() {
        [] => vec![(None, cx.client)],
        peers => peers.iter().map(|p| (Some(p.peer_id), &p.client)).collect(),
    }
}

/// `it` or, on a cluster, `peer N`'s view of it: the subject of a timeout's message.
fn seen_by(peer: Option<u64>) -> String {
    match peer {
        None => "it".to_string(),
        Some(id) => format!("peer {id}'s view of it"),
    }
}

/// Waits until the collection is green (its optimizations done) on every node, within
/// `--recovery-timeout`. `grey` (optimizations pending but not started) is as settled as
/// Qdrant gets on its own.
fn wait_green(
    cx: &Context,
    target: &str,
    go_on: &dyn Fn() -> Result<(), StepError>,
) -> Result<(), StepError> {
    let deadline = Instant::now() + cx.settle_limit;
    for (peer, node) in nodes(cx) {
        loop {
            go_on()?;
            let info = node
                .collection_info(target)
                .map_err(qdrant("checking", target))?;
            match info.get("status").and_then(Value::as_str) {
                Some("green" | "grey") => break,
                Some("red") => return Err(reported_red(target)),
                _ if Instant::now() >= deadline => {
                    return Err(timed_out(
                        cx,
                        target,
                        &format!("{} did not turn green", seen_by(peer)),
                    ));
                }
                _ => std::thread::sleep(POLL),
            }
        }
    }
    Ok(())
}

fn reported_red(target: &str) -> StepError {
    StepError::Check {
        collection: target.to_string(),
        detail: "Qdrant reports it red (an optimization failed): see the server's log".into(),
    }
}

/// `what` did not happen within `--recovery-timeout`.
fn timed_out(cx: &Context, target: &str, what: &str) -> StepError {
    StepError::Check {
        collection: target.to_string(),
        detail: format!(
            "{what} within {}s (--recovery-timeout)",
            cx.settle_limit.as_secs()
        ),
    }
}

/// The restored collection: the backup's structure (its layout may differ on purpose), the
/// indexing threshold the restore leaves (the fingerprint leaves the optimizers out: the
/// recorded one in a collection it `created`, in an existing one its own or, instead of a 0 a
/// killed restore left, the recorded one), the exact count, and each shard key's exact count
/// where the backup knows it.
fn check(
    cx: &Context,
    source: &Source,
    points: &PointsSource,
    created: bool,
) -> Result<(), StepError> {
    let target = source.target.as_str();
    let failed = |detail: String| StepError::Check {
        collection: target.to_string(),
        detail,
    };
    let info = cx
        .client
        .collection_info(target)
        .map_err(qdrant("checking", target))?;
    let live =
        fingerprint::Fingerprint::from_collection_info(&info).map_err(|e| failed(e.to_string()))?;
    if let Some(expected) = &source.fingerprint {
        let differences: Vec<String> = fingerprint::diff(expected, &live)
            .iter()
            .filter(|d| d.severity == Severity::Blocking && !is_layout(&d.path))
            // A setting the server does not know, allowed to be left out.
            .filter(|d| !(cx.logical.allow_unknown_settings && d.right.is_none()))
            .map(|d| d.describe("backup", "restored"))
            .collect();
        if !differences.is_empty() {
            return Err(failed(format!(
                "schema differs: {}",
                differences.join("; ")
            )));
        }
    }
    // A server that shows no threshold has none to compare (a setting it does not know); an
    // existing collection may keep its own.
    if let (Some(recorded), Some(live)) = (
        deferral::recorded(&points.record.definition),
        deferral::live(&info),
    ) && !deferral::as_left(created, recorded, live)
    {
        return Err(failed(format!(
            "its indexing threshold is {live}, the backup records {recorded}"
        )));
    }
    let count = cx
        .client
        .count_exact(target)
        .map_err(qdrant("counting", target))?;
    super::check::points(
        count,
        (points.record.rows(), points.record.rows()),
        Against::Backup,
    )
    .map_err(failed)?;
    let definition = &points.record.definition;
    for (key, recorded) in definition.shard_keys.iter().zip(&definition.key_records) {
        let count = cx
            .client
            .count_exact_in_shard_key(target, key)
            .map_err(qdrant("counting", target))?;
        if count != *recorded {
            return Err(failed(format!(
                "shard key {key} holds {count} points, the backup recorded {recorded}"
            )));
        }
    }
    Ok(())
}
