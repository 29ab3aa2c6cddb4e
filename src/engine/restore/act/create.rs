//! Creating an absent collection from the backup's schema. A cluster backup's collection gets
//! its recorded sharding, and its shard keys in their recorded order, so the server hands out
//! the same shard ids the shard files are named by.

use serde_json::{Map, Value, json};

use super::placement::cluster_failure;
use super::{Context, StepError, qdrant};
use crate::engine::peers::Topology;
use crate::engine::restore::plan::Source;
use crate::engine::restore::rollback::Undo;
use crate::engine::restore::shards::ClusterSource;
use crate::manifest::cluster::{CollectionCluster, ShardKey};
use crate::names::SafeName;

/// Creates an absent collection from the backup's fingerprint, with its payload indexes (and,
/// for a cluster backup, its shard keys: `go_on` is asked before each).
pub(super) fn create(
    cx: &Context,
    source: &Source,
    undo: &mut Undo,
    go_on: &dyn Fn() -> Result<(), StepError>,
) -> Result<(), StepError> {
    let target = &source.target;
    let Some(fingerprint) = &source.fingerprint else {
        return Ok(());
    };
    let mut body = fingerprint.create_collection_body();
    if let (Some(cluster), Some(fields)) = (&source.cluster, body.as_object_mut()) {
        with_sharding(fields, cluster, cx.topology);
    }
    match cx.client.create_collection(target, &body) {
        Ok(()) => undo.created.push(target.to_string()),
        Err(e) => {
            // Without an answer (timeout, lost connection) the server may have created it
            // anyway: it was absent when planned, so it is ours to delete. A refusal (409 if
            // someone else created it meanwhile) means it is not ours.
            if e.status().is_none() {
                undo.created.push(target.to_string());
            }
            return Err(qdrant("creating", target)(e));
        }
    }
    crate::engine::restore::indexes::build(
        cx.client,
        cx.stop,
        target,
        &fingerprint.payload_indexes(),
    )?;
    if let Some(cluster) = &source.cluster {
        for key in &cluster.record.shard_keys {
            go_on()?;
            create_shard_key(cx, target, &cluster.record, key)?;
        }
    }
    cx.ui
        .ok(&format!("`{target}` created from the backup's schema"));
    Ok(())
}

/// The backup's sharding in the creation body: its shard count, and its replication: a
/// cluster backup's onto a single node is one replica of each shard; onto a cluster, or a
/// single node's backup onto a single node, the recorded factors (a single node keeps
/// whatever its collection was created with).
fn with_sharding(fields: &mut Map<String, Value>, source: &ClusterSource, topology: &Topology) {
    let cluster = &source.record;
    let (replication, consistency) = match topology.is_cluster() || !source.on_cluster {
        true => (cluster.replication_factor, cluster.write_consistency_factor),
        false => (1, 1),
    };
    fields.insert("shard_number".into(), json!(cluster.shard_number));
    fields.insert("replication_factor".into(), json!(replication));
    fields.insert("write_consistency_factor".into(), json!(consistency));
    // Qdrant leaves `auto` (the default) out of the collection's config: so does the body,
    // or the restored schema would differ from the backup's.
    if cluster.sharding_method == "custom" {
        fields.insert("sharding_method".into(), json!("custom"));
    }
}

/// Creates one shard key with the shards and replicas the backup records for it.
fn create_shard_key(
    cx: &Context,
    target: &SafeName,
    cluster: &CollectionCluster,
    key: &ShardKey,
) -> Result<(), StepError> {
    let of_key = || {
        cluster
            .shards
            .iter()
            .filter(move |s| s.shard_key.as_ref() == Some(key))
    };
    // A key may have been created with its own `shards_number`: each gets as many shards as
    // the backup records for it, so the ids that follow stay the same.
    let shards = of_key().count();
    let mut extra = Map::new();
    if shards > 0 {
        extra.insert("shards_number".into(), json!(shards));
    }
    // Likewise its own replication factor: the replicas its shards had at backup time. On a
    // single node there is one replica whatever the backup had.
    let replicas = of_key().map(|s| s.replicas.len()).max().unwrap_or(0);
    // Never more replicas than the target has peers (a smaller cluster than the backup's
    // holds each shard at most once per peer).
    let replicas = replicas.min(cx.topology.peers().len());
    if replicas > 0 && cx.topology.is_cluster() {
        extra.insert("replication_factor".into(), json!(replicas));
    }
    cx.client
        .create_shard_key(target, key, &extra)
        .map_err(|e| {
            let hint = match cx.topology.is_cluster() {
                true => "",
                false => {
                    " (this server may not take custom sharding outside a cluster: restore into a \
                     distributed Qdrant)"
                }
            };
            cluster_failure(
                target,
                format!("creating its shard key {key} failed: {e}{hint}"),
            )
        })
}
