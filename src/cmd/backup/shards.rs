//! Shard-aware backup of one collection of a distributed Qdrant (api.md §5.3, option 3):
//! the placement from every peer, one Active replica chosen per shard id, that shard's
//! snapshot taken on its peer and streamed to `qdrant/<collection>/shard-<id>.snapshot`.
//! Peers work in parallel, each on its own shards, each shard once.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use camino::Utf8Path;
use miette::Diagnostic;
use thiserror::Error;

use super::journal::Record;
use super::snapshot::{self, Downloaded, Source};
use super::undo::Undo;
use super::{
    BackupError, CollectionReport, Context, Planned, collection_error, collection_failure,
    live_fingerprint, stopped,
};
use crate::cmd::peers::{Peer, Topology};
use crate::exit::Exit;
use crate::failure::{OrExit, Outcome};
use crate::manifest::CollectionEntry;
use crate::manifest::cluster::{
    ClusterRecord, CollectionCluster, PeerRecord, ReplicaRecord, ShardKey, ShardRecord, shard_file,
    shard_file_name,
};
use crate::names::SafeName;
use crate::qdrant::cluster::CollectionClusterView;
use crate::qdrant::{QdrantError, SnapshotDescription};

#[derive(Debug, Error, Diagnostic)]
pub enum ShardError {
    #[error("shard {shard} of `{collection}` has no Active replica ({replicas})")]
    #[diagnostic(
        code(aimem::backup::no_active_replica),
        help(
            "Only an Active replica holds the shard's complete, current points. Wait until the cluster \
             has recovered (GET /collections/NAME/cluster on the peers) and run the backup again."
        )
    )]
    NoActiveReplica {
        collection: String,
        shard: u32,
        replicas: String,
    },

    #[error("the peers disagree about where the shards of `{collection}` are: {detail}")]
    #[diagnostic(
        code(aimem::backup::placement),
        help(
            "The cluster is changing (a shard transfer, a peer joining or leaving). Run the backup \
             again once it is settled."
        )
    )]
    Placement { collection: String, detail: String },
}

/// One shard's replicas, as their own peers report them.
#[derive(Debug, Clone, Default)]
struct ShardPlacement {
    key: Option<ShardKey>,
    /// peer id → (state, points_count)
    replicas: BTreeMap<u64, (String, Option<u64>)>,
}

/// Merges every peer's view into one placement, refusing contradictions: a peer's word on
/// its own replicas is what counts, and every replica another peer names must be one its own
/// peer reports.
fn placement(
    collection: &str,
    views: &[CollectionClusterView],
) -> Result<BTreeMap<u32, ShardPlacement>, ShardError> {
    let contradiction = |detail: String| ShardError::Placement {
        collection: collection.to_string(),
        detail,
    };
    let mut shards: BTreeMap<u32, ShardPlacement> = BTreeMap::new();
    if let Some(first) = views.first()
        && let Some(other) = views.iter().find(|v| v.shard_count != first.shard_count)
    {
        return Err(contradiction(format!(
            "peer {} counts {} shards, peer {} {}",
            first.peer_id, first.shard_count, other.peer_id, other.shard_count
        )));
    }
    for view in views {
        for replica in &view.local {
            let shard = shards.entry(replica.shard_id).or_default();
            if shard
                .replicas
                .insert(view.peer_id, (replica.state.clone(), replica.points_count))
                .is_some()
            {
                return Err(contradiction(format!(
                    "peer {} reports shard {} twice",
                    view.peer_id, replica.shard_id
                )));
            }
            if shard.key.is_some() && shard.key != replica.shard_key {
                return Err(contradiction(format!(
                    "shard {} has two shard keys",
                    replica.shard_id
                )));
            }
            shard.key = shard.key.take().or(replica.shard_key.clone());
        }
    }
    for view in views {
        for replica in &view.remote {
            let known = shards
                .get(&replica.shard_id)
                .is_some_and(|s| s.replicas.contains_key(&replica.peer_id));
            if !known {
                return Err(contradiction(format!(
                    "peer {} says peer {} holds shard {}, which that peer does not report",
                    view.peer_id, replica.peer_id, replica.shard_id
                )));
            }
        }
    }
    Ok(shards)
}

/// Per shard, the peer to snapshot it on: an Active holder, the one with the fewest shards
/// chosen so far (then the lowest peer id), so the work spreads over the peers.
fn choose_sources(
    collection: &str,
    shards: &BTreeMap<u32, ShardPlacement>,
) -> Result<BTreeMap<u32, u64>, ShardError> {
    let mut load: BTreeMap<u64, usize> = BTreeMap::new();
    let mut chosen = BTreeMap::new();
    for (&id, shard) in shards {
        let source = shard
            .replicas
            .iter()
            .filter(|(_, (state, _))| state == "Active")
            .map(|(&peer, _)| peer)
            .min_by_key(|peer| (load.get(peer).copied().unwrap_or(0), *peer));
        let Some(source) = source else {
            let replicas = shard
                .replicas
                .iter()
                .map(|(peer, (state, _))| format!("peer {peer}: {state}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ShardError::NoActiveReplica {
                collection: collection.to_string(),
                shard: id,
                replicas,
            });
        };
        *load.entry(source).or_default() += 1;
        chosen.insert(id, source);
    }
    Ok(chosen)
}

/// The shard keys in creation order: the order of each key's smallest shard id (shard ids
/// are allocated in sequence), keys without shards last in the server's order.
fn keys_in_creation_order(
    listed: &[ShardKey],
    shards: &BTreeMap<u32, ShardPlacement>,
) -> Vec<ShardKey> {
    let mut ordered: Vec<ShardKey> = Vec::new();
    for shard in shards.values() {
        if let Some(key) = &shard.key
            && !ordered.contains(key)
        {
            ordered.push(key.clone());
        }
    }
    for key in listed {
        if !ordered.contains(key) {
            ordered.push(key.clone());
        }
    }
    ordered
}

/// The top-level manifest record of the cluster's peers.
pub fn cluster_record(topology: &Topology) -> Option<ClusterRecord> {
    topology.is_cluster().then(|| ClusterRecord {
        peers: topology
            .peers()
            .iter()
            .map(|p| PeerRecord {
                peer_id: p.peer_id,
                uri: p.uri.clone(),
                url: p.client.display_url().to_string(),
            })
            .collect(),
    })
}

/// A shard snapshot made on a peer and not yet deleted there.
struct Made {
    shard: u32,
    peer: u64,
    name: String,
}

/// Backs up one collection of a cluster; the entry carries a `cluster` record and no
/// `snapshot_file`.
pub(super) fn backup_collection(
    cx: &Context,
    args: &super::BackupArgs,
    collection: &Planned,
    snapshot_dir: &Utf8Path,
    undo: &mut Undo,
) -> Outcome<CollectionEntry> {
    let name = &collection.name;
    let started = Instant::now();
    let topology = cx.topology;
    let mut views = Vec::new();
    for peer in topology.peers() {
        let view = peer
            .client
            .collection_cluster_view(name)
            .map_err(|e| collection_failure(name, e))?;
        if view.peer_id != peer.peer_id {
            return Err(collection_error(
                name,
                ShardError::Placement {
                    collection: name.to_string(),
                    detail: format!(
                        "{} answers for peer {} as peer {}",
                        peer.client.display_url(),
                        peer.peer_id,
                        view.peer_id
                    ),
                },
            ))
            .or_exit(Exit::Failed);
        }
        views.push(view);
    }
    let shards = placement(name, &views)
        .map_err(|e| collection_error(name, e))
        .or_exit(Exit::Failed)?;
    let sources = choose_sources(name, &shards)
        .map_err(|e| collection_error(name, e))
        .or_exit(Exit::Failed)?;

    let info = cx
        .client
        .collection_info(name)
        .map_err(|e| collection_failure(name, e))?;
    let params = info.pointer("/config/params");
    let param = |key: &str, default: u64| {
        params
            .and_then(|p| p.get(key))
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(default as u32)
    };
    let sharding_method = match params
        .and_then(|p| p.get("sharding_method"))
        .and_then(serde_json::Value::as_str)
    {
        Some("custom") => "custom",
        _ => "auto",
    };
    let shard_keys = match sharding_method {
        "custom" => {
            let listed = cx
                .client
                .shard_keys(name)
                .map_err(|e| collection_failure(name, e))?;
            keys_in_creation_order(&listed, &shards)
        }
        _ => Vec::new(),
    };

    let dir = snapshot_dir.join(name.as_str());
    crate::manifest::layout::create_private_dir(&dir)
        .map_err(|source| BackupError::Folder {
            path: dir.clone(),
            source,
        })
        .or_exit(Exit::Failed)?;

    let schema_before = live_fingerprint(cx, name)?;
    let before = cx
        .client
        .count_exact(name)
        .map_err(|e| collection_failure(name, e))?;
    let taken = take_shards(cx, args, name, &sources, &dir, undo)?;
    let after = cx
        .client
        .count_exact(name)
        .map_err(|e| collection_failure(name, e))?;
    let schema_after = live_fingerprint(cx, name)?;
    stopped(cx.stop)?;
    if schema_before != schema_after {
        return Err(BackupError::SchemaKeptChanging {
            collection: name.to_string(),
            attempts: 1,
        })
        .or_exit(Exit::Failed);
    }
    let (records, records_max) = match before == after {
        true => (before, None),
        false => {
            cx.ui.warn(&format!(
                "`{name}` changed while its shards were snapshotted: the backup holds between {} and {} points",
                before.min(after),
                before.max(after)
            ));
            (before.min(after), Some(before.max(after)))
        }
    };

    let mut records_shards = Vec::new();
    let mut size_bytes = 0u64;
    for (&shard_id, placement) in &shards {
        let Some((source, downloaded)) = taken.get(&shard_id) else {
            continue;
        };
        size_bytes += downloaded.size;
        let replicas = placement
            .replicas
            .iter()
            .map(|(&peer_id, (state, _))| ReplicaRecord {
                peer_id,
                state: state.clone(),
            })
            .collect();
        records_shards.push(ShardRecord {
            shard_id,
            shard_key: placement.key.clone(),
            file: shard_file(name, shard_id),
            size_bytes: downloaded.size,
            records: placement
                .replicas
                .get(source)
                .and_then(|(_, count)| *count)
                .unwrap_or(0),
            sha256: downloaded.sha256.clone(),
            source_peer: *source,
            replicas,
        });
    }
    let record = CollectionCluster {
        shard_number: param("shard_number", 1),
        replication_factor: param("replication_factor", 1),
        write_consistency_factor: param("write_consistency_factor", 1),
        sharding_method: sharding_method.to_string(),
        shard_keys,
        shards: records_shards,
    };
    cx.report.borrow_mut().collections.push(CollectionReport {
        name: name.to_string(),
        records,
        records_max,
        size: size_bytes,
        sha256: String::new(),
        snapshot: format!("{} shard snapshots", record.shards.len()),
        server_snapshot_deleted: true,
        seconds: started.elapsed().as_secs_f64(),
    });
    let mut entry = CollectionEntry {
        name: name.to_string(),
        records,
        records_max,
        snapshot_file: String::new(),
        size_bytes,
        schema: Some(schema_after.as_value().clone()),
        sha256: None,
        schema_digest: Some(schema_after.digest()),
        extra: BTreeMap::new(),
    };
    entry.set_cluster(&record);
    Ok(entry)
}

/// Takes, downloads and deletes every chosen shard snapshot: one thread per peer, each
/// working through its own shards. On any failure every snapshot made is deleted again.
fn take_shards(
    cx: &Context,
    args: &super::BackupArgs,
    name: &SafeName,
    sources: &BTreeMap<u32, u64>,
    dir: &Utf8Path,
    undo: &mut Undo,
) -> Outcome<BTreeMap<u32, (u64, Downloaded)>> {
    let journal = Mutex::new(undo);
    let mut per_peer: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for (&shard, &peer) in sources {
        per_peer.entry(peer).or_default().push(shard);
    }
    let topology = cx.topology;
    let work = Work {
        ui: cx.ui,
        stop: cx.stop,
        retry: args.retry,
        journal: &journal,
    };
    let work = &work;
    let results: Vec<PeerOutcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = per_peer
            .iter()
            .filter_map(|(&peer_id, shards)| {
                let peer = topology.peer(peer_id)?;
                Some(scope.spawn(move || {
                    let mut made = Vec::new();
                    let result = peer_shards(work, name, peer, shards, dir, &mut made);
                    (peer_id, made, result)
                }))
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut taken = BTreeMap::new();
    let mut failure = None;
    for (peer_id, made, result) in results {
        let Some(peer) = cx.topology.peer(peer_id) else {
            continue;
        };
        // Whatever happened, nothing stays on the server.
        for snapshot in made {
            let deleted = peer
                .client
                .delete_shard_snapshot(name, snapshot.shard, &snapshot.name);
            if deleted.is_ok() {
                work.record(&Record::ShardDeleted {
                    collection: name.to_string(),
                    shard: snapshot.shard,
                    peer_id: snapshot.peer,
                    snapshot: snapshot.name.clone(),
                });
            }
            if let Err(e) = deleted {
                cx.ui.warn(&format!(
                    "could not delete shard snapshot {} from peer {} ({}): {e}",
                    snapshot.name,
                    snapshot.peer,
                    peer.client.display_url()
                ));
            }
        }
        match result {
            Ok(done) => taken.extend(done.into_iter().map(|(s, d)| (s, (peer_id, d)))),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    if taken.len() != sources.len() && failure.is_none() {
        failure = Some(ShardFailure::Qdrant(QdrantError::Interrupted));
    }
    match failure {
        None => Ok(taken),
        Some(ShardFailure::Qdrant(QdrantError::Interrupted)) => {
            stopped(cx.stop)?;
            Err(BackupError::Interrupted).or_exit(Exit::Interrupted)
        }
        Some(ShardFailure::Qdrant(e)) => Err(collection_failure(name, e)),
        Some(ShardFailure::Download(e)) if e.is_out_of_space() => {
            Err(collection_error(name, e)).or_exit(Exit::InsufficientSpace)
        }
        Some(ShardFailure::Download(snapshot::DownloadError::Qdrant(QdrantError::Interrupted))) => {
            stopped(cx.stop)?;
            Err(BackupError::Interrupted).or_exit(Exit::Interrupted)
        }
        Some(ShardFailure::Download(snapshot::DownloadError::Qdrant(e))) => {
            Err(collection_failure(name, e))
        }
        Some(ShardFailure::Download(e)) => Err(collection_error(name, e)).or_exit(Exit::Failed),
    }
}

/// What a peer's thread needs (the run's [`Context`] is not shared between threads).
struct Work<'a> {
    ui: &'a crate::ui::Ui,
    stop: &'a crate::signals::StopFlag,
    retry: u32,
    /// The run's undo log, whose journal lets a later run delete what a killed one left.
    journal: &'a Mutex<&'a mut Undo>,
}

impl Work<'_> {
    /// Best effort, as for collection snapshots: a journal that cannot be written only
    /// costs the next run its cleanup.
    fn record(&self, record: &Record) {
        if let Ok(mut undo) = self.journal.lock() {
            undo.journal_record(record).ok();
        }
    }
}

/// A peer's thread's result: its peer, the snapshots still on that peer, what it took.
type PeerOutcome = (u64, Vec<Made>, Result<Vec<(u32, Downloaded)>, ShardFailure>);

enum ShardFailure {
    Qdrant(QdrantError),
    Download(snapshot::DownloadError),
}

/// One peer's share: for each shard, snapshot, download, delete (recorded in `made` until
/// deleted, so the caller cleans up whatever is left).
#[allow(clippy::too_many_arguments)]
fn peer_shards(
    cx: &Work,
    name: &SafeName,
    peer: &Peer,
    shards: &[u32],
    dir: &Utf8Path,
    made: &mut Vec<Made>,
) -> Result<Vec<(u32, Downloaded)>, ShardFailure> {
    let mut done = Vec::new();
    for &shard in shards {
        if cx.stop.requested().is_some() {
            return Err(ShardFailure::Qdrant(QdrantError::Interrupted));
        }
        let description: SnapshotDescription = peer
            .client
            .create_shard_snapshot(name, shard)
            .map_err(ShardFailure::Qdrant)?;
        made.push(Made {
            shard,
            peer: peer.peer_id,
            name: description.name.clone(),
        });
        cx.record(&Record::ShardCreated {
            collection: name.to_string(),
            shard,
            peer_id: peer.peer_id,
            peer_url: peer.client.display_url().to_string(),
            snapshot: description.name.clone(),
        });
        let target = dir.join(shard_file_name(shard));
        let label = format!("download {name} shard {shard}");
        let downloaded = snapshot::download_verified_from(
            &peer.client,
            Source::Shard {
                collection: name,
                shard,
            },
            &description,
            &target,
            cx.retry,
            &label,
            cx.ui,
            cx.stop,
        )
        .map_err(ShardFailure::Download)?;
        if peer
            .client
            .delete_shard_snapshot(name, shard, &description.name)
            .is_ok()
        {
            made.retain(|m| m.name != description.name || m.shard != shard);
            cx.record(&Record::ShardDeleted {
                collection: name.to_string(),
                shard,
                peer_id: peer.peer_id,
                snapshot: description.name.clone(),
            });
        }
        done.push((shard, downloaded));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qdrant::cluster::parse_collection_cluster;

    fn fixture(name: &str) -> serde_json::Value {
        let path = format!(
            "{}/tests/fixtures/qdrant/cluster/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let exchange: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        exchange["response"]["body"]["result"].clone()
    }

    fn views() -> Vec<CollectionClusterView> {
        (0..3)
            .map(|i| {
                parse_collection_cluster(&fixture(&format!(
                    "3-node-collection-cluster-peer{i}.json"
                )))
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn the_real_placement_gives_each_shard_two_active_replicas_and_spreads_the_sources() {
        let shards = placement("discussions", &views()).unwrap();
        assert_eq!(shards.len(), 3);
        assert!(shards.values().all(|s| s.replicas.len() == 2));
        let sources = choose_sources("discussions", &shards).unwrap();
        let mut peers: Vec<u64> = sources.values().copied().collect();
        peers.sort_unstable();
        peers.dedup();
        assert_eq!(peers.len(), 3, "three shards on three peers: {sources:?}");
        for (shard, peer) in &sources {
            assert!(shards[shard].replicas.contains_key(peer));
        }
    }

    #[test]
    fn a_shard_without_an_active_replica_is_refused_by_name() {
        let mut views = views();
        for view in &mut views {
            for replica in &mut view.local {
                if replica.shard_id == 2 {
                    replica.state = "Partial".into();
                }
            }
        }
        let shards = placement("discussions", &views).unwrap();
        let error = choose_sources("discussions", &shards).unwrap_err();
        let shown = error.to_string();
        assert!(
            shown.contains("shard 2") && shown.contains("Partial"),
            "{shown}"
        );
    }

    #[test]
    fn a_replica_its_peer_does_not_report_is_a_contradiction() {
        let mut views = views();
        views[0].local.retain(|r| r.shard_id != 0);
        assert!(placement("discussions", &views).is_err());
    }

    #[test]
    fn shard_keys_follow_their_smallest_shard_id() {
        let mut shards = BTreeMap::new();
        for (id, key) in [(0, "b"), (1, "a"), (2, "b")] {
            shards.insert(
                id,
                ShardPlacement {
                    key: Some(ShardKey::Keyword(key.into())),
                    replicas: BTreeMap::new(),
                },
            );
        }
        let listed = [
            ShardKey::Keyword("a".into()),
            ShardKey::Keyword("c".into()),
            ShardKey::Keyword("b".into()),
        ];
        assert_eq!(
            keys_in_creation_order(&listed, &shards),
            [
                ShardKey::Keyword("b".into()),
                ShardKey::Keyword("a".into()),
                ShardKey::Keyword("c".into())
            ]
        );
    }
}
