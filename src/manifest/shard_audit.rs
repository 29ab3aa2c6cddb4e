//! The cluster part of a backup's audit (issue 12): a cluster backup's shard list must agree
//! with its own `shard_number` and keys, its placement with its peers, and each shard file's
//! own state (`replica_state.json`, `shard_config.json`, and the collection files when the
//! archive carries them) with the manifest.
//!
//! A real shard snapshot (docs/qdrant.md, "Snapshot archive layout") is the shard's directory
//! rooted at the archive top: `replica_state.json`, `shard_config.json`, `segments/`, an empty
//! `wal/`; it holds no collection `config.json` and no shard id. So the shard id is checked
//! through the peer that took it (`this_peer_id`) and, when the archive carries
//! `shard_key_mapping.json`, the keys.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::audit::{Finding, Kind, compare_schema};
use super::cluster::{CollectionCluster, ShardKey, ShardRecord};
use super::files::BackupFiles;
use super::layout::SNAPSHOT_DIR;
use super::{CollectionBackup, CollectionEntry, MANIFEST_FILE, Manifest, snapshot_archive};
use crate::names::shown;

/// How many missing shard ids are named one by one before the rest are counted.
const MISSING_NAMED: usize = 8;

/// Whether the shard list, the collection parameters and the placement of `entry` agree with
/// each other and with the manifest's peers; nothing for a single-node entry.
pub fn placement(name: &str, entry: &CollectionEntry, manifest: &Manifest) -> Vec<Finding> {
    let CollectionBackup::Shards(cluster) = &entry.backup else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    let about = |problem: String| Finding::new(MANIFEST_FILE, Kind::PlacementMismatch, problem);
    let shown_name = shown(name);

    // The collection's own parameters, as its fingerprint recorded them.
    let params = entry.schema.as_ref().and_then(|s| s.get("params"));
    let number = |key: &str| {
        params
            .and_then(|p| p.get(key))
            .map_or(Some(1), Value::as_u64)
    };
    for (key, recorded) in [
        ("shard_number", cluster.shard_number),
        ("replication_factor", cluster.replication_factor),
        ("write_consistency_factor", cluster.write_consistency_factor),
    ] {
        if params.is_some() && number(key) != Some(u64::from(recorded)) {
            findings.push(about(format!(
                "{shown_name}: the cluster record's {key} is {recorded}, its schema says {}",
                params
                    .and_then(|p| p.get(key))
                    .map_or_else(|| "1 (absent)".to_string(), Value::to_string)
            )));
        }
    }
    let method = params
        .and_then(|p| p.get("sharding_method"))
        .map_or(Some("auto"), Value::as_str);
    if params.is_some() && method != Some(cluster.sharding_method.as_str()) {
        findings.push(about(format!(
            "{shown_name}: the cluster record's sharding_method is {}, its schema says {}",
            shown(&cluster.sharding_method),
            method.map_or_else(|| "something else".to_string(), shown)
        )));
    }

    if cluster.shards.is_empty() {
        findings.push(about(format!(
            "{shown_name}: the cluster record lists no shard"
        )));
    }
    findings.extend(shard_list(name, cluster));

    // A cluster's peers; a single node's streamed shards are the node's own (one peer,
    // checked when the manifest was read).
    let peers: BTreeSet<u64> = match manifest.cluster() {
        Some(c) => c.peers.iter().map(|p| p.peer_id).collect(),
        None => cluster.shards.iter().map(|s| s.source_peer).collect(),
    };
    for shard in &cluster.shards {
        let of_shard = |problem: String| about(problem).of_shard(name, shard.shard_id);
        match shard
            .replicas
            .iter()
            .find(|r| r.peer_id == shard.source_peer)
        {
            None => findings.push(of_shard(format!(
                "taken from peer {}, which holds no replica of it",
                shard.source_peer
            ))),
            Some(replica) if replica.state != "Active" => findings.push(of_shard(format!(
                "taken from peer {}, whose replica was {}, not Active",
                shard.source_peer,
                shown(&replica.state)
            ))),
            Some(_) => {}
        }
        for replica in &shard.replicas {
            if !peers.contains(&replica.peer_id) {
                findings.push(of_shard(format!(
                    "has a replica on peer {}, which is not among the backup's peers",
                    replica.peer_id
                )));
            }
        }
    }

    let total = cluster
        .shards
        .iter()
        .try_fold(0u64, |sum, s| sum.checked_add(s.size_bytes));
    if total != Some(entry.size_bytes) {
        findings.push(about(format!(
            "{shown_name}: size_bytes is {}, its shard files add up to {}",
            entry.size_bytes,
            total.map_or_else(|| "more than 2^64".to_string(), |t| t.to_string())
        )));
    }
    findings
}

/// Auto sharding: exactly the shard ids `0..shard_number`, without keys. Custom: every shard
/// has one of the declared keys and every key has a shard.
fn shard_list(name: &str, cluster: &CollectionCluster) -> Vec<Finding> {
    let about = |problem: String| Finding::new(MANIFEST_FILE, Kind::PlacementMismatch, problem);
    let shown_name = shown(name);
    let mut findings = Vec::new();
    if cluster.sharding_method == "custom" {
        for shard in &cluster.shards {
            if shard.shard_key.is_none() {
                findings.push(
                    about("has no shard key, but the collection is custom-sharded".into())
                        .of_shard(name, shard.shard_id),
                );
            }
        }
        for key in &cluster.shard_keys {
            if !cluster
                .shards
                .iter()
                .any(|s| s.shard_key.as_ref() == Some(key))
            {
                findings.push(about(format!(
                    "{shown_name}: shard key {key} has no shard in the shard list"
                )));
            }
        }
        return findings;
    }
    let shard_number = cluster.shard_number;
    for shard in &cluster.shards {
        if shard.shard_id >= shard_number {
            findings.push(
                about(format!(
                    "is listed, but shard_number is {shard_number} (shard ids 0 to {})",
                    shard_number.saturating_sub(1)
                ))
                .of_shard(name, shard.shard_id),
            );
        }
        if let Some(key) = &shard.shard_key {
            findings.push(
                about(format!(
                    "has shard key {key}, but the collection is auto-sharded"
                ))
                .of_shard(name, shard.shard_id),
            );
        }
    }
    let listed: BTreeSet<u32> = cluster.shards.iter().map(|s| s.shard_id).collect();
    // The listed ids are bounded by the manifest's own checks; shard_number is not, so the
    // missing ids are counted by difference, never by walking up to shard_number.
    let below = listed.range(..shard_number).count() as u64;
    let missing_count = u64::from(shard_number) - below;
    let mut named = 0;
    let mut id = 0u32;
    while named < MISSING_NAMED && u64::from(named as u32) < missing_count && id < shard_number {
        if !listed.contains(&id) {
            findings.push(
                about(format!(
                    "is missing from the shard list, but shard_number is {shard_number}"
                ))
                .of_shard(name, id),
            );
            named += 1;
        }
        id += 1;
    }
    if missing_count > named as u64 {
        findings.push(about(format!(
            "{shown_name}: {} more shard ids below shard_number {shard_number} are missing from the shard list",
            missing_count - named as u64
        )));
    }
    findings
}

/// The deep check of one shard file of `entry`: a whole tar holding a shard snapshot taken
/// on the recorded peer, with a local replica, whose collection files (when present) agree
/// with the manifest's fingerprint and whose key mapping (when present) maps its key to it.
pub fn deep_check_shard(
    name: &str,
    entry: &CollectionEntry,
    files: &dyn BackupFiles,
    file: &str,
    open_problem_reported: bool,
) -> Option<Finding> {
    let CollectionBackup::Shards(cluster) = &entry.backup else {
        return None;
    };
    let shard = cluster.shards.iter().find(|s| s.file == file)?;
    let finding = |kind, problem: String| {
        Some(Finding::new(file, kind, problem).of_shard(name, shard.shard_id))
    };
    // Opened inside the backup only: a link or a special file is never read.
    let opened = match files.open(file) {
        Ok(opened) => opened,
        Err(_) if open_problem_reported => return None,
        Err(e) => return finding(Kind::Unreadable, format!("cannot be read ({e})")),
    };
    let archive = match snapshot_archive::read_shard_from(opened) {
        Ok(archive) => archive,
        Err(e) => return finding(Kind::SnapshotDamaged, e.to_string()),
    };
    if !archive.has_shard_type {
        return finding(
            Kind::SnapshotDamaged,
            "its shard_config.json has no shard type".into(),
        );
    }
    match archive.this_peer_id {
        None => {
            return finding(
                Kind::SnapshotDamaged,
                "its replica_state.json has no this_peer_id".into(),
            );
        }
        Some(peer) if peer != shard.source_peer => {
            return finding(
                Kind::PlacementMismatch,
                format!(
                    "was taken on peer {peer}, the manifest says peer {}",
                    shard.source_peer
                ),
            );
        }
        Some(_) => {}
    }
    if archive.is_local != Some(true) {
        return finding(
            Kind::PlacementMismatch,
            "holds no local replica (replica_state.json: is_local is not true): it has no points"
                .into(),
        );
    }
    if let Some(mapping) = &archive.shard_key_mapping
        && let Some(problem) = key_mapping_problem(mapping, shard)
    {
        return finding(Kind::PlacementMismatch, problem);
    }
    if let Some(schema) = &archive.schema {
        return compare_schema(name, file, schema, entry.schema.as_ref())
            .map(|f| f.of_shard(name, shard.shard_id));
    }
    None
}

/// `shard_key_mapping.json` is a list `[{"key", "shard_ids"}]` (or, in older Qdrant, an object
/// `{key: [ids]}`): the shard's key must map to its id, and no other key may. A form that is
/// neither is not judged.
fn key_mapping_problem(mapping: &Value, shard: &ShardRecord) -> Option<String> {
    let mut keys_of_shard: BTreeMap<Option<ShardKey>, Vec<u64>> = BTreeMap::new();
    let mut add = |key: Option<ShardKey>, ids: &Value| {
        if let Some(ids) = ids.as_array() {
            keys_of_shard
                .entry(key)
                .or_default()
                .extend(ids.iter().filter_map(Value::as_u64));
        }
    };
    match mapping {
        Value::Array(items) => {
            for item in items {
                let key = item.get("key").and_then(|k| ShardKey::from_value(k).ok());
                add(key, item.get("shard_ids").unwrap_or(&Value::Null));
            }
        }
        Value::Object(map) => {
            for (key, ids) in map {
                let key = match key.parse::<u64>() {
                    Ok(n) => ShardKey::Number(n),
                    Err(_) => ShardKey::Keyword(key.clone()),
                };
                add(Some(key), ids);
            }
        }
        _ => return None,
    }
    let id = u64::from(shard.shard_id);
    let holders: Vec<&Option<ShardKey>> = keys_of_shard
        .iter()
        .filter(|(_, ids)| ids.contains(&id))
        .map(|(key, _)| key)
        .collect();
    let describe = |key: &Option<ShardKey>| key.as_ref().map_or("?".to_string(), |k| k.to_string());
    match &shard.shard_key {
        None if holders.is_empty() => None,
        None => Some(format!(
            "its archive maps shard key {} to it, the manifest records no key",
            describe(holders[0])
        )),
        Some(key) if holders.iter().any(|h| h.as_ref() == Some(key)) && holders.len() == 1 => None,
        Some(key) => Some(format!(
            "the manifest records shard key {key}, its archive maps {} to shard {}",
            if holders.is_empty() {
                "no key".to_string()
            } else {
                holders
                    .iter()
                    .map(|h| describe(h))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            shard.shard_id
        )),
    }
}

/// Files in a cluster collection's folder `qdrant/<collection>/` that are not among its shard
/// files: a shard file the manifest does not list (so a restore would leave it out) is named.
/// `present` is every file of the backup; what lies deeper in the folder is named by its
/// first part (as a folder would be).
pub fn stray_files(present: &[String], name: &str, entry: &CollectionEntry) -> Vec<Finding> {
    let CollectionBackup::Shards(cluster) = &entry.backup else {
        return Vec::new();
    };
    let folder = format!("{SNAPSHOT_DIR}/{name}");
    let known: BTreeSet<String> = cluster.shards.iter().map(|s| s.file.clone()).collect();
    let inside: BTreeSet<&str> = present
        .iter()
        .filter_map(|file| file.strip_prefix(&folder)?.strip_prefix('/'))
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .collect();
    let mut findings = Vec::new();
    for file_name in inside {
        let file = format!("{folder}/{file_name}");
        if known.contains(&file) {
            continue;
        }
        let problem = "lies in the collection's shard folder but is not in its shard list";
        let finding = Finding::new(&file, Kind::PlacementMismatch, problem.into());
        findings.push(match shard_id_of(file_name) {
            Some(id) => finding.of_shard(name, id),
            None => finding,
        });
    }
    findings
}

/// The shard id of a file named `shard-<id>.snapshot`.
fn shard_id_of(file_name: &str) -> Option<u32> {
    let id = file_name
        .strip_prefix("shard-")?
        .strip_suffix(".snapshot")?;
    let parsed: u32 = id.parse().ok()?;
    (super::cluster::shard_file_name(parsed) == file_name).then_some(parsed)
}

/// A cluster collection's exact count at backup time against its shards' recorded point
/// counts: Qdrant's per-shard `points_count` is approximate (docs/qdrant.md, "Point counts"),
/// so a difference is information, never damage; restore checks the exact count.
pub fn records_note(name: &str, entry: &CollectionEntry) -> Option<Finding> {
    let CollectionBackup::Shards(cluster) = &entry.backup else {
        return None;
    };
    let sum = cluster
        .shards
        .iter()
        .try_fold(0u64, |sum, s| sum.checked_add(s.records));
    let high = entry
        .records_max
        .unwrap_or(entry.records)
        .max(entry.records);
    if sum.is_some_and(|sum| (entry.records..=high).contains(&sum)) {
        return None;
    }
    let range = match high == entry.records {
        true => entry.records.to_string(),
        false => format!("between {} and {high}", entry.records),
    };
    Some(Finding::new(
        MANIFEST_FILE,
        Kind::RecordsDiffer,
        format!(
            "{}: its shards' point counts add up to {}, its exact count at backup time was {range}: Qdrant's per-shard counts are approximate (restore checks the exact count)",
            shown(name),
            sum.map_or_else(|| "more than 2^64".to_string(), |s| s.to_string())
        ),
    ))
}

/// Names the shard of every finding about a shard file (the checksum checks only know files).
pub fn name_shards(findings: &mut [Finding], manifest: &Manifest) {
    let shard_of: BTreeMap<String, (String, u32)> = manifest
        .collections
        .iter()
        .filter_map(|(name, entry)| match &entry.backup {
            CollectionBackup::Shards(cluster) => Some((name, cluster)),
            CollectionBackup::Snapshot { .. } | CollectionBackup::Points(_) => None,
        })
        .flat_map(|(name, cluster)| {
            cluster
                .shards
                .iter()
                .map(move |s| (s.file.clone(), (name.clone(), s.shard_id)))
        })
        .collect();
    for finding in findings.iter_mut().filter(|f| f.shard.is_none()) {
        if let Some((collection, shard)) = shard_of.get(&finding.file) {
            finding.collection = Some(collection.clone());
            finding.shard = Some(*shard);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::manifest::cluster::ReplicaRecord;

    fn shard(id: u32, key: Option<&str>) -> ShardRecord {
        ShardRecord {
            shard_id: id,
            shard_key: key.map(|k| ShardKey::Keyword(k.into())),
            file: format!("qdrant/c/shard-{id}.snapshot"),
            size_bytes: 1,
            records: 1,
            sha256: "a".repeat(64),
            source_peer: 1,
            replicas: vec![ReplicaRecord {
                peer_id: 1,
                state: "Active".into(),
            }],
        }
    }

    #[test]
    fn a_key_mapping_must_map_the_recorded_key_to_the_shard() {
        let list = json!([{"key": "eu", "shard_ids": [0]}, {"key": "us", "shard_ids": [1]}]);
        assert_eq!(key_mapping_problem(&list, &shard(0, Some("eu"))), None);
        assert_eq!(key_mapping_problem(&list, &shard(1, Some("us"))), None);
        let swapped = key_mapping_problem(&list, &shard(0, Some("us"))).unwrap();
        assert!(swapped.contains("records shard key `us`"), "{swapped}");
        assert!(key_mapping_problem(&list, &shard(0, None)).is_some());
        assert!(key_mapping_problem(&list, &shard(5, Some("eu"))).is_some());
        // The older object form, and auto sharding's empty mapping.
        let object = json!({"eu": [0], "7": [1]});
        assert_eq!(key_mapping_problem(&object, &shard(0, Some("eu"))), None);
        let mut numbered = shard(1, None);
        numbered.shard_key = Some(ShardKey::Number(7));
        assert_eq!(key_mapping_problem(&object, &numbered), None);
        assert_eq!(key_mapping_problem(&json!([]), &shard(0, None)), None);
        assert_eq!(key_mapping_problem(&json!("odd"), &shard(0, None)), None);
    }

    #[test]
    fn only_canonical_shard_file_names_carry_a_shard_id() {
        assert_eq!(shard_id_of("shard-7.snapshot"), Some(7));
        assert_eq!(shard_id_of("shard-07.snapshot"), None);
        assert_eq!(shard_id_of("shard-+7.snapshot"), None);
        assert_eq!(shard_id_of("other.snapshot"), None);
    }
}
