//! The indexing deferral of a logical restore (docs/qdrant.md, "Changing a collection's
//! settings"): a collection this run creates and that is big enough for Qdrant to index is
//! created with its vector indexing off (`indexing_threshold` 0, [`defer`]), loaded, and given
//! its recorded threshold back once its points and payload indexes are in ([`set_back`]), so
//! the server builds each segment's index once instead of again and again as segments grow
//! and merge; then the wait for green is the wait for that index ([`wait_indexed`]).
//!
//! An existing collection that is overwritten keeps its settings, its threshold too, with one
//! exception: a threshold of 0 where the backup records one above 0, what a restore killed
//! between its load and setting the threshold back leaves (its vectors never indexed), is
//! given the recorded one the same way once the points are in, the 0 kept in the undo log for
//! the rollback ([`as_recorded`]). Any other threshold, one a user chose included, stays.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{POLL, nodes, qdrant, reported_red, seen_by, timed_out};
use crate::engine::restore::act::{Context, StepError};
use crate::engine::restore::rollback::{Threshold, Undo};
use crate::manifest::points::Definition;

/// Decides whether the collection `target`, created with creation body `body` and loaded with
/// `rows` points, is created with its vector indexing off, and if so sets its threshold to 0
/// in `body`: returns the threshold to set back after the load. A selective restore's
/// temporary collection is only read back and deleted: indexing it would only cost time.
pub(super) fn defer(target: &str, body: &mut Value, rows: u64) -> Option<u64> {
    if crate::names::is_temporary_collection(target) {
        return None;
    }
    let threshold = indexing_deferred(body, rows)?;
    let optimizers = body
        .as_object_mut()
        .map(|b| b.entry("optimizers_config").or_insert_with(|| json!({})));
    if let Some(Value::Object(optimizers)) = optimizers {
        optimizers.insert("indexing_threshold".into(), json!(0));
    }
    Some(threshold)
}

/// The indexing threshold to set back after the load when creation body `body` is to be
/// created with indexing off, else `None`: a definition without a threshold of its own, or
/// whose indexing is off already (threshold 0, HNSW `m` 0, no optimization threads) is left
/// as it is, and so is a collection whose vectors cannot reach the threshold in any segment
/// (each shard's dense vectors of `rows` points are smaller), which the server never indexes
/// anyway.
fn indexing_deferred(body: &Value, rows: u64) -> Option<u64> {
    let optimizers = body.get("optimizers_config");
    let recorded = optimizers.and_then(|o| o.get("indexing_threshold"));
    // An unset threshold is left to the server's own default: a PATCH could only pin it to
    // a number, and the server's configuration may say another.
    let threshold = recorded?.as_u64().filter(|&t| t > 0)?;
    if body.pointer("/hnsw_config/m").and_then(Value::as_u64) == Some(0)
        || optimizers
            .and_then(|o| o.get("max_optimization_threads"))
            .and_then(Value::as_u64)
            == Some(0)
    {
        return None;
    }
    // Custom sharding: how the points spread over the keys' shards is not known.
    let shards = match body.get("sharding_method").and_then(Value::as_str) {
        Some("custom") => 1,
        _ => body
            .get("shard_number")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .max(1),
    };
    let largest = largest_dense_vector(body.get("vectors")?)?;
    let per_shard = rows.saturating_mul(largest) / shards;
    (per_shard >= threshold.saturating_mul(1024)).then_some(threshold)
}

/// The most bytes one of a point's dense vectors takes in storage (a multivector counted as one
/// of its vectors: the least it holds); `None` without dense vectors.
fn largest_dense_vector(vectors: &Value) -> Option<u64> {
    let bytes = |vector: &Value| {
        let size = vector.get("size").and_then(Value::as_u64)?;
        let element = match vector.get("datatype").and_then(Value::as_str) {
            Some("uint8") => 1,
            Some("float16") => 2,
            _ => 4,
        };
        Some(size * element)
    };
    match vectors.get("size") {
        // One unnamed vector: `{size, distance, …}`.
        Some(size) if size.is_u64() => bytes(vectors),
        _ => vectors.as_object()?.values().filter_map(bytes).max(),
    }
}

/// Gives a collection created with its indexing off ([`defer`]: `deferred`) its indexing
/// threshold back, now that its points are in, and waits for its index.
pub(super) fn set_back(
    cx: &Context,
    target: &str,
    deferred: Option<u64>,
    go_on: &dyn Fn() -> Result<(), StepError>,
) -> Result<(), StepError> {
    let Some(threshold) = deferred else {
        return Ok(());
    };
    set(cx, target, threshold)?;
    wait_indexed(cx, target, threshold, go_on)
}

/// An existing collection that is overwritten, its points in: if its indexing threshold is
/// the 0 a killed restore leaves ([`left_off`]), that 0 goes into `undo` first, for the
/// rollback to set back, then the recorded one is set and its index waited for. Any other
/// threshold is the collection's own and stays, as its other settings do. A collection whose
/// info shows no threshold is left as it is: none could be put back (a null in a PATCH leaves
/// a setting unchanged).
pub(super) fn as_recorded(
    cx: &Context,
    target: &str,
    definition: &Definition,
    undo: &mut Undo,
    go_on: &dyn Fn() -> Result<(), StepError>,
) -> Result<(), StepError> {
    let Some(recorded) = recorded(definition) else {
        return Ok(());
    };
    let info = cx
        .client
        .collection_info(target)
        .map_err(qdrant("checking", target))?;
    let Some(live) = live(&info) else {
        return Ok(());
    };
    if !left_off(recorded, live) {
        return Ok(());
    }
    undo.thresholds.push(Threshold {
        collection: target.to_string(),
        previous: live,
    });
    set(cx, target, recorded)?;
    cx.ui.warn(&format!(
        "`{target}` had its indexing threshold at {live}, not the {recorded} the backup records \
         (a restore that did not finish leaves 0, its vectors never indexed): set to {recorded}"
    ));
    wait_indexed(cx, target, recorded, go_on)
}

/// Whether an existing collection's indexing threshold `live` is the 0 that a restore killed
/// before it set the `recorded` one back leaves (indexing off for good where the backup's was
/// on): the one threshold of an existing collection an overwrite changes.
fn left_off(recorded: u64, live: u64) -> bool {
    live == 0 && recorded > 0
}

/// Whether the threshold `live` a restored collection shows is the one the restore leaves it
/// with, for the final check: the `recorded` one in a collection it `created`; in an existing
/// one, any but the 0 [`as_recorded`] replaces (a threshold of its own stays).
pub(super) fn as_left(created: bool, recorded: u64, live: u64) -> bool {
    match created {
        true => live == recorded,
        false => !left_off(recorded, live),
    }
}

/// Sets the indexing threshold of `target` (`PATCH /collections/{c}`).
fn set(cx: &Context, target: &str, threshold: u64) -> Result<(), StepError> {
    let body = json!({ "optimizers_config": { "indexing_threshold": threshold } });
    cx.client
        .update_collection(target, &body)
        .map_err(qdrant("setting the indexing threshold of", target))
}

/// How long a collection whose indexing threshold was set back must stay green, if it never
/// showed its index being built, before it counts as indexed: Qdrant 1.18.3 starts its
/// optimizers again a moment after it answers the change, so a green read within that moment
/// says nothing; after it, green means no segment needed an index.
const QUIET: Duration = Duration::from_secs(2);

/// After an indexing threshold was set ([`set_back`], [`as_recorded`]), waits (within
/// `--recovery-timeout`) until the collection is green with its vector index built
/// (docs/qdrant.md, "Changing a collection's settings"), node by node: until the node reports
/// the threshold (on a cluster the change reaches the other peers through consensus), then
/// until it is green, where a green read counts only after the node was seen busy (yellow or
/// grey: its optimizers started again with the threshold and found segments to index) or
/// after [`QUIET`] of green (they had none to index).
fn wait_indexed(
    cx: &Context,
    target: &str,
    threshold: u64,
    go_on: &dyn Fn() -> Result<(), StepError>,
) -> Result<(), StepError> {
    let deadline = Instant::now() + cx.settle_limit;
    for (peer, node) in nodes(cx) {
        let mut taken: Option<Instant> = None;
        let mut busy = false;
        loop {
            go_on()?;
            let info = node
                .collection_info(target)
                .map_err(qdrant("checking", target))?;
            if live(&info) == Some(threshold) {
                let since = *taken.get_or_insert_with(Instant::now);
                match info.get("status").and_then(Value::as_str) {
                    Some("green") if busy || since.elapsed() >= QUIET => break,
                    Some("green") => {}
                    Some("red") => return Err(reported_red(target)),
                    _ => busy = true,
                }
            }
            // A green collection gets its quiet period even past the deadline: a short
            // --recovery-timeout must not fail one that had nothing to index.
            let limit = taken.map_or(deadline, |since| deadline.max(since + QUIET));
            if Instant::now() >= limit {
                let what = match taken {
                    Some(_) => format!("{}: its vector index was not built", seen_by(peer)),
                    None => format!(
                        "{} did not show its indexing threshold back ({threshold})",
                        seen_by(peer)
                    ),
                };
                return Err(timed_out(cx, target, &what));
            }
            std::thread::sleep(POLL);
        }
    }
    Ok(())
}

/// `config.optimizer_config.indexing_threshold` of a collection's info.
pub(super) fn live(info: &Value) -> Option<u64> {
    info.pointer("/config/optimizer_config/indexing_threshold")
        .and_then(Value::as_u64)
}

/// The indexing threshold a logical backup's definition records; `None` when unset (the
/// server's default).
pub(super) fn recorded(definition: &Definition) -> Option<u64> {
    definition
        .config
        .pointer("/optimizer_config/indexing_threshold")
        .and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overwrite_changes_only_the_threshold_a_killed_restore_leaves() {
        // Left at 0 by a killed restore: set as recorded.
        assert!(left_off(10_000, 0));
        // Off in the backup too, as recorded, or another the collection was given: kept.
        for (recorded, live) in [(0, 0), (10_000, 10_000), (10_000, 20_000), (0, 5), (1, 2)] {
            assert!(!left_off(recorded, live), "{recorded} {live}");
            assert!(as_left(false, recorded, live), "{recorded} {live}");
        }
        // The final check: an existing collection may keep its own; not a 0 left for the
        // recorded one, and a created one has the recorded one.
        assert!(!as_left(false, 10_000, 0));
        assert!(as_left(true, 10_000, 10_000));
        assert!(!as_left(true, 10_000, 20_000));
        assert!(!as_left(true, 10_000, 0));
    }

    #[test]
    fn indexing_is_deferred_only_where_the_server_would_index() {
        let body = |extra: Value| {
            let mut body =
                json!({"vectors": {"size": 768, "distance": "Cosine"}, "shard_number": 1});
            for (key, value) in extra.as_object().unwrap() {
                body[key] = value.clone();
            }
            body
        };
        let set = json!({"optimizers_config": {"indexing_threshold": 10_000}});
        // 768-d float32: 3,072 bytes a point, 10,000 KiB from 3,334 points on.
        assert_eq!(indexing_deferred(&body(set.clone()), 3_334), Some(10_000));
        assert_eq!(indexing_deferred(&body(set.clone()), 3_333), None);
        let mut two_shards = set.clone();
        two_shards["shard_number"] = json!(2);
        assert_eq!(indexing_deferred(&body(two_shards), 3_334), None);
        // Unset: the server's default stays, whatever the size.
        assert_eq!(indexing_deferred(&body(json!({})), 1_000_000), None);
        let unset = json!({"optimizers_config": {"indexing_threshold": null}});
        assert_eq!(indexing_deferred(&body(unset), 1_000_000), None);
        assert_eq!(
            indexing_deferred(
                &body(json!({"optimizers_config": {"indexing_threshold": 20}})),
                7
            ),
            Some(20)
        );
        for off in [
            json!({"optimizers_config": {"indexing_threshold": 0}}),
            json!({"hnsw_config": {"m": 0}}),
            json!({"optimizers_config": {"max_optimization_threads": 0}}),
        ] {
            assert_eq!(
                indexing_deferred(&body(off.clone()), 1_000_000),
                None,
                "{off}"
            );
        }
        let named = json!({"vectors": {"a": {"size": 4, "datatype": "uint8"},
                                       "b": {"size": 1024, "datatype": "float16"}},
                           "optimizers_config": {"indexing_threshold": 10_000}});
        assert_eq!(indexing_deferred(&named, 5_000), Some(10_000));
        assert_eq!(indexing_deferred(&named, 4_999), None);
        // Sparse vectors only: no HNSW to build.
        let sparse = json!({"vectors": {}, "sparse_vectors": {"s": {}},
                            "optimizers_config": {"indexing_threshold": 10_000}});
        assert_eq!(indexing_deferred(&sparse, 10_000_000), None);
    }
}
