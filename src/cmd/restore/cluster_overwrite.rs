//! Restoring over an existing cluster collection: a pre-restore copy of each shard (taken
//! from an Active replica, kept beside the backup), the overwrite, and the rollback that puts
//! every replica of every shard back from that copy and checks it replica by replica.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;

use super::act::{Context, StepError};
use super::check::Against;
use super::plan::Planned;
use super::replica_uploads::{self, ShardUpload, UnclearShard, UploadError, Uploads};
use super::replicas::{self, Expected, Node, Settle};
use super::rollback::Undo;
use super::shards::{
    check, cluster_failure, cluster_nodes, expected, read_placement, upload_all, wait_settled,
};
use crate::fingerprint;
use crate::manifest::cluster::ShardKey;
use crate::qdrant::QdrantError;

/// One shard of an existing collection, saved before it was overwritten.
#[derive(Debug, Clone)]
pub struct SavedShard {
    pub shard_id: u32,
    pub local: Utf8PathBuf,
    pub sha256: String,
    /// The peers that held a replica of it when it was saved: where it goes back.
    pub holders: Vec<u64>,
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
    /// Its shard ids and keys.
    layout: BTreeMap<u32, Option<ShardKey>>,
    /// Each shard key's exact count, when it did not move while the shards were saved.
    key_points: Vec<(ShardKey, u64)>,
    /// How long the rollback waits for every replica to turn Active.
    settle_limit: Duration,
    /// An upload into it was started: it must be recovered on rollback.
    pub touched: bool,
    /// Shard uploads whose outcome is unknown: waited for before the rollback touches it.
    pub unclear: Vec<UnclearShard>,
    /// A second Ctrl-C gives up waiting for them.
    stop: crate::signals::StopFlag,
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

impl SavedCluster {
    /// The REST address (as shown, credentials hidden) of each peer that held `shard`.
    pub fn holder_urls(&self, shard: &SavedShard) -> Vec<&str> {
        shard
            .holders
            .iter()
            .filter_map(|peer| self.nodes.iter().find(|n| n.peer_id == *peer))
            .map(|n| n.client.display_url())
            .collect()
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
    let layout = placement.keys();
    let keys: Vec<ShardKey> = layout.values().flatten().fold(Vec::new(), |mut keys, key| {
        if !keys.contains(key) {
            keys.push(key.clone());
        }
        keys
    });
    let count_keys = || -> Result<Vec<(ShardKey, u64)>, StepError> {
        keys.iter()
            .map(|key| {
                cx.client
                    .count_exact_in_shard_key(target, key)
                    .map(|n| (key.clone(), n))
                    .map_err(qdrant("counting"))
            })
            .collect()
    };
    let key_points = count_keys()?;
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
        layout,
        key_points: Vec::new(),
        settle_limit: cx.settle_limit,
        touched: false,
        unclear: Vec::new(),
        stop: cx.stop.clone(),
    });
    let saved = undo.cluster_saved.len() - 1;
    for (&shard_id, shard) in &placement.shards {
        super::act::stopped(cx.stop)?;
        let Some(node) = shard
            .replicas
            .iter()
            .filter(|(_, replica)| replica.state == "Active")
            .find_map(|(peer, _)| nodes.iter().find(|n| n.peer_id == *peer))
        else {
            return Err(cluster_failure(
                target,
                format!(
                    "shard {shard_id} has no Active replica to save it from before overwriting"
                ),
            ));
        };
        // Named by the shard and the second on its peer: a backup's snapshot of this shard
        // there in the same second would get the same name (see `concurrent`).
        let turn = crate::cmd::backup::concurrent::take_turn(
            cx.lock_keys,
            crate::cmd::backup::concurrent::SnapshotOf::Shard {
                collection: target,
                shard: shard_id,
                peer: node.peer_id,
            },
            cx.stop,
            cx.ui,
        )
        .map_err(|_| StepError::Interrupted)?;
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
        // Answered or not (a missed answer is the next run's, by the journal's record).
        turn.release_after_answer();
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
                holders: shard.replicas.keys().copied().collect(),
            });
        }
    }
    let points_after = cx.client.count_exact(target).map_err(qdrant("counting"))?;
    let key_points_after = count_keys()?;
    if let Some(entry) = undo.cluster_saved.get_mut(saved) {
        entry.points = points.min(points_after);
        entry.points_max = points.max(points_after);
        // A key whose count moved while its shards were saved is checked by the total only.
        if key_points_after == key_points {
            entry.key_points = key_points;
        }
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
    // A replica being refilled by a transfer now would take the transfer's data over the
    // backup's: every replica must be Active, with no transfer running, before the uploads.
    let expected = expected(source);
    let placement = wait_settled(cx, &nodes, &target, &expected)?;
    if let Some(saved) = undo
        .cluster_saved
        .iter_mut()
        .find(|s| s.collection == target)
    {
        saved.touched = true;
    }
    let unclear = std::sync::Mutex::new(Vec::new());
    let uploaded = upload_all(
        cx,
        source,
        &target,
        (&nodes, &placement),
        &unclear,
        undo.journal.as_ref(),
    );
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
    check(cx, source, &target, &nodes, &expected, false)
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
    // Every replica Active and no transfer running first: a transfer into a replica left Dead
    // by a failed upload would race the rollback's upload. A Dead replica that nothing refills
    // is recovered from the copy like the others. A second Ctrl-C ends the process.
    let never = crate::signals::StopFlag::never();
    let deadline = Instant::now() + saved.settle_limit;
    let settle = Settle {
        shards: Some(&saved.layout),
        dead_is_enough: true,
    };
    let spinner = ui.spinner(&format!(
        "waiting for every replica of {target} to be Active or Dead for good"
    ));
    let settled = replicas::wait_settled(&saved.nodes, target, deadline, &never, settle);
    spinner.finish_and_clear();
    let settled =
        settled.map_err(|e| format!("its replicas did not settle before the rollback: {e}"))?;
    for dead in &settled.accepted_dead {
        ui.warn(&format!(
            "{dead} of `{target}` is Dead and nothing refills it: the rollback recovers it from its copy"
        ));
    }
    let placement = settled.placement;
    let mut files = Vec::new();
    for shard in &saved.shards {
        let file = std::fs::File::open(&shard.local)
            .map_err(|e| format!("cannot read {}: {e}", shard.local))?;
        files.push(ShardUpload {
            shard: shard.shard_id,
            file,
            shown: shard.local.to_string(),
            sha256: shard.sha256.clone(),
        });
    }
    let file_name = |shard: u32| {
        format!(
            "aimem-rollback-{target}-shard-{shard}-{stamp}-{}.snapshot",
            std::process::id()
        )
    };
    // Not interruptible: stopping half way would lose data. Every replica is tried even when
    // one fails; a failure, or an upload whose outcome is unknown, fails the rollback, which
    // then keeps the pre-restore copies.
    let unclear = std::sync::Mutex::new(Vec::new());
    let uploads = Uploads {
        target,
        nodes: &saved.nodes,
        placement: &placement,
        whole_collection: false,
        file_name: &file_name,
        stop: &never,
        unclear: &unclear,
        keep_going: true,
        // Shard uploads: the peers keep no copy.
        journal: None,
    };
    let spinner = ui.spinner(&format!(
        "Qdrant recovering every replica of {target} from its pre-restore copy"
    ));
    let recovered = replica_uploads::recover_every_replica(&uploads, files);
    spinner.finish_and_clear();
    match recovered {
        Ok(_) => {}
        Err(UploadError::Failed(why)) => return Err(why),
        Err(UploadError::Interrupted) => return Err("stopped".to_string()),
    }
    let client = &saved
        .nodes
        .first()
        .ok_or_else(|| "no peer to check it on".to_string())?
        .client;
    super::rollback::schema_as_before(client, target, &saved.fingerprint)?;
    let expected = Expected {
        shards: saved.layout.clone(),
        points: (saved.points, saved.points_max),
        keys: saved.key_points.clone(),
        against: Against::Before,
    };
    let spinner = ui.spinner(&format!("checking every replica of {target}"));
    let checked = replicas::settle_and_verify(
        &saved.nodes,
        client,
        target,
        &expected,
        saved.settle_limit,
        &never,
    );
    spinner.finish_and_clear();
    checked.map_err(|e| format!("after the rollback {e}"))
}
