//! What a backup taken shard by shard adds to the manifest (a single node's collection taken
//! as one stored snapshot has none of it):
//!
//! - top level, cluster backups only: `"cluster": {"peers": [{"peer_id", "uri", "url"}]}`;
//! - per collection `"cluster": {shard_number, replication_factor, write_consistency_factor,
//!   sharding_method, shard_keys, shards: [{shard_id, shard_key, file, size_bytes, records,
//!   sha256, source_peer, replicas: [{peer_id, state}]}]}` instead of `snapshot_file`: a
//!   cluster's collection, or a single node's whose shard snapshots were streamed (then the
//!   manifest has no top-level record, and every shard is the node's alone).
//!
//! Every shard file is `qdrant/<collection>/shard-<id>.snapshot`, rebuilt from the safe
//! collection name and the shard id: the stored string is only compared with it.

use serde::{Deserialize, Serialize};

/// Shard keys are plain values ([`crate::names`]): the manifest does not depend on the client.
pub use crate::names::ShardKey;
use crate::names::{SafeName, shown};

/// The most shards one collection entry may list.
pub const MAX_SHARDS: usize = 65_536;
/// The most peers a manifest may list.
pub const MAX_PEERS: usize = 1024;

/// The top-level `cluster` record: the peers at backup time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterRecord {
    #[serde(deserialize_with = "crate::json::at_most::<_, _, MAX_PEERS>")]
    pub peers: Vec<PeerRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerRecord {
    pub peer_id: u64,
    /// The peer's P2P URI as Qdrant reported it.
    pub uri: String,
    /// The REST address aimem used (never with credentials).
    pub url: String,
}

/// A collection entry's `cluster` record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CollectionCluster {
    pub shard_number: u32,
    pub replication_factor: u32,
    pub write_consistency_factor: u32,
    /// `auto` or `custom`.
    pub sharding_method: String,
    /// Creation order (the order of each key's smallest shard id); empty for `auto`.
    #[serde(default, deserialize_with = "crate::json::at_most::<_, _, MAX_SHARDS>")]
    pub shard_keys: Vec<ShardKey>,
    /// Sorted by `shard_id`.
    #[serde(deserialize_with = "crate::json::at_most::<_, _, MAX_SHARDS>")]
    pub shards: Vec<ShardRecord>,
    /// Custom sharding: the exact point count of each key, in `shard_keys` order. Absent when
    /// the count moved while the shards were snapshotted (then only the total range is known).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::json::at_most::<_, _, MAX_SHARDS>"
    )]
    pub key_records: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShardRecord {
    pub shard_id: u32,
    #[serde(default)]
    pub shard_key: Option<ShardKey>,
    /// `qdrant/<collection>/shard-<id>.snapshot`, relative to the backup folder.
    pub file: String,
    pub size_bytes: u64,
    /// `points_count` of the replica that was snapshotted, as its peer reported it: Qdrant
    /// calls it approximate, so it is information, never checked against a restore.
    pub records: u64,
    /// SHA-256 of the shard file (also in CHECKSUMS.sha256).
    pub sha256: String,
    pub source_peer: u64,
    #[serde(deserialize_with = "crate::json::at_most::<_, _, MAX_PEERS>")]
    pub replicas: Vec<ReplicaRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplicaRecord {
    pub peer_id: u64,
    pub state: String,
}

/// The relative path of a shard file: `qdrant/<collection>/shard-<id>.snapshot`.
pub fn shard_file(collection: &SafeName, shard_id: u32) -> String {
    format!(
        "{}/{}/{}",
        super::layout::SNAPSHOT_DIR,
        collection.as_str(),
        shard_file_name(shard_id)
    )
}

/// `shard-<id>.snapshot`.
pub fn shard_file_name(shard_id: u32) -> String {
    format!("shard-{shard_id}.snapshot")
}

impl CollectionCluster {
    /// What is wrong with this record of collection `collection` (a safe name), if anything.
    pub fn problem(&self, collection: &SafeName) -> Option<String> {
        let at = format!("collections.{}.cluster", shown(collection.as_str()));
        if self.shards.len() > MAX_SHARDS || self.shard_keys.len() > MAX_SHARDS {
            return Some(format!("{at} lists more shards than aimem accepts"));
        }
        if !matches!(self.sharding_method.as_str(), "auto" | "custom") {
            return Some(format!(
                "{at}.sharding_method is {}, not auto or custom",
                shown(&self.sharding_method)
            ));
        }
        if self.sharding_method == "auto" && !self.shard_keys.is_empty() {
            return Some(format!("{at} has shard keys but auto sharding"));
        }
        if !self.key_records.is_empty() && self.key_records.len() != self.shard_keys.len() {
            return Some(format!(
                "{at}.key_records has {} counts for {} shard keys",
                self.key_records.len(),
                self.shard_keys.len()
            ));
        }
        let mut last: Option<u32> = None;
        for shard in &self.shards {
            if last.is_some_and(|l| l >= shard.shard_id) {
                return Some(format!(
                    "{at}.shards are not sorted by unique shard_id (at shard {})",
                    shard.shard_id
                ));
            }
            last = Some(shard.shard_id);
            let expected = shard_file(collection, shard.shard_id);
            if shard.file != expected {
                return Some(format!(
                    "{at}: shard {} has file {}, expected {expected}",
                    shard.shard_id,
                    shown(&shard.file)
                ));
            }
            if shard.sha256.len() != 64 || !shard.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(format!(
                    "{at}: shard {} has no valid sha256",
                    shard.shard_id
                ));
            }
            if let Some(key) = &shard.shard_key
                && !self.shard_keys.contains(key)
            {
                return Some(format!(
                    "{at}: shard {} has shard key {key}, which is not among shard_keys",
                    shard.shard_id
                ));
            }
            if shard.replicas.len() > MAX_PEERS {
                return Some(format!(
                    "{at}: shard {} has too many replicas",
                    shard.shard_id
                ));
            }
        }
        let mut keys = self.shard_keys.clone();
        keys.sort();
        keys.dedup();
        if keys.len() != self.shard_keys.len() {
            return Some(format!("{at}.shard_keys repeats a key"));
        }
        None
    }
}

impl ClusterRecord {
    pub fn problem(&self) -> Option<String> {
        if self.peers.len() > MAX_PEERS {
            return Some("cluster.peers lists more peers than aimem accepts".to_string());
        }
        let mut ids: Vec<u64> = self.peers.iter().map(|p| p.peer_id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.peers.len() {
            return Some("cluster.peers repeats a peer".to_string());
        }
        None
    }
}

impl super::RawEntry {
    /// Why this entry's `cluster` record is not acceptable, if it is not (the name is known
    /// to be safe by now).
    pub(super) fn cluster_problem(&self) -> Option<String> {
        let record = self.cluster.as_ref()?;
        let at = format!("collections.{}", shown(&self.name));
        if !self.snapshot_file.is_empty() {
            return Some(format!(
                "{at} has both a snapshot_file and a cluster record"
            ));
        }
        let name = SafeName::new(&self.name).ok()?;
        record.problem(&name)
    }
}

impl super::Manifest {
    /// True when the manifest has a top-level `cluster` record.
    pub fn has_cluster_record(&self) -> bool {
        self.cluster.is_some()
    }

    /// The top-level `cluster` record: Some only for a cluster backup.
    pub fn cluster(&self) -> Option<&ClusterRecord> {
        self.cluster.as_ref()
    }

    /// Records the cluster's peers.
    pub fn set_cluster(&mut self, cluster: &ClusterRecord) {
        self.cluster = Some(cluster.clone());
    }
}

impl super::RawManifest {
    pub(super) fn cluster_problem(&self) -> Option<String> {
        let Some(record) = &self.cluster else {
            // A single node's streamed shards: each held by the one node alone.
            return self
                .collections
                .values()
                .filter_map(|c| c.cluster.as_ref().map(|record| (c, record)))
                .find(|(_, record)| !record.is_one_node())
                .map(|(c, _)| {
                    format!(
                        "collections.{} has shards on several peers but the manifest has no cluster",
                        shown(&c.name)
                    )
                });
        };
        record.problem()
    }
}

impl CollectionCluster {
    /// Every shard taken from one peer that alone holds it: a single node's shards. (Its
    /// recorded `replication_factor` may still be above 1: a single node keeps whatever the
    /// collection was created with, from a cluster's snapshot say.)
    pub fn is_one_node(&self) -> bool {
        let peer = self.shards.first().map(|s| s.source_peer);
        self.shards.iter().all(|s| {
            Some(s.source_peer) == peer
                && s.replicas.len() == 1
                && s.replicas[0].peer_id == s.source_peer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> CollectionCluster {
        let name = SafeName::new("discussions").unwrap();
        CollectionCluster {
            shard_number: 2,
            replication_factor: 1,
            write_consistency_factor: 1,
            sharding_method: "auto".into(),
            shard_keys: vec![],
            shards: (0..2)
                .map(|id| ShardRecord {
                    shard_id: id,
                    shard_key: None,
                    file: shard_file(&name, id),
                    size_bytes: 1,
                    records: 1,
                    sha256: "a".repeat(64),
                    source_peer: 1,
                    replicas: vec![ReplicaRecord {
                        peer_id: 1,
                        state: "Active".into(),
                    }],
                })
                .collect(),
            key_records: vec![],
        }
    }

    #[test]
    fn a_sound_record_passes_and_tampered_ones_do_not() {
        let name = SafeName::new("discussions").unwrap();
        assert_eq!(record().problem(&name), None);
        assert_eq!(
            record().shards[1].file,
            "qdrant/discussions/shard-1.snapshot"
        );
        let mut bad = record();
        bad.shards[0].file = "qdrant/../../etc/passwd".into();
        assert!(bad.problem(&name).is_some());
        let mut bad = record();
        bad.shards[1].shard_id = 0;
        bad.shards[1].file = shard_file(&name, 0);
        assert!(bad.problem(&name).is_some(), "duplicate shard id");
        let mut bad = record();
        bad.sharding_method = "magic".into();
        assert!(bad.problem(&name).is_some());
        let mut bad = record();
        bad.shards[0].shard_key = Some(ShardKey::Keyword("eu".into()));
        assert!(bad.problem(&name).is_some(), "key not declared");
        let mut bad = record();
        bad.shards[0].sha256 = "zz".into();
        assert!(bad.problem(&name).is_some());
    }

    #[test]
    fn a_cluster_manifest_parses_and_a_tampered_one_does_not() {
        let mut manifest: serde_json::Value = serde_json::json!({
            "backup_date": "2026-12-03T12:00:00+00:00",
            "collections": {"discussions": {
                "name": "discussions", "records": 2, "size_bytes": 2,
                "cluster": serde_json::to_value(record()).unwrap()
            }},
            "cluster": {"peers": [{"peer_id": 1, "uri": "http://a:6335/", "url": "http://a:6333"}]}
        });
        let path = camino::Utf8Path::new("manifest.json");
        let parsed = crate::manifest::Manifest::parse(path, manifest.to_string()).unwrap();
        let entry = &parsed.collections["discussions"];
        assert_eq!(
            entry.backup,
            crate::manifest::CollectionBackup::Shards(record())
        );
        assert_eq!(parsed.cluster().unwrap().peers[0].peer_id, 1);
        assert!(!parsed.to_json().contains("snapshot_file"));
        manifest["collections"]["discussions"]["snapshot_file"] = "discussions.snapshot".into();
        assert!(crate::manifest::Manifest::parse(path, manifest.to_string()).is_err());
        manifest["collections"]["discussions"]["snapshot_file"] = "".into();
        manifest["collections"]["discussions"]["cluster"]["shards"][0]["file"] =
            "qdrant/../x".into();
        assert!(crate::manifest::Manifest::parse(path, manifest.to_string()).is_err());
        manifest["collections"]["discussions"]["cluster"] = serde_json::to_value(record()).unwrap();
        manifest.as_object_mut().unwrap().remove("cluster");
        // Without the top-level record: a single node's streamed shards, every one the node's.
        let single = crate::manifest::Manifest::parse(path, manifest.to_string()).unwrap();
        assert!(single.cluster().is_none());
        let mut spread = record();
        spread.shards[1].source_peer = 2;
        spread.shards[1].replicas[0].peer_id = 2;
        manifest["collections"]["discussions"]["cluster"] = serde_json::to_value(spread).unwrap();
        assert!(
            crate::manifest::Manifest::parse(path, manifest.to_string()).is_err(),
            "shards on two peers without the top-level record"
        );
        let mut replicated = record();
        replicated.shards[0].replicas.push(ReplicaRecord {
            peer_id: 2,
            state: "Active".into(),
        });
        manifest["collections"]["discussions"]["cluster"] =
            serde_json::to_value(replicated).unwrap();
        assert!(
            crate::manifest::Manifest::parse(path, manifest.to_string()).is_err(),
            "a second replica without the top-level record"
        );
        // A single node may record any replication factor its collection was created with.
        let mut factor = record();
        factor.replication_factor = 2;
        manifest["collections"]["discussions"]["cluster"] = serde_json::to_value(factor).unwrap();
        assert!(crate::manifest::Manifest::parse(path, manifest.to_string()).is_ok());
    }
}
