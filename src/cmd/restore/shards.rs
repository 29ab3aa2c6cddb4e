//! Shard-aware restore (issue 12): a cluster backup into a cluster or a single node, and a
//! single-node backup into a cluster, shard by shard (api.md §3.5, §5.4).
//!
//! The collection is created with the recorded sharding (shard keys in their recorded order, so
//! the server hands out the same shard ids), each shard is recovered from its own file on a
//! peer holding a replica of it (`priority=snapshot`: the other replicas then copy it from
//! there), and the restore waits, bounded by `--recovery-timeout`, until every replica is
//! Active and no shard transfer runs before it checks the exact count and the schema.
//! Only absent collections are restored this way; the plan refuses the rest first.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{Value, json};

use super::act::{Context, StepError, rewound};
use super::plan::{Action, Planned, Refusal, Source};
use super::rollback::Undo;
use crate::cmd::peers::Topology;
use crate::fingerprint::{self, Severity};
use crate::manifest::checksums::{self, Entry};
use crate::manifest::cluster::{CollectionCluster, ShardKey, ShardRecord, shard_file};
use crate::names::SafeName;
use crate::qdrant::{Cancelled, Client, QdrantError};

/// How often the replicas' states are asked while waiting for them to turn Active.
const POLL: Duration = Duration::from_millis(200);

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

/// The `shard_number` a single-node backup's schema records (1 when it says nothing).
fn recorded_shard_number(source: &Source) -> u64 {
    source
        .fingerprint
        .as_ref()
        .and_then(|f| {
            f.as_value()
                .pointer("/params/shard_number")
                .and_then(Value::as_u64)
        })
        .unwrap_or(1)
}

/// True when this collection is restored by this module.
pub fn applies(topology: &Topology, source: &Source) -> bool {
    source.cluster.is_some() || topology.is_cluster()
}

/// Refuses, before anything changes, what the layouts do not allow.
pub fn check_layout(topology: &Topology, planned: &mut Planned) {
    let source = &planned.source;
    if !applies(topology, source) || matches!(planned.action, Action::Refuse(_)) {
        return;
    }
    let target = source.target.to_string();
    let refusal = |why: String, todo: String| {
        Action::Refuse(Refusal::ClusterLayout {
            target: target.clone(),
            why,
            todo,
        })
    };
    let restorable_over = source.cluster.is_some() && topology.is_cluster();
    if restorable_over && matches!(planned.action, Action::Overwrite { .. }) {
        if let Some(problem) = overwrite_problem(topology, source) {
            planned.action = refusal(
                format!("the existing `{target}` is sharded otherwise than the backup: {problem}"),
                format!(
                    "Restore into a new name (--collection {} --target-name NEW), or delete `{target}` \
                     first (after taking a backup of it) and run the restore again.",
                    source.entry.name
                ),
            );
        }
        return;
    }
    if matches!(planned.action, Action::Overwrite { .. }) {
        let what = match (source.cluster.is_some(), topology.is_cluster()) {
            (true, true) => "a cluster backup over an existing collection of a cluster",
            (true, false) => "a cluster backup over an existing collection",
            _ => "over an existing collection of a cluster",
        };
        planned.action = refusal(
            format!(
                "`{target}` exists, and this aimem does not restore {what} yet (its shard-aware pre-restore copy is not built)"
            ),
            format!(
                "Restore into a new name (--collection {} --target-name NEW), or delete `{target}` first \
                 (after taking a backup of it) and run the restore again.",
                source.entry.name
            ),
        );
        return;
    }
    if source.cluster.is_none() && topology.is_cluster() {
        let shards = recorded_shard_number(source);
        if shards != 1 {
            planned.action = refusal(
                format!(
                    "the backup is a single-node snapshot of a collection with shard_number {shards}; \
                     a collection snapshot recovers only the shards of the peer it is uploaded to"
                ),
                "Restore it on a single-node Qdrant, then copy its points into the cluster with a \
                 migration tool (or re-index them). Only a single-node backup of a collection with \
                 shard_number 1 restores into a cluster."
                    .to_string(),
            );
        }
    }
}

/// One line for the plan: how the collection is laid out where it goes.
pub fn describe(topology: &Topology, source: &Source) -> Option<String> {
    let peers = topology.peers().len();
    match (&source.cluster, topology.is_cluster()) {
        (Some(c), true) => Some(format!(
            "{}: {} shards ({} sharding{}) × replication {} over {peers} peers; each shard recovered from its file on a peer holding it",
            source.target,
            c.record.shards.len(),
            c.record.sharding_method,
            keys_shown(&c.record.shard_keys),
            c.record.replication_factor
        )),
        (Some(c), false) => Some(format!(
            "{}: a cluster backup of {} shards ({} sharding{}) into a single node: replication 1, each shard recovered from its file",
            source.target,
            c.record.shards.len(),
            c.record.sharding_method,
            keys_shown(&c.record.shard_keys),
        )),
        (None, true) => Some(format!(
            "{}: a single-node backup into a cluster of {peers} peers: its one shard recovered on the peer holding shard 0",
            source.target
        )),
        (None, false) => None,
    }
}

fn keys_shown(keys: &[ShardKey]) -> String {
    match keys.is_empty() {
        true => String::new(),
        false => format!(
            ", keys {}",
            keys.iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The `--json` shard details of one collection (new keys only).
pub fn report(topology: &Topology, source: &Source) -> Option<Value> {
    if !applies(topology, source) {
        return None;
    }
    let peers: Vec<Value> = topology
        .peers()
        .iter()
        .map(|p| json!({"peer_id": p.peer_id, "url": p.client.display_url()}))
        .collect();
    Some(match &source.cluster {
        Some(c) => json!({
            "backup_layout": "cluster",
            "target_layout": if topology.is_cluster() { "cluster" } else { "single" },
            "peers": peers,
            "shard_number": c.record.shard_number,
            "replication_factor": c.record.replication_factor,
            "write_consistency_factor": c.record.write_consistency_factor,
            "sharding_method": c.record.sharding_method,
            "shard_keys": c.record.shard_keys,
            "shards": c.shards.iter().map(|s| json!({
                "shard_id": s.record.shard_id,
                "shard_key": s.record.shard_key,
                "file": s.relative,
                "records": s.record.records,
            })).collect::<Vec<_>>(),
        }),
        None => json!({
            "backup_layout": "single",
            "target_layout": "cluster",
            "peers": peers,
            "shard_number": recorded_shard_number(source),
        }),
    })
}

/// A peer to talk to: its id and client.
#[derive(Clone)]
struct Node {
    peer_id: u64,
    client: Client,
}

/// Every shard's key and replicas (peer id → state) as their own peers report them, and the
/// shard transfers the peers report running.
#[derive(Debug, Default)]
struct Placement {
    shards: BTreeMap<u32, (Option<ShardKey>, BTreeMap<u64, String>)>,
    transfers: usize,
}

fn cluster_failure(collection: &str, detail: String) -> StepError {
    StepError::Cluster {
        collection: collection.to_string(),
        detail,
    }
}

fn read_placement(nodes: &[Node], target: &str) -> Result<Placement, StepError> {
    let mut placement = Placement::default();
    for node in nodes {
        let view = view_of(node, target).map_err(|e| match e {
            QdrantError::Interrupted => StepError::Interrupted,
            e => cluster_failure(
                target,
                format!(
                    "reading its placement from peer {} ({}) failed: {e}",
                    node.peer_id,
                    node.client.display_url()
                ),
            ),
        })?;
        if view.peer_id != node.peer_id {
            return Err(cluster_failure(
                target,
                format!(
                    "{} answers for peer {} as peer {}",
                    node.client.display_url(),
                    node.peer_id,
                    view.peer_id
                ),
            ));
        }
        placement.transfers += view.transfers;
        for replica in view.local {
            let shard = placement.shards.entry(replica.shard_id).or_default();
            if shard.0.is_some() && shard.0 != replica.shard_key {
                return Err(cluster_failure(
                    target,
                    format!("shard {} has two shard keys", replica.shard_id),
                ));
            }
            shard.0 = shard.0.take().or(replica.shard_key);
            shard.1.insert(view.peer_id, replica.state);
        }
    }
    Ok(placement)
}

/// Reads of a placement that fail for a moment (no answer, a 5xx) before it counts as failed.
const PLACEMENT_ATTEMPTS: u32 = 3;

/// One peer's view of the collection's placement. A peer busy recovering shards may fail to
/// answer for a moment: that alone must not fail (and roll back) a restore, nor keep a
/// rollback from finishing, so such a read is tried again after a short pause.
fn view_of(
    node: &Node,
    target: &str,
) -> Result<crate::qdrant::cluster::CollectionClusterView, QdrantError> {
    let mut attempt = 1;
    loop {
        match node.client.collection_cluster_view(target) {
            Err(e)
                if attempt < PLACEMENT_ATTEMPTS
                    && !matches!(e, QdrantError::Interrupted)
                    && e.status().is_none_or(|status| status >= 500) =>
            {
                std::thread::sleep(POLL * attempt);
                attempt += 1;
            }
            other => return other,
        }
    }
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
            overwrite(cx, planned, live, undo, go_on)?;
            cx.ui.ok(&format!(
                "`{target}` recovered ({} records, every replica Active)",
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
    let placement = read_placement(&nodes, &target)?;
    check_shard_ids(&target, source, &placement)?;
    // A collection this run created is deleted on rollback, whatever Qdrant still recovers.
    let unclear = std::sync::Mutex::new(Vec::new());
    upload_all(cx, source, &target, &nodes, &placement, &unclear)?;
    super::act::stopped(cx.stop)?;
    wait_until_active(cx, &nodes, &target)?;
    check(cx, source, &target, true)?;
    let recovered = match named {
        true => format!("`{target}` recovered"),
        false => "Collection recovered".to_string(),
    };
    cx.ui.ok(&format!(
        "{recovered} ({} records, every replica Active)",
        source.entry.records
    ));
    Ok(Some(started.elapsed().as_secs_f64()))
}

/// The server must have given the shards the ids (and keys) the backup records.
fn check_shard_ids(target: &str, source: &Source, placement: &Placement) -> Result<(), StepError> {
    let live: BTreeMap<u32, Option<ShardKey>> = placement
        .shards
        .iter()
        .map(|(id, (key, _))| (*id, key.clone()))
        .collect();
    let expected: BTreeMap<u32, Option<ShardKey>> = match &source.cluster {
        Some(cluster) => cluster
            .record
            .shards
            .iter()
            .map(|s| (s.shard_id, s.shard_key.clone()))
            .collect(),
        None => BTreeMap::from([(0, None)]),
    };
    if live != expected {
        let shown = |m: &BTreeMap<u32, Option<ShardKey>>| {
            m.iter()
                .map(|(id, key)| match key {
                    Some(key) => format!("{id} (key {key})"),
                    None => id.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(cluster_failure(
            target,
            format!(
                "the server gave it the shards [{}], the backup records [{}]",
                shown(&live),
                shown(&expected)
            ),
        ));
    }
    Ok(())
}

/// What one peer uploads: (shard id, file, its relative path, SHA-256).
type Upload = (u32, std::fs::File, String, String);

/// Uploads every shard file to a peer holding a replica of it (the fewest uploads per peer,
/// then the lowest peer id), each peer's uploads on its own thread.
fn upload_all(
    cx: &Context,
    source: &Source,
    target: &str,
    nodes: &[Node],
    placement: &Placement,
    unclear: &std::sync::Mutex<Vec<UnclearShard>>,
) -> Result<(), StepError> {
    let io = |path: &str| {
        let path = path.to_string();
        move |source: std::io::Error| StepError::Io { path, source }
    };
    // (shard id, file, shown path, sha256), whole collection snapshot when single-node.
    let mut files: Vec<(u32, std::fs::File, String, Option<String>)> = Vec::new();
    match &source.cluster {
        Some(cluster) => {
            for shard in &cluster.shards {
                let file = rewound(&shard.file).map_err(io(&shard.relative))?;
                files.push((
                    shard.record.shard_id,
                    file,
                    shard.relative.clone(),
                    shard.verified_sha256.clone(),
                ));
            }
        }
        None => {
            let file = rewound(&source.file).map_err(io(source.snapshot.as_str()))?;
            files.push((
                0,
                file,
                source.snapshot.to_string(),
                source.verified_sha256.clone(),
            ));
        }
    }
    let mut load: BTreeMap<u64, usize> = BTreeMap::new();
    let mut per_peer: BTreeMap<u64, Vec<Upload>> = BTreeMap::new();
    for (shard, file, shown, sha) in files {
        let sha = match sha {
            Some(sha) => sha,
            // Not verified (--skip-checksum-verify): hashed now, so the server at least
            // checks it received this file intact.
            None => {
                let hashed = rewound(&file)
                    .and_then(checksums::hash_reader)
                    .map_err(io(&shown))?;
                hashed.0
            }
        };
        let holders = placement
            .shards
            .get(&shard)
            .map(|(_, replicas)| replicas.keys().copied().collect::<Vec<_>>())
            .unwrap_or_default();
        let Some(peer) = holders
            .into_iter()
            .min_by_key(|p| (load.get(p).copied().unwrap_or(0), *p))
        else {
            return Err(cluster_failure(
                target,
                format!("no peer holds a replica of shard {shard}"),
            ));
        };
        *load.entry(peer).or_default() += 1;
        per_peer
            .entry(peer)
            .or_default()
            .push((shard, file, shown, sha));
    }
    let whole_collection = source.cluster.is_none();
    let total = per_peer.values().map(Vec::len).sum::<usize>();
    let spinner = cx.ui.spinner(&format!(
        "Qdrant recovering {total} shard file(s) of {target}"
    ));
    let results: Vec<Result<(), StepError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = per_peer
            .into_iter()
            .filter_map(|(peer, uploads)| {
                let node = nodes.iter().find(|n| n.peer_id == peer)?.clone();
                let stop = cx.stop.clone();
                let stamp = cx.stamp.clone();
                Some(scope.spawn(move || {
                    for (shard, file, shown, sha) in uploads {
                        if stop.requested().is_some() {
                            return Err(StepError::Interrupted);
                        }
                        let size = file.metadata().map_or(0, |m| m.len());
                        let file_name = format!(
                            "aimem-restore-{target}-shard-{shard}-{stamp}-{}.snapshot",
                            std::process::id()
                        );
                        let mut on_block = |_| match stop.requested() {
                            Some(_) => Err(Cancelled),
                            None => Ok(()),
                        };
                        let sent = match whole_collection {
                            true => node.client.upload_snapshot_file(
                                target,
                                file,
                                &shown,
                                &file_name,
                                &sha,
                                &mut on_block,
                            ),
                            false => node.client.upload_shard_snapshot_file(
                                target,
                                shard,
                                file,
                                &shown,
                                &file_name,
                                &sha,
                                &mut on_block,
                            ),
                        };
                        if whole_collection {
                            // The server keeps an uploaded collection snapshot: not ours to leave.
                            let _ = node.client.delete_snapshot(target, &file_name);
                        }
                        if let Err(e) = &sent
                            && super::act::effect_of(e) == super::act::Effect::Unclear
                            && let Ok(mut unclear) = unclear.lock()
                        {
                            unclear.push(UnclearShard {
                                peer_id: peer,
                                shard_id: shard,
                                upload: file_name.clone(),
                                size,
                            });
                        }
                        sent.map_err(|e| match e {
                            QdrantError::Interrupted => StepError::Interrupted,
                            e => cluster_failure(
                                target,
                                format!(
                                    "recovering shard {shard} on peer {peer} ({}) from {shown} failed: {e}",
                                    node.client.display_url()
                                ),
                            ),
                        })?;
                    }
                    Ok(())
                }))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(StepError::Interrupted)))
            .collect()
    });
    spinner.finish_and_clear();
    // A real failure says more than the stops it caused elsewhere.
    let mut first_stop = None;
    for result in results {
        match result {
            Ok(()) => {}
            Err(StepError::Interrupted) => first_stop = Some(StepError::Interrupted),
            Err(e) => return Err(e),
        }
    }
    if let Some(stop) = first_stop {
        return Err(stop);
    }
    cx.ui
        .ok(&format!("{total} shard file(s) of `{target}` recovered"));
    Ok(())
}

/// Waits (at most the recovery timeout) until every replica of every shard is Active and no
/// peer reports a shard transfer.
fn wait_until_active(cx: &Context, nodes: &[Node], target: &str) -> Result<(), StepError> {
    let spinner = cx.ui.spinner(&format!(
        "waiting for every replica of {target} to be Active"
    ));
    let outcome = wait_for_active(nodes, target, cx.settle_limit, cx.stop);
    spinner.finish_and_clear();
    outcome
}

/// [`wait_until_active`] without a spinner; `stop` ends it early.
fn wait_for_active(
    nodes: &[Node],
    target: &str,
    limit: Duration,
    stop: &crate::signals::StopFlag,
) -> Result<(), StepError> {
    let deadline = Instant::now() + limit;
    loop {
        let placement = read_placement(nodes, target)?;
        let waiting: Vec<String> = placement
            .shards
            .iter()
            .flat_map(|(id, (_, replicas))| {
                replicas
                    .iter()
                    .filter(|(_, state)| state.as_str() != "Active")
                    .map(move |(peer, state)| format!("shard {id} on peer {peer}: {state}"))
            })
            .collect();
        if waiting.is_empty() && placement.transfers == 0 {
            return Ok(());
        }
        if stop.requested().is_some() {
            return Err(StepError::Interrupted);
        }
        if Instant::now() >= deadline {
            let mut detail = format!(
                "after {} s (--recovery-timeout) not every replica is Active",
                limit.as_secs()
            );
            if !waiting.is_empty() {
                detail.push_str(&format!(" ({})", waiting.join("; ")));
            }
            if placement.transfers > 0 {
                detail.push_str(&format!(
                    "; {} shard transfer(s) still running",
                    placement.transfers
                ));
            }
            return Err(cluster_failure(target, detail));
        }
        std::thread::sleep(POLL);
    }
}

/// The restored collection has the backup's schema, exactly its record count, and (custom
/// sharding) exactly each key's records.
fn check(cx: &Context, source: &Source, target: &str, created: bool) -> Result<(), StepError> {
    let fail = |detail: String| StepError::Check {
        collection: target.to_string(),
        detail,
    };
    let qdrant = |e: QdrantError| StepError::Qdrant {
        step: "checking",
        collection: target.to_string(),
        source: e,
    };
    let info = cx.client.collection_info(target).map_err(qdrant)?;
    let live =
        fingerprint::Fingerprint::from_collection_info(&info).map_err(|e| fail(e.to_string()))?;
    if let Some(backup) = &source.fingerprint {
        // Across layouts the replication settings differ on purpose; within one, nothing may.
        // An overwritten collection keeps its own replication settings.
        let same_layout = created
            && source.cluster.is_some() == cx.topology.is_cluster()
            && source.cluster.is_some();
        let relevant: Vec<String> = fingerprint::diff(backup, &live)
            .iter()
            .filter(|d| same_layout || d.severity == Severity::Blocking)
            .map(|d| d.describe("backup", "restored"))
            .collect();
        if !relevant.is_empty() {
            return Err(fail(format!("schema differs: {}", relevant.join("; "))));
        }
    }
    let points = cx.client.count_exact(target).map_err(qdrant)?;
    let (low, high) = (
        source.entry.records,
        source.entry.records_max.unwrap_or(source.entry.records),
    );
    if !(low..=high).contains(&points) {
        let recorded = match low == high {
            true => low.to_string(),
            false => format!("between {low} and {high}"),
        };
        return Err(fail(format!(
            "it holds {points} points, the backup recorded {recorded}"
        )));
    }
    // Per key only when the backup counted each key exactly (the count did not move while it
    // was backed up); the shards' own `points_count` is approximate and never checked.
    if let Some(cluster) = &source.cluster {
        let record = &cluster.record;
        for (key, &recorded) in record.shard_keys.iter().zip(&record.key_records) {
            let counted = cx
                .client
                .count_exact_in_shard_key(target, key)
                .map_err(qdrant)?;
            if counted != recorded {
                return Err(fail(format!(
                    "shard key {key} holds {counted} points, the backup recorded {recorded}"
                )));
            }
        }
    }
    Ok(())
}

/// The bytes a source uploads.
pub fn size(source: &Source) -> u64 {
    match &source.cluster {
        Some(cluster) => cluster.size(),
        None => source.file.metadata().map_or(0, |m| m.len()),
    }
}

/// One shard of an existing collection, saved before it was overwritten.
#[derive(Debug, Clone)]
pub struct SavedShard {
    pub shard_id: u32,
    pub local: Utf8PathBuf,
    pub sha256: String,
}

/// An existing cluster collection, saved shard by shard before it was overwritten.
#[derive(Clone)]
pub struct SavedCluster {
    pub collection: String,
    nodes: Vec<Node>,
    pub shards: Vec<SavedShard>,
    fingerprint: fingerprint::Fingerprint,
    /// Points counted just before and just after the shard snapshots.
    pub points: u64,
    pub points_max: u64,
    /// How long the rollback waits for every replica to turn Active.
    settle_limit: Duration,
    /// An upload into it was started: it must be recovered on rollback.
    pub touched: bool,
    /// Shard uploads whose outcome is unknown: waited for before the rollback touches it.
    pub unclear: Vec<UnclearShard>,
    /// A second Ctrl-C gives up waiting for them.
    stop: crate::signals::StopFlag,
}

/// A shard upload whose outcome is unknown (no answer, a lost connection, a gateway's 5xx):
/// the peer may still be recovering the shard from it (api.md §0.3), and a rollback that put
/// the shard back meanwhile would be overwritten by it.
#[derive(Debug, Clone)]
pub struct UnclearShard {
    pub peer_id: u64,
    pub shard_id: u32,
    /// The uploaded file's name.
    pub upload: String,
    pub size: u64,
}

impl std::fmt::Debug for SavedCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedCluster")
            .field("collection", &self.collection)
            .field("shards", &self.shards)
            .field("points", &self.points)
            .field("touched", &self.touched)
            .field("unclear", &self.unclear)
            .finish_non_exhaustive()
    }
}

/// The cluster's peers as nodes.
fn cluster_nodes(topology: &Topology) -> Vec<Node> {
    topology
        .peers()
        .iter()
        .map(|p| Node {
            peer_id: p.peer_id,
            client: p.client.clone(),
        })
        .collect()
}

/// Whether an existing cluster collection has exactly the backup's shards (ids and keys), so
/// that each shard file has its shard to go to; why not otherwise.
pub fn overwrite_problem(topology: &Topology, source: &Source) -> Option<String> {
    let target = source.target.as_str();
    match read_placement(&cluster_nodes(topology), target) {
        Ok(placement) => check_shard_ids(target, source, &placement)
            .err()
            .map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    }
}

/// Takes each shard's snapshot on a peer holding an Active replica, keeps a verified local
/// copy in the pre-restore folder, and deletes it on the server.
fn save(
    cx: &Context,
    target: &str,
    live: &fingerprint::Fingerprint,
    undo: &mut Undo,
) -> Result<(), StepError> {
    use crate::cmd::backup::snapshot::{self, DownloadError};
    let folder = super::act::prerestore_folder(cx, undo)?;
    let nodes = cluster_nodes(cx.topology);
    let qdrant = |step: &'static str| {
        move |e: QdrantError| match e {
            QdrantError::Interrupted => StepError::Interrupted,
            source => StepError::Qdrant {
                step,
                collection: target.to_string(),
                source,
            },
        }
    };
    let points = cx.client.count_exact(target).map_err(qdrant("counting"))?;
    let placement = read_placement(&nodes, target)?;
    // The shards together hold the collection's points once: the single-node estimate fits,
    // checked before the first shard snapshot is asked for.
    super::act::check_space(
        &folder,
        target,
        crate::cmd::backup::disk::estimate_snapshot_size(live, points),
    )?;
    // Recorded before the first download, so every copy made is cleaned up whatever happens.
    undo.cluster_saved.push(SavedCluster {
        collection: target.to_string(),
        nodes: nodes.clone(),
        shards: Vec::new(),
        fingerprint: live.clone(),
        points,
        points_max: points,
        settle_limit: cx.settle_limit,
        touched: false,
        unclear: Vec::new(),
        stop: cx.stop.clone(),
    });
    let saved = undo.cluster_saved.len() - 1;
    for (&shard_id, (_, replicas)) in &placement.shards {
        super::act::stopped(cx.stop)?;
        let Some(node) = replicas
            .iter()
            .filter(|(_, state)| state.as_str() == "Active")
            .find_map(|(peer, _)| nodes.iter().find(|n| n.peer_id == *peer))
        else {
            return Err(cluster_failure(
                target,
                format!(
                    "shard {shard_id} has no Active replica to save it from before overwriting"
                ),
            ));
        };
        // On disk before the peer is asked: a run killed from here on (even by `kill -9`)
        // leaves the next one a record of the shard snapshot to delete.
        let peer = (node.peer_id, node.client.display_url());
        let asked_at = crate::cmd::backup::undo::snapshot_time(
            time::OffsetDateTime::now_utc() - time::Duration::minutes(1),
        );
        let existing: Vec<String> = node
            .client
            .list_shard_snapshots(target, shard_id)
            .map(|list| {
                list.into_iter()
                    .map(|s| s.name)
                    .filter(|n| {
                        crate::cmd::backup::journal::is_shard_snapshot_of(
                            n, target, shard_id, &asked_at,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        undo.journal_shard_creating(target, shard_id, peer, asked_at, existing)
            .map_err(|source| StepError::PrerestoreFolder {
                path: folder.to_string(),
                source,
            })?;
        let made = node.client.create_shard_snapshot(target, shard_id);
        match &made {
            Ok(made) => undo.journal_shard_answered(target, shard_id, peer, Some(&made.name)),
            // A refusal made nothing; without an answer the record stays for the next run.
            Err(e) if e.status().is_some() => {
                undo.journal_shard_answered(target, shard_id, peer, None);
            }
            Err(_) => {}
        }
        let made = made.map_err(qdrant("snapshotting"))?;
        let local = folder.join(format!("{target}-shard-{shard_id}.snapshot"));
        // The server said how big this shard's snapshot is: it must fit now, not half way.
        let fits = match made.size {
            Some(size) => super::act::check_space(&folder, target, size),
            None => Ok(()),
        };
        let downloaded = fits.as_ref().ok().map(|()| {
            snapshot::download_verified_from(
                &node.client,
                snapshot::Source::Shard {
                    collection: target,
                    shard: shard_id,
                },
                &made,
                &local,
                1,
                &format!("pre-restore copy of {target} shard {shard_id}"),
                cx.ui,
                cx.stop,
            )
        });
        match node
            .client
            .delete_shard_snapshot(target, shard_id, &made.name)
        {
            Ok(()) => undo.journal_shard_deleted(target, shard_id, node.peer_id, &made.name),
            Err(e) if e.is_not_found() => {
                undo.journal_shard_deleted(target, shard_id, node.peer_id, &made.name);
            }
            Err(e) => cx.ui.warn(&format!(
                "could not delete the pre-restore shard snapshot {} of `{target}` from peer {}: {e}",
                made.name, node.peer_id
            )),
        }
        fits?;
        let Some(downloaded) = downloaded else {
            continue;
        };
        let downloaded = downloaded.map_err(|source| match source {
            DownloadError::Qdrant(QdrantError::Interrupted) => StepError::Interrupted,
            source => StepError::Save {
                collection: target.to_string(),
                source,
            },
        })?;
        if let Some(entry) = undo.cluster_saved.get_mut(saved) {
            entry.shards.push(SavedShard {
                shard_id,
                local,
                sha256: downloaded.sha256,
            });
        }
    }
    let points_after = cx.client.count_exact(target).map_err(qdrant("counting"))?;
    if let Some(entry) = undo.cluster_saved.get_mut(saved) {
        entry.points = points.min(points_after);
        entry.points_max = points.max(points_after);
        cx.ui.ok(&format!(
            "Pre-restore copy of `{target}` saved: {} shard files in {folder}",
            entry.shards.len()
        ));
    }
    Ok(())
}

/// Overwrites an existing cluster collection shard by shard, after saving it.
pub(super) fn overwrite(
    cx: &Context,
    planned: &Planned,
    live: &fingerprint::Fingerprint,
    undo: &mut Undo,
    go_on: &dyn Fn() -> Result<(), StepError>,
) -> Result<(), StepError> {
    let source = &planned.source;
    let target = source.target.to_string();
    save(cx, &target, live, undo)?;
    go_on()?;
    let nodes = cluster_nodes(cx.topology);
    let placement = read_placement(&nodes, &target)?;
    check_shard_ids(&target, source, &placement)?;
    if let Some(saved) = undo
        .cluster_saved
        .iter_mut()
        .find(|s| s.collection == target)
    {
        saved.touched = true;
    }
    let unclear = std::sync::Mutex::new(Vec::new());
    let uploaded = upload_all(cx, source, &target, &nodes, &placement, &unclear);
    if let (Ok(unclear), Some(saved)) = (
        unclear.into_inner(),
        undo.cluster_saved
            .iter_mut()
            .find(|s| s.collection == target),
    ) {
        saved.unclear.extend(unclear);
    }
    uploaded?;
    super::act::stopped(cx.stop)?;
    wait_until_active(cx, &nodes, &target)?;
    check(cx, source, &target, false)
}

/// Puts a saved cluster collection back: every shard from its pre-restore copy, then the same
/// wait and checks (schema as before, count within what it was).
pub fn recover(saved: &SavedCluster, stamp: &str, ui: &crate::ui::Ui) -> Result<(), String> {
    let target = saved.collection.as_str();
    for unclear in &saved.unclear {
        let node = saved
            .nodes
            .iter()
            .find(|n| n.peer_id == unclear.peer_id)
            .ok_or_else(|| format!("peer {} is no longer known", unclear.peer_id))?;
        let watch = super::recovery::Watch {
            client: &node.client,
            ui,
            stop: &saved.stop,
            limit: saved.settle_limit,
        };
        let upload = super::rollback::Unclear {
            collection: target.to_string(),
            upload: unclear.upload.clone(),
            size: unclear.size,
        };
        super::recovery::wait_until_recovered(&watch, &upload).map_err(|why| {
            format!(
                "peer {} may still be recovering shard {} from the restore's upload, so it was not \
                 rolled back: {why}",
                unclear.peer_id, unclear.shard_id
            )
        })?;
    }
    let placement = read_placement(&saved.nodes, target).map_err(|e| e.to_string())?;
    for shard in &saved.shards {
        let Some(node) = placement
            .shards
            .get(&shard.shard_id)
            .and_then(|(_, replicas)| {
                replicas
                    .keys()
                    .find_map(|peer| saved.nodes.iter().find(|n| n.peer_id == *peer))
            })
        else {
            return Err(format!("no peer holds shard {} any more", shard.shard_id));
        };
        let file = std::fs::File::open(&shard.local)
            .map_err(|e| format!("cannot read {}: {e}", shard.local))?;
        let file_name = format!(
            "aimem-rollback-{target}-shard-{}-{stamp}-{}.snapshot",
            shard.shard_id,
            std::process::id()
        );
        // Not interruptible: stopping half way would lose data.
        node.client
            .upload_shard_snapshot_file(
                target,
                shard.shard_id,
                file,
                shard.local.as_str(),
                &file_name,
                &shard.sha256,
                &mut |_| Ok(()),
            )
            .map_err(|e| {
                format!(
                    "recovering shard {} on peer {} from {} failed: {e}",
                    shard.shard_id, node.peer_id, shard.local
                )
            })?;
    }
    let never = crate::signals::StopFlag::never();
    wait_for_active(&saved.nodes, target, saved.settle_limit, &never).map_err(|e| e.to_string())?;
    let client = &saved
        .nodes
        .first()
        .ok_or_else(|| "no peer to check it on".to_string())?
        .client;
    let info = client
        .collection_info(target)
        .map_err(|e| format!("checking it afterwards failed: {e}"))?;
    let live = fingerprint::Fingerprint::from_collection_info(&info).map_err(|e| e.to_string())?;
    let differences = fingerprint::diff(&saved.fingerprint, &live);
    if !differences.is_empty() {
        let lines: Vec<String> = differences
            .iter()
            .map(|d| d.describe("before", "now"))
            .collect();
        return Err(format!(
            "its schema differs afterwards: {}",
            lines.join("; ")
        ));
    }
    let points = client
        .count_exact(target)
        .map_err(|e| format!("counting its points failed: {e}"))?;
    if !(saved.points..=saved.points_max).contains(&points) {
        return Err(format!(
            "it has {points} points afterwards, {} before",
            saved.points
        ));
    }
    Ok(())
}
