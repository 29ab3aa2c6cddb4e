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
//! ([`super::deferral`]).

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
/// vector indexing off ([`super::deferral::defer`]), to be set back to `threshold` once the
/// points are in.
pub(super) fn create(
    cx: &Context,
    source: &Source,
    points: &PointsSource,
    undo: &mut Undo,
) -> Result<Option<u64>, StepError> {
    let target = source.target.as_str();
    let definition = &points.record.definition;
    let mut body = creation_body(definition, cx);
    let deferred = super::deferral::defer(target, &mut body, points.record.rows());
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
    fn unset_settings_are_left_out() {
        assert_eq!(
            without_nulls(&json!({"a": null, "b": {"c": null, "d": 1}})),
            json!({"b": {"d": 1}})
        );
    }
}
