//! Distributed collections: a collection snapshot holds only the shards of the peer that took
//! it (docs/qdrant.md, "Snapshots in a cluster"), so a backup through one peer of a cluster can
//! silently miss shards.

use std::collections::BTreeSet;

use serde_json::Value;

/// Shard ids with no *active* replica on this peer, from `GET /collections/{c}/cluster`: a
/// snapshot taken through this peer would not contain their points (a local replica that is
/// Dead, Partial or still recovering holds stale or no data).
pub fn shards_missing_locally(cluster: &Value) -> Vec<u64> {
    let ids = |key: &str, active_only: bool| -> BTreeSet<u64> {
        let shards = cluster.get(key).and_then(Value::as_array);
        shards
            .into_iter()
            .flatten()
            .filter(|s| !active_only || s.get("state").and_then(Value::as_str) == Some("Active"))
            .filter_map(|s| s.get("shard_id").and_then(Value::as_u64))
            .collect()
    };
    let all = &ids("local_shards", false) | &ids("remote_shards", false);
    let active_here = ids("local_shards", true);
    all.difference(&active_here).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/qdrant/cluster/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let exchange: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        exchange["response"]["body"]["result"].clone()
    }

    #[test]
    fn a_single_node_holds_every_shard() {
        assert!(shards_missing_locally(&fixture("collection-cluster-info.json")).is_empty());
    }

    #[test]
    fn a_local_replica_that_is_not_active_does_not_count() {
        let mut view = fixture("collection-cluster-info.json");
        view["local_shards"][0]["state"] = "Dead".into();
        assert_eq!(shards_missing_locally(&view), [0]);
        view["local_shards"][0]["state"] = "Partial".into();
        assert_eq!(shards_missing_locally(&view), [0]);
    }

    #[test]
    fn each_peer_of_the_real_three_node_cluster_misses_one_shard() {
        assert_eq!(
            shards_missing_locally(&fixture("3-node-collection-cluster-peer0.json")),
            [2]
        );
        assert_eq!(
            shards_missing_locally(&fixture("3-node-collection-cluster-peer1.json")),
            [1]
        );
        assert_eq!(
            shards_missing_locally(&fixture("3-node-collection-cluster-peer2.json")),
            [0]
        );
    }
}
