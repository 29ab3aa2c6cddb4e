//! Restoring over an existing cluster collection: a pre-restore copy of each shard (taken
//! from an Active replica, kept beside the backup) and the overwrite. The rollback that puts
//! every replica of every shard back from that copy is in [`super::rollback`].

use super::act::{Context, StepError};
use super::plan::Planned;
use super::replicas::nodes_of;
use super::rollback::{Copies, Saved, SavedShard, ShardCopies, Undo};
use super::shards::{check, cluster_failure, read_placement, upload_all, wait_settled};
use crate::fingerprint;
use crate::manifest::cluster::ShardKey;
use crate::qdrant::QdrantError;

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
    let nodes = nodes_of(cx.topology);
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
    undo.saved.push(Saved {
        collection: target.to_string(),
        fingerprint: live.clone(),
        points,
        points_max: points,
        touched: false,
        copies: Copies::Shards(ShardCopies {
            nodes: nodes.clone(),
            shards: Vec::new(),
            layout,
            key_points: Vec::new(),
            settle_limit: cx.settle_limit,
            unclear: Vec::new(),
            stop: cx.stop.clone(),
        }),
    });
    let saved = undo.saved.len() - 1;
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
        if let Some(Saved {
            copies: Copies::Shards(copies),
            ..
        }) = undo.saved.get_mut(saved)
        {
            copies.shards.push(SavedShard {
                shard_id,
                local,
                sha256: downloaded.sha256,
                holders: shard.replicas.keys().copied().collect(),
            });
        }
    }
    let points_after = cx.client.count_exact(target).map_err(qdrant("counting"))?;
    let key_points_after = count_keys()?;
    if let Some(Saved {
        points: low,
        points_max: high,
        copies: Copies::Shards(copies),
        ..
    }) = undo.saved.get_mut(saved)
    {
        *low = points.min(points_after);
        *high = points.max(points_after);
        // A key whose count moved while its shards were saved is checked by the total only.
        if key_points_after == key_points {
            copies.key_points = key_points;
        }
        cx.ui.ok(&format!(
            "Pre-restore copy of `{target}` saved: {} shard files in {folder}",
            copies.shards.len()
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
    let nodes = nodes_of(cx.topology);
    // A replica being refilled by a transfer now would take the transfer's data over the
    // backup's: every replica must be Active, with no transfer running, before the uploads.
    let expected = source.expected();
    let placement = wait_settled(cx, &nodes, &target, &expected)?;
    if let Some(saved) = undo.saved.iter_mut().find(|s| s.collection == target) {
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
    if let (
        Ok(unclear),
        Some(Saved {
            copies: Copies::Shards(copies),
            ..
        }),
    ) = (
        unclear.into_inner(),
        undo.saved.iter_mut().find(|s| s.collection == target),
    ) {
        copies.unclear.extend(unclear);
    }
    uploaded?;
    super::act::stopped(cx.stop)?;
    check(cx, source, &target, &nodes, &expected, false)
}
