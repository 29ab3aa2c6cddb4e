//! A collection's cluster layout (issue 12): shard number, replication, write consistency,
//! sharding method, shard keys in creation order, and where the replicas are. diff-schema
//! compares it between a backup and the live server (or two backups), so a user knows
//! whether a restore can lay the shards out as they were.
//!
//! A single-node collection has a layout too (from its parameters, one node, no placement):
//! comparing a cluster backup with a single node says what differs.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::engine::peers::Topology;
use crate::manifest::cluster::ShardKey;
use crate::manifest::{CollectionBackup, CollectionEntry, Manifest};
use crate::qdrant::QdrantError;

/// Shard id → peer id → replica state.
pub type Placement = BTreeMap<u32, BTreeMap<u64, String>>;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layout {
    /// How many peers the collection's side has: 1 for a single node.
    pub peers: usize,
    pub shard_number: u64,
    pub replication_factor: u64,
    pub write_consistency_factor: u64,
    /// `auto` or `custom`.
    pub sharding_method: String,
    /// Creation order (the order of each key's smallest shard id).
    pub shard_keys: Vec<ShardKey>,
    /// Every shard's replicas; None when not known (a single node, a single-node backup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

impl Layout {
    /// A side with a placement: a cluster backup or a live cluster.
    pub fn is_cluster(&self) -> bool {
        self.placement.is_some()
    }
}

/// One differing field of the layout; `severity` is `blocking` or `warning`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayoutDifference {
    pub path: String,
    pub severity: &'static str,
    pub left: Value,
    pub right: Value,
    pub description: String,
}

/// A comparison of two layouts: the differences (which count as schema differences) and
/// information (the placement, single node vs cluster) that does not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayoutComparison {
    pub left: Layout,
    pub right: Layout,
    pub differences: Vec<LayoutDifference>,
    pub information: Vec<String>,
}

impl LayoutComparison {
    pub fn blocking(&self) -> bool {
        self.differences.iter().any(|d| d.severity == "blocking")
    }
}

/// The collection parameters of a fingerprint's or a collection config's `params`.
fn from_params(params: Option<&Value>) -> Layout {
    let number = |key: &str| {
        params
            .and_then(|p| p.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(1)
    };
    Layout {
        peers: 1,
        shard_number: number("shard_number"),
        replication_factor: number("replication_factor"),
        write_consistency_factor: number("write_consistency_factor"),
        sharding_method: params
            .and_then(|p| p.get("sharding_method"))
            .and_then(Value::as_str)
            .unwrap_or("auto")
            .to_string(),
        shard_keys: Vec::new(),
        placement: None,
    }
}

/// The layout a backup recorded for `entry`: a cluster backup's cluster record, or (a
/// single-node backup, one snapshot or streamed shards) its fingerprint's parameters. None
/// without either (a legacy backup).
pub fn of_backup(entry: &CollectionEntry, manifest: &Manifest) -> Option<Layout> {
    match &entry.backup {
        CollectionBackup::Shards(cluster) if manifest.has_cluster_record() => {
            let placement = cluster
                .shards
                .iter()
                .map(|s| {
                    let replicas = s
                        .replicas
                        .iter()
                        .map(|r| (r.peer_id, r.state.clone()))
                        .collect();
                    (s.shard_id, replicas)
                })
                .collect();
            Some(Layout {
                peers: manifest.cluster().map_or(1, |c| c.peers.len()),
                shard_number: u64::from(cluster.shard_number),
                replication_factor: u64::from(cluster.replication_factor),
                write_consistency_factor: u64::from(cluster.write_consistency_factor),
                sharding_method: cluster.sharding_method.clone(),
                shard_keys: cluster.shard_keys.clone(),
                placement: Some(placement),
            })
        }
        CollectionBackup::Shards(_)
        | CollectionBackup::Snapshot { .. }
        | CollectionBackup::Points(_) => entry
            .schema
            .as_ref()
            .map(|schema| from_params(schema.get("params"))),
    }
}

/// The live layout of collection `name` (`info`: its `GET /collections/{c}` result): the
/// parameters, and on a cluster each peer's view of the placement.
pub fn live(name: &str, info: &Value, topology: &Topology) -> Result<Layout, QdrantError> {
    let mut layout = from_params(info.get("config").and_then(|c| c.get("params")));
    let Topology::Cluster { peers } = topology else {
        return Ok(layout);
    };
    layout.peers = peers.len();
    let mut placement = Placement::new();
    let mut key_of_shard: BTreeMap<u32, ShardKey> = BTreeMap::new();
    for peer in peers {
        let view = peer.client.collection_cluster_view(name)?;
        // Each peer speaks only for itself: an address answering as another peer would
        // describe a placement that is not this cluster's.
        if view.peer_id != peer.peer_id {
            return Err(QdrantError::InvalidResponse {
                path: format!("/collections/{name}/cluster"),
                detail: format!(
                    "{} answered as peer {} instead of peer {}",
                    peer.client.display_url(),
                    view.peer_id,
                    peer.peer_id
                ),
            });
        }
        for replica in view.local.iter().chain(&view.remote) {
            placement
                .entry(replica.shard_id)
                .or_default()
                .insert(replica.peer_id, replica.state.clone());
            if let Some(key) = &replica.shard_key {
                key_of_shard.insert(replica.shard_id, key.clone());
            }
        }
    }
    // Creation order: a key's smallest shard id (the map iterates shard ids in order).
    for key in key_of_shard.values() {
        if !layout.shard_keys.contains(key) {
            layout.shard_keys.push(key.clone());
        }
    }
    layout.placement = Some(placement);
    Ok(layout)
}

/// Compares two layouts, `left_label` and `right_label` naming the sides.
pub fn compare(
    left: Layout,
    right: Layout,
    left_label: &str,
    right_label: &str,
) -> LayoutComparison {
    let mut differences = Vec::new();
    let mut differ = |path: &str, severity, l: Value, r: Value| {
        if l != r {
            differences.push(LayoutDifference {
                description: format!(
                    "{path}: {} ({left_label}) vs {} ({right_label})",
                    show(&l),
                    show(&r)
                ),
                path: path.to_string(),
                severity,
                left: l,
                right: r,
            });
        }
    };
    // Shard ids follow from the shard number and the keys' order: restoring shard files
    // needs them equal. Replication and write consistency only change redundancy.
    differ(
        "cluster.shard_number",
        "blocking",
        json!(left.shard_number),
        json!(right.shard_number),
    );
    differ(
        "cluster.sharding_method",
        "blocking",
        json!(left.sharding_method),
        json!(right.sharding_method),
    );
    differ(
        "cluster.shard_keys",
        "blocking",
        json!(left.shard_keys),
        json!(right.shard_keys),
    );
    differ(
        "cluster.replication_factor",
        "warning",
        json!(left.replication_factor),
        json!(right.replication_factor),
    );
    differ(
        "cluster.write_consistency_factor",
        "warning",
        json!(left.write_consistency_factor),
        json!(right.write_consistency_factor),
    );

    let mut information = Vec::new();
    let side = |layout: &Layout| match layout.peers {
        1 if layout.placement.is_none() => "a single node".to_string(),
        n => format!("a {n}-peer cluster"),
    };
    if side(&left) != side(&right) {
        information.push(format!(
            "{left_label} is {}, {right_label} is {}",
            side(&left),
            side(&right)
        ));
    }
    if let (Some(l), Some(r)) = (&left.placement, &right.placement) {
        let ids: std::collections::BTreeSet<u32> = l.keys().chain(r.keys()).copied().collect();
        for id in ids {
            let (a, b) = (l.get(&id), r.get(&id));
            if a != b {
                information.push(format!(
                    "placement of shard {id}: {} ({left_label}) vs {} ({right_label})",
                    replicas(a),
                    replicas(b)
                ));
            }
        }
    }
    LayoutComparison {
        left,
        right,
        differences,
        information,
    }
}

fn replicas(replicas: Option<&BTreeMap<u64, String>>) -> String {
    match replicas {
        None => "absent".to_string(),
        Some(r) if r.is_empty() => "no replica".to_string(),
        Some(r) => r
            .iter()
            .map(|(peer, state)| format!("peer {peer} {}", state_shown(state)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A replica state as Qdrant names them (`Active`), anything else quoted and escaped.
fn state_shown(state: &str) -> String {
    match !state.is_empty() && state.len() <= 32 && state.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        true => state.to_string(),
        false => crate::names::shown(state),
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => crate::names::shown(s),
        Value::Array(items) if items.is_empty() => "none".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            peers: 3,
            shard_number: 2,
            replication_factor: 2,
            write_consistency_factor: 1,
            sharding_method: "custom".into(),
            shard_keys: vec![ShardKey::Keyword("eu".into()), ShardKey::Number(7)],
            placement: Some(
                [
                    (0, [(1, "Active".to_string())].into()),
                    (1, [(2, "Active".to_string())].into()),
                ]
                .into(),
            ),
        }
    }

    #[test]
    fn equal_layouts_do_not_differ_and_key_order_does() {
        let same = compare(layout(), layout(), "backup", "live");
        assert!(same.differences.is_empty() && same.information.is_empty());
        let mut swapped = layout();
        swapped.shard_keys.reverse();
        let swapped = compare(layout(), swapped, "backup", "live");
        assert_eq!(swapped.differences.len(), 1);
        assert_eq!(swapped.differences[0].path, "cluster.shard_keys");
        assert!(swapped.blocking());
    }

    #[test]
    fn placement_and_topology_are_information_only() {
        let mut moved = layout();
        if let Some(p) = moved.placement.as_mut() {
            p.insert(1, [(3, "Dead".to_string())].into());
        }
        let c = compare(layout(), moved, "backup", "live");
        assert!(c.differences.is_empty());
        assert_eq!(
            c.information,
            vec!["placement of shard 1: peer 2 Active (backup) vs peer 3 Dead (live)".to_string()]
        );
        let mut single = from_params(None);
        single.shard_number = 2;
        let c = compare(layout(), single, "backup", "live");
        assert!(c.information[0].contains("a 3-peer cluster, live is a single node"));
        assert!(c.blocking(), "custom with keys vs auto without");
    }
}
