//! Shard-aware restore (issue 12): a cluster backup into a cluster or a single node, and a
//! single-node backup into a cluster, shard by shard (api.md §3.5, §5.4).
//!
//! The collection is created with the recorded sharding (shard keys in their recorded order, so
//! the server hands out the same shard ids). Once every replica is Active, *every* replica of
//! each shard is recovered from the shard's file on the peer holding it (`priority=no_sync`:
//! no replica waits for Qdrant to copy another, which loses data when a replica is still
//! initializing, see [`super::replicas`]). The collection counts as restored only when every
//! replica holds what the backup holds, checked again once the cluster has stayed quiet.
//! An existing collection is overwritten the same way after a pre-restore copy of each shard
//! ([`super::cluster_overwrite`]), and a rollback puts that copy back the same way.

use std::time::Instant;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::json;

use super::act::{Context, StepError, rewound};
use super::plan::{Action, Planned, Source};
use super::replica_uploads::{self, ShardUpload, UnclearShard, UploadError, Uploads};
use super::replicas::{self, Expected, Node, Placement, ReplicaError, Settle};
use super::rollback::Undo;
use crate::cmd::peers::Topology;
use crate::manifest::checksums::{self, Entry};
use crate::manifest::cluster::{CollectionCluster, ShardRecord, shard_file};
use crate::names::SafeName;

/// One shard file of a cluster backup, opened inside the backup folder.
#[derive(Debug)]
pub struct ShardFile {
    pub record: ShardRecord,
    /// Relative to the backup folder (`qdrant/<collection>/shard-<id>.snapshot`).
    pub relative: String,
    /// The very file that was checked, so what is uploaded is what was hashed.
    pub file: std::fs::File,
    /// Its SHA-256 from CHECKSUMS.sha256, when that verified it.
    pub verified_sha256: Option<String>,
}

/// The cluster part of a cluster backup's collection.
#[derive(Debug)]
pub struct ClusterSource {
    pub record: CollectionCluster,
    pub shards: Vec<ShardFile>,
}

impl ClusterSource {
    pub fn size(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.file.metadata().map_or(0, |m| m.len()))
            .sum()
    }
}

/// The shard files a cluster entry names (rebuilt from the safe name, never taken from the
/// manifest's strings), each of which must be listed in CHECKSUMS.sha256.
pub fn shard_paths(name: &str, record: &CollectionCluster) -> Vec<String> {
    match SafeName::new(name) {
        Ok(safe) => record
            .shards
            .iter()
            .map(|s| shard_file(&safe, s.shard_id))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Opens every shard file of a cluster entry (regular files inside `dir`, no links).
pub fn open(
    dir: &Utf8Path,
    name: &str,
    record: &CollectionCluster,
    listed: Option<&[Entry]>,
) -> Result<ClusterSource, (Utf8PathBuf, std::io::Error)> {
    let mut shards = Vec::new();
    for (shard, relative) in record.shards.iter().zip(shard_paths(name, record)) {
        let file = crate::manifest::confined::open(dir, &relative)
            .map_err(|e| (dir.join(&relative), e))?;
        let verified_sha256 = listed
            .and_then(|l| l.iter().find(|e| e.path == relative))
            .map(|e| e.sha256.clone());
        shards.push(ShardFile {
            record: shard.clone(),
            relative,
            file,
            verified_sha256,
        });
    }
    Ok(ClusterSource {
        record: record.clone(),
        shards,
    })
}

pub(super) fn cluster_failure(collection: &str, detail: String) -> StepError {
    StepError::Cluster {
        collection: collection.to_string(),
        detail,
    }
}

/// A replica failure as the step error that rolls the restore back.
pub(super) fn step_error(collection: &str) -> impl Fn(ReplicaError) -> StepError + '_ {
    move |e| match e {
        ReplicaError::Interrupted => StepError::Interrupted,
        ReplicaError::Cluster(detail) => cluster_failure(collection, detail),
        ReplicaError::Check(detail) => StepError::Check {
            collection: collection.to_string(),
            detail,
        },
    }
}

/// Every peer's view of the collection (a peer that does not know it is an error).
pub(super) fn read_placement(nodes: &[Node], target: &str) -> Result<Placement, StepError> {
    replicas::read_placement(nodes, target, false).map_err(step_error(target))
}

/// Waits, bounded by `--recovery-timeout`, until the peers agree, every replica is Active, no
/// transfer runs, and the collection has the `expected` shard ids and keys.
pub(super) fn wait_settled(
    cx: &Context,
    nodes: &[Node],
    target: &str,
    expected: &Expected,
) -> Result<Placement, StepError> {
    let spinner = cx.ui.spinner(&format!(
        "waiting for every replica of {target} to be Active"
    ));
    let deadline = Instant::now() + cx.settle_limit;
    let settle = Settle {
        shards: Some(&expected.shards),
        dead_is_enough: false,
    };
    let settled = replicas::wait_settled(nodes, target, deadline, cx.stop, settle);
    spinner.finish_and_clear();
    settled.map(|s| s.placement).map_err(step_error(target))
}

/// Restores one absent collection shard-aware; refused collections do nothing.
pub(super) fn restore_one(
    cx: &Context,
    planned: &Planned,
    undo: &mut Undo,
    go_on: &dyn Fn() -> Result<(), StepError>,
    named: bool,
) -> Result<Option<f64>, StepError> {
    let started = Instant::now();
    let source = &planned.source;
    let target = source.target.to_string();
    match &planned.action {
        Action::Create => {}
        Action::Overwrite { live, .. } => {
            cx.ui.step(&format!(
                "  Restoring {target} ({} records, shard by shard, over the existing collection)...",
                source.entry.records
            ));
            super::cluster_overwrite::overwrite(cx, planned, live, undo, go_on)?;
            cx.ui.ok(&format!(
                "`{target}` recovered ({} records, every replica checked)",
                source.entry.records
            ));
            return Ok(Some(started.elapsed().as_secs_f64()));
        }
        Action::Refuse(_) => return Ok(None),
    }
    cx.ui.step(&format!(
        "  Restoring {target} ({} records, shard by shard)...",
        source.entry.records
    ));
    let Some(fingerprint) = &source.fingerprint else {
        return Ok(None);
    };
    let mut body = fingerprint.create_collection_body();
    if let (Some(cluster), Some(fields)) = (&source.cluster, body.as_object_mut()) {
        let (replication, consistency) = match cx.topology.is_cluster() {
            true => (
                cluster.record.replication_factor,
                cluster.record.write_consistency_factor,
            ),
            // One node holds one replica of each shard.
            false => (1, 1),
        };
        fields.insert("shard_number".into(), json!(cluster.record.shard_number));
        fields.insert("replication_factor".into(), json!(replication));
        fields.insert("write_consistency_factor".into(), json!(consistency));
        // Qdrant leaves `auto` (the default) out of the collection's config: so does the body,
        // or the restored schema would differ from the backup's.
        if cluster.record.sharding_method == "custom" {
            fields.insert("sharding_method".into(), json!("custom"));
        }
    }
    match cx.client.create_collection(&target, &body) {
        Ok(()) => undo.created.push(target.clone()),
        Err(e) => {
            // Without an answer it may exist anyway: it was absent when planned, so it is ours.
            if e.status().is_none() {
                undo.created.push(target.clone());
            }
            return Err(StepError::Qdrant {
                step: "creating",
                collection: target,
                source: e,
            });
        }
    }
    super::indexes::build(cx.client, cx.stop, &target, &fingerprint.payload_indexes())?;
    if let Some(cluster) = &source.cluster {
        for key in &cluster.record.shard_keys {
            go_on()?;
            // A key may have been created with its own `shards_number`: each gets as many
            // shards as the backup records for it, so the ids that follow stay the same.
            let shards = cluster
                .record
                .shards
                .iter()
                .filter(|s| s.shard_key.as_ref() == Some(key))
                .count();
            let mut extra = serde_json::Map::new();
            if shards > 0 {
                extra.insert("shards_number".into(), json!(shards));
            }
            // Likewise its own replication factor: the replicas its shards had at backup
            // time. On a single node there is one replica whatever the backup had.
            let replicas = cluster
                .record
                .shards
                .iter()
                .filter(|s| s.shard_key.as_ref() == Some(key))
                .map(|s| s.replicas.len())
                .max()
                .unwrap_or(0);
            // Never more replicas than the target has peers (a smaller cluster than the
            // backup's holds each shard at most once per peer).
            let replicas = replicas.min(cx.topology.peers().len());
            if replicas > 0 && cx.topology.is_cluster() {
                extra.insert("replication_factor".into(), json!(replicas));
            }
            cx.client
                .create_shard_key(&target, key, &extra)
                .map_err(|e| {
                    cluster_failure(
                        &target,
                        format!(
                            "creating its shard key {key} failed: {e}{}",
                            match cx.topology.is_cluster() {
                                true => "",
                                false =>
                                    " (this server may not take custom sharding outside a cluster: restore into a \
                                     distributed Qdrant)",
                            }
                        ),
                    )
                })?;
        }
    }
    cx.ui
        .ok(&format!("`{target}` created from the backup's schema"));
    go_on()?;

    let nodes: Vec<Node> = match cx.topology {
        Topology::Cluster { peers } => peers
            .iter()
            .map(|p| Node {
                peer_id: p.peer_id,
                client: p.client.clone(),
            })
            .collect(),
        Topology::Single => {
            let view = cx
                .client
                .collection_cluster_view(&target)
                .map_err(|e| cluster_failure(&target, format!("reading its shards failed: {e}")))?;
            vec![Node {
                peer_id: view.peer_id,
                client: cx.client.clone(),
            }]
        }
    };
    // Only once every replica is Active: a shard recovered while another replica of it
    // still initializes leaves that replica empty.
    let expected = source.expected();
    let placement = wait_settled(cx, &nodes, &target, &expected)?;
    // A collection this run created is deleted on rollback, whatever Qdrant still recovers.
    let unclear = std::sync::Mutex::new(Vec::new());
    upload_all(
        cx,
        source,
        &target,
        (&nodes, &placement),
        &unclear,
        undo.journal.as_ref(),
    )?;
    super::act::stopped(cx.stop)?;
    check(cx, source, &target, &nodes, &expected, true)?;
    let recovered = match named {
        true => format!("`{target}` recovered"),
        false => "Collection recovered".to_string(),
    };
    cx.ui.ok(&format!(
        "{recovered} ({} records, every replica checked)",
        source.entry.records
    ));
    Ok(Some(started.elapsed().as_secs_f64()))
}

/// Recovers every replica of every shard of `source` from the backup's files.
pub(super) fn upload_all(
    cx: &Context,
    source: &Source,
    target: &str,
    (nodes, placement): (&[Node], &Placement),
    unclear: &std::sync::Mutex<Vec<UnclearShard>>,
    journal: Option<&super::journal::SharedJournal>,
) -> Result<(), StepError> {
    let io = |path: &str| {
        let path = path.to_string();
        move |source: std::io::Error| StepError::Io { path, source }
    };
    // (shard id, file, shown path, sha256), whole collection snapshot when single-node.
    let mut opened: Vec<(u32, &std::fs::File, String, Option<String>)> = Vec::new();
    match &source.cluster {
        Some(cluster) => {
            for shard in &cluster.shards {
                opened.push((
                    shard.record.shard_id,
                    &shard.file,
                    shard.relative.clone(),
                    shard.verified_sha256.clone(),
                ));
            }
        }
        None => opened.push((
            0,
            &source.file,
            source.snapshot.to_string(),
            source.verified_sha256.clone(),
        )),
    }
    let mut files = Vec::new();
    for (shard, file, shown, sha) in opened {
        let sha256 = match sha {
            Some(sha) => sha,
            // Not verified (--skip-checksum-verify): hashed now, so the server at least
            // checks it received this file intact.
            None => {
                let hashed = rewound(file)
                    .and_then(checksums::hash_reader)
                    .map_err(io(&shown))?;
                hashed.0
            }
        };
        // Uploads read at explicit offsets: the handle's cursor does not matter.
        let file = file.try_clone().map_err(io(&shown))?;
        files.push(ShardUpload {
            shard,
            file,
            shown,
            sha256,
        });
    }
    let replicas: usize = files.iter().map(|f| placement.holders(f.shard).len()).sum();
    let spinner = cx.ui.spinner(&format!(
        "Qdrant recovering {} shard file(s) of {target} on {replicas} replica(s)",
        files.len()
    ));
    let stamp = cx.stamp.clone();
    let file_name = move |shard: u32| {
        format!(
            "aimem-restore-{target}-shard-{shard}-{stamp}-{}.snapshot",
            std::process::id()
        )
    };
    let uploads = Uploads {
        target,
        nodes,
        placement,
        whole_collection: source.cluster.is_none(),
        file_name: &file_name,
        stop: cx.stop,
        unclear,
        keep_going: false,
        journal,
    };
    let recovered = replica_uploads::recover_every_replica(&uploads, files);
    spinner.finish_and_clear();
    match recovered {
        Ok(total) => {
            cx.ui.ok(&format!(
                "every replica of `{target}` recovered from its shard file ({total} upload(s))"
            ));
            Ok(())
        }
        Err(UploadError::Interrupted) => Err(StepError::Interrupted),
        Err(UploadError::Failed(detail)) => Err(cluster_failure(target, detail)),
    }
}

/// The restored collection has the backup's schema ([`super::act::check_schema`]), and every
/// replica of it holds what the backup holds ([`replicas::settle_and_verify`]), checked again
/// after a quiet moment.
pub(super) fn check(
    cx: &Context,
    source: &Source,
    target: &str,
    nodes: &[Node],
    expected: &Expected,
    created: bool,
) -> Result<(), StepError> {
    super::act::check_schema(cx, source, created)?;
    let spinner = cx
        .ui
        .spinner(&format!("checking every replica of {target}"));
    let checked =
        replicas::settle_and_verify(nodes, cx.client, target, expected, cx.settle_limit, cx.stop);
    spinner.finish_and_clear();
    checked.map_err(step_error(target))
}

/// The bytes a source uploads.
pub fn size(source: &Source) -> u64 {
    match &source.cluster {
        Some(cluster) => cluster.size(),
        None => source.file.metadata().map_or(0, |m| m.len()),
    }
}
