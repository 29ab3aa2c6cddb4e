//! A collection created from a logical backup's recorded definition, in the layout asked for,
//! and the aliases the definition records.
//!
//! Qdrant accepts a creation body with settings it does not know and drops them without a
//! word (docs/qdrant.md, "Creating a collection"): so after creating it, every setting the
//! backup recorded is looked for in what the server reports, and one it lacks is a setting
//! this server does not know. The restore stops there (the collection is deleted by the
//! rollback) unless `--allow-unknown-settings` says to go on without it.
//!
//! A collection big enough for Qdrant to index is created with its vector indexing off
//! (`indexing_threshold` 0) and given its recorded threshold back once its points are in
//! ([`index_after_load`]), so the server builds each segment's index once instead of again
//! and again as segments grow and merge (docs/qdrant.md, "Changing a collection's settings").

use serde_json::{Map, Value, json};

use super::source::PointsSource;
use super::{is_layout, qdrant};
use crate::engine::restore::act::{Context, StepError};
use crate::engine::restore::plan::Source;
use crate::engine::restore::rollback::Undo;
use crate::manifest::points::Definition;

/// Params Qdrant reports but refuses in a creation body (set later with PATCH).
const NOT_ON_CREATE: [&str; 2] = ["read_fan_out_factor", "read_fan_out_delay_ms"];

/// The `config` keys of `GET /collections/{c}` and their names in a creation body.
const CONFIG_SECTIONS: [(&str, &str); 5] = [
    ("hnsw_config", "hnsw_config"),
    ("optimizer_config", "optimizers_config"),
    ("wal_config", "wal_config"),
    ("quantization_config", "quantization_config"),
    ("strict_mode_config", "strict_mode_config"),
];

/// Creates the collection from the definition, checks the server kept every setting, and
/// creates its shard keys in their recorded order. `Some(threshold)`: it was created with its
/// vector indexing off (see the module's comment), to be set back to `threshold` with
/// [`index_after_load`] once the points are in.
pub(super) fn create(
    cx: &Context,
    source: &Source,
    points: &PointsSource,
    undo: &mut Undo,
) -> Result<Option<u64>, StepError> {
    let target = source.target.as_str();
    let definition = &points.record.definition;
    let mut body = creation_body(definition, cx);
    // A selective restore's temporary collection is only read back and deleted: indexing it
    // would only cost time.
    let deferred = match crate::names::is_temporary_collection(target) {
        true => None,
        false => indexing_deferred(&body, points.record.rows()),
    };
    if deferred.is_some() {
        let optimizers = body
            .as_object_mut()
            .map(|b| b.entry("optimizers_config").or_insert_with(|| json!({})));
        if let Some(Value::Object(optimizers)) = optimizers {
            optimizers.insert("indexing_threshold".into(), json!(0));
        }
    }
    match cx.client.create_collection(target, &body) {
        Ok(()) => undo.created.push(target.to_string()),
        Err(e) => {
            // Without an answer the server may have created it anyway: it was absent when
            // planned, so it is ours to delete.
            if e.status().is_none() {
                undo.created.push(target.to_string());
            }
            return Err(qdrant("creating", target)(e));
        }
    }
    let info = cx
        .client
        .collection_info(target)
        .map_err(qdrant("checking", target))?;
    let unknown = unknown_settings(&body, info.get("config").unwrap_or(&Value::Null));
    if !unknown.is_empty() {
        match cx.logical.allow_unknown_settings {
            false => {
                return Err(StepError::UnknownSettings {
                    collection: target.to_string(),
                    settings: unknown.join(", "),
                });
            }
            true => cx.ui.warn(&format!(
                "`{target}`: this server does not know {} (left out, --allow-unknown-settings)",
                unknown.join(", ")
            )),
        }
    }
    // With custom sharding, `shard_number` is each key's number of shards.
    let mut per_key = Map::new();
    if let Some(shards) = cx.logical.shard_number.map(u64::from).or(definition
        .config
        .pointer("/params/shard_number")
        .and_then(Value::as_u64))
    {
        per_key.insert("shards_number".into(), json!(shards));
    }
    for key in &definition.shard_keys {
        cx.client
            .create_shard_key(target, key, &per_key)
            .map_err(|e| StepError::Cluster {
                collection: target.to_string(),
                detail: format!("creating its shard key {key} failed: {e}"),
            })?;
    }
    cx.ui.ok(&format!(
        "`{target}` created from the backup's definition ({} shards{})",
        body.get("shard_number")
            .and_then(Value::as_u64)
            .unwrap_or(1),
        match deferred {
            Some(_) => ", its vector index built once its points are in",
            None => "",
        }
    ));
    Ok(deferred)
}

/// The indexing threshold to set back after the load when creation body `body` is to be
/// created with indexing off, else `None`: a definition without a threshold of its own, or
/// whose indexing is off already
/// (threshold 0, HNSW `m` 0, no optimization threads) is left as it is, and so is a collection
/// whose vectors cannot reach the threshold in any segment (each shard's dense vectors of
/// `rows` points are smaller), which the server never indexes anyway.
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

/// Gives a collection created with its indexing off ([`create`]) its indexing threshold back
/// (`PATCH /collections/{c}`), now that its points are in.
pub(super) fn index_after_load(
    cx: &Context,
    target: &str,
    threshold: u64,
) -> Result<(), StepError> {
    set_threshold(cx, target, threshold)
}

/// Sets the indexing threshold of `target` (`PATCH /collections/{c}`).
pub(super) fn set_threshold(cx: &Context, target: &str, threshold: u64) -> Result<(), StepError> {
    let body = json!({ "optimizers_config": { "indexing_threshold": threshold } });
    cx.client
        .update_collection(target, &body)
        .map_err(qdrant("setting the indexing threshold of", target))
}

/// The creation body: every recorded setting (unset ones, reported as null, left out), in
/// the layout `--shard-number` and `--replication-factor` ask for, else the recorded one (on a
/// single node one replica; on a cluster at most one per peer).
fn creation_body(definition: &Definition, cx: &Context) -> Value {
    let config = &definition.config;
    let mut body = Map::new();
    if let Some(Value::Object(params)) = config.get("params") {
        for (key, value) in params {
            let empty_vectors = key == "vectors" && value.as_object().is_some_and(Map::is_empty);
            if !NOT_ON_CREATE.contains(&key.as_str()) && !empty_vectors && !value.is_null() {
                body.insert(key.clone(), without_nulls(value));
            }
        }
    }
    for (reported, created) in CONFIG_SECTIONS {
        if let Some(value) = config.get(reported).filter(|v| !v.is_null()) {
            body.insert(created.into(), without_nulls(value));
        }
    }
    let recorded = |key: &str| body.get(key).and_then(Value::as_u64);
    let peers = cx.topology.peers().len().max(1) as u64;
    let shards = cx
        .logical
        .shard_number
        .map(u64::from)
        .or(recorded("shard_number"));
    let replicas = match cx.topology.is_cluster() {
        true => cx
            .logical
            .replication_factor
            .map(u64::from)
            .or(recorded("replication_factor"))
            .map(|r| r.clamp(1, peers)),
        false => Some(1),
    };
    // Write consistency above the replicas would refuse every write.
    let consistency =
        recorded("write_consistency_factor").map(|w| w.min(replicas.unwrap_or(1)).max(1));
    for (key, value) in [
        ("shard_number", shards),
        ("replication_factor", replicas),
        ("write_consistency_factor", consistency),
    ] {
        match value {
            Some(value) => body.insert(key.into(), json!(value)),
            None => body.remove(key),
        };
    }
    // A custom-sharded collection's shards come with its keys.
    if body.get("sharding_method").and_then(Value::as_str) == Some("custom") {
        body.remove("shard_number");
    }
    Value::Object(body)
}

/// `value` with every null member left out (Qdrant reports unset settings as null).
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The settings of creation body `body` that the server's `config` lacks, as dotted paths
/// (objects are walked; a list or a value is one setting).
fn unknown_settings(body: &Value, config: &Value) -> Vec<String> {
    // The body's names back to the config's.
    let mut reported = Map::new();
    let mut params = Map::new();
    if let Value::Object(body) = body {
        for (key, value) in body {
            match CONFIG_SECTIONS.iter().find(|(_, created)| created == key) {
                Some((name, _)) => {
                    reported.insert((*name).to_string(), value.clone());
                }
                None => {
                    params.insert(key.clone(), value.clone());
                }
            }
        }
    }
    reported.insert("params".into(), Value::Object(params));
    let mut unknown = Vec::new();
    walk(
        &mut Vec::new(),
        &Value::Object(reported),
        config,
        &mut unknown,
    );
    unknown.retain(|path| !is_layout(path));
    unknown
}

fn walk(path: &mut Vec<String>, recorded: &Value, live: &Value, unknown: &mut Vec<String>) {
    let Value::Object(recorded) = recorded else {
        return;
    };
    for (key, value) in recorded {
        path.push(key.clone());
        match live.get(key) {
            None => unknown.push(path.join(".")),
            Some(live) => walk(path, value, live, unknown),
        }
        path.pop();
    }
}

/// Points each alias the backup recorded at `target`, unless it exists: one that points at
/// another collection is left as it is, and one Qdrant refuses (its name is a collection's)
/// is skipped, each with a warning. Each created is in `undo`, deleted by a rollback.
pub(super) fn aliases(
    cx: &Context,
    target: &str,
    aliases: &[String],
    undo: &mut Undo,
) -> Result<(), StepError> {
    if aliases.is_empty() {
        return Ok(());
    }
    let existing = cx
        .client
        .all_aliases()
        .map_err(qdrant("reading the aliases of", target))?;
    for alias in aliases {
        match existing.iter().find(|(name, _)| name == alias) {
            Some((_, collection)) if collection == target => {}
            Some((_, collection)) => cx.ui.warn(&format!(
                "alias `{alias}` points at `{collection}`: left as it is, not pointed at `{target}`"
            )),
            None => {
                undo.aliases.push(alias.clone());
                match cx.client.create_alias(target, alias) {
                    Ok(()) => cx.ui.ok(&format!("alias `{alias}` → `{target}`")),
                    Err(e) if e.status().is_some() => {
                        undo.aliases.pop();
                        cx.ui.warn(&format!("alias `{alias}` not created: {e}"));
                    }
                    Err(e) => return Err(qdrant("creating an alias of", target)(e)),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_the_server_does_not_report_are_unknown_and_layout_is_not_checked() {
        let body = json!({
            "vectors": {"size": 4, "distance": "Dot"},
            "shard_number": 3,
            "optimizers_config": {"deleted_threshold": 0.3, "prevent_unoptimized": true},
            "hnsw_config": {"m": 8}
        });
        let config = json!({
            "params": {"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 1},
            "optimizer_config": {"deleted_threshold": 0.3},
            "hnsw_config": {"m": 8, "ef_construct": 100}
        });
        assert_eq!(
            unknown_settings(&body, &config),
            ["optimizer_config.prevent_unoptimized"]
        );
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

    #[test]
    fn unset_settings_are_left_out() {
        assert_eq!(
            without_nulls(&json!({"a": null, "b": {"c": null, "d": 1}})),
            json!({"b": {"d": 1}})
        );
    }
}
