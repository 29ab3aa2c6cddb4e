//! The pre-restore copy of an existing collection, taken before it is overwritten and kept in
//! the run's pre-restore folder: a snapshot of the collection on a single node, or on a cluster
//! one of each shard, from a peer holding an Active replica of it. Either is recorded in the
//! undo log ([`Saved`]) before it is downloaded, and every server snapshot in the journal
//! before it is asked for.

use camino::{Utf8Path, Utf8PathBuf};

use super::placement::{cluster_failure, read_placement};
use super::{Context, SNAPSHOTTING, StepError, qdrant, stopped};
use crate::engine::backup::concurrent;
use crate::engine::backup::disk;
use crate::engine::backup::site::Site;
use crate::engine::backup::snapshot::{self, DownloadError, Downloaded, Durability};
use crate::engine::backup::take::{self, SiteFailure};
use crate::engine::restore::plan::{Source, shard_aware};
use crate::engine::restore::replicas::{Node, ShardSeen};
use crate::engine::restore::rollback::{Copies, Saved, SavedShard, ShardCopies, Undo};
use crate::engine::worker;
use crate::fingerprint::Fingerprint;
use crate::manifest::cluster::ShardKey;
use crate::manifest::layout;
use crate::names::SafeName;
use crate::qdrant::{QdrantError, SnapshotDescription};
use crate::ui::human_size;

/// Saves the existing collection `source` goes into (`live` its schema, `points` its count
/// when planned): shard by shard when it is restored so.
pub(super) fn save(
    cx: &Context,
    source: &Source,
    live: &Fingerprint,
    points: u64,
    undo: &mut Undo,
) -> Result<(), StepError> {
    match shard_aware(cx.topology, source) {
        false => save_collection(cx, &source.target, live, points, undo),
        true => save_shards(cx, &source.target, live, undo),
    }
}

/// Takes a server-side snapshot of an existing collection and keeps a local copy of it.
fn save_collection(
    cx: &Context,
    target: &SafeName,
    live: &Fingerprint,
    points: u64,
    undo: &mut Undo,
) -> Result<(), StepError> {
    let folder = prerestore_folder(cx, undo)?;
    // The count again, right before the snapshot: the rollback checks against this.
    let points = cx
        .client
        .count_exact(target)
        .map_err(qdrant("counting", target))
        .unwrap_or(points);
    check_space(&folder, target, disk::estimate_snapshot_size(live, points))?;
    let description = snapshot_collection(cx, target, &folder, undo)?;
    // The count again, after the snapshot: writes in between mean the snapshot holds
    // somewhere between the two, and the rollback's check must accept that range.
    let points_after = cx
        .client
        .count_exact(target)
        .map_err(qdrant("counting", target))
        .unwrap_or(points);
    let local = target.snapshot_path(&folder);
    undo.saved.push(Saved {
        collection: target.to_string(),
        fingerprint: live.clone(),
        points: points.min(points_after),
        points_max: points.max(points_after),
        touched: false,
        copies: Copies::Collection {
            local: local.clone(),
            sha256: String::new(),
            server_snapshot: Some(description.name.clone()),
        },
    });
    stopped(cx.stop)?;
    if let Some(size) = description.size {
        check_space(&folder, target, size)?;
    }
    let downloaded = download_collection(cx, target, &description, &local)?;
    if let Some(Saved {
        copies: Copies::Collection { sha256, .. },
        ..
    }) = undo.saved.last_mut()
    {
        *sha256 = downloaded.sha256;
    }
    cx.ui.ok(&format!(
        "Pre-restore snapshot of `{target}` saved: {local} ({})",
        human_size(downloaded.size)
    ));
    Ok(())
}

/// Has the server build a snapshot of `target`, journaled before it is asked for.
///
/// Built on a worker thread: a signal meanwhile waits for it to end, since Qdrant finishes
/// the snapshot anyway and only then can it be deleted again (a second Ctrl-C stops
/// waiting: the restore holds signals from its first change on, see `mod.rs`).
fn snapshot_collection(
    cx: &Context,
    target: &SafeName,
    folder: &Utf8Path,
    undo: &mut Undo,
) -> Result<SnapshotDescription, StepError> {
    let client = cx.client.clone();
    let name = target.to_string();
    let told = std::cell::Cell::new(false);
    // Its name is the collection's and the second's: a backup's snapshot of it in the same
    // second would get the same one (see `concurrent`).
    let turn = concurrent::take_turn(
        cx.lock_keys,
        Site::Collection(target.as_str()),
        cx.stop,
        cx.ui,
    )
    .map_err(|_| StepError::Interrupted)?;
    let spinner = cx.ui.spinner(&format!(
        "Qdrant building the pre-restore snapshot of {target}"
    ));
    // On disk before the server is asked: a run killed from here on (even by `kill -9`)
    // leaves the next one a record of the snapshot to delete.
    let asked_at = crate::engine::backup::undo::snapshot_time(
        time::OffsetDateTime::now_utc() - time::Duration::minutes(1),
    );
    let existing: Vec<String> = cx
        .client
        .list_snapshots(target)
        .map(|list| list.into_iter().map(|s| s.name).collect())
        .unwrap_or_default();
    undo.journal_creating(target, asked_at, existing)
        .map_err(|source| StepError::PrerestoreFolder {
            path: folder.to_string(),
            source,
        })?;
    let created = worker::until(
        || {
            if cx.stop.requested().is_some() && !told.replace(true) {
                cx.ui.warn(&format!(
                    "waiting for Qdrant to finish the pre-restore snapshot of `{target}` so it can be deleted \
                     (Ctrl-C again stops waiting and leaves it on the server)"
                ));
            }
            cx.stop.abandoned()
        },
        move || client.create_snapshot(&name),
    );
    // Answered or not: this run never looks for a snapshot whose answer it missed (the
    // next run finds it by the journal's record), so the turn need not outlive the wait.
    turn.release_after_answer();
    spinner.finish_and_clear();
    let created = created.unwrap_or(Err(QdrantError::Interrupted));
    match &created {
        Ok(description) => undo.journal_answered(target, Some(&description.name)),
        // A refusal made nothing; without an answer the record stays for the next run.
        Err(e) if e.status().is_some() => undo.journal_answered(target, None),
        Err(_) => {}
    }
    created.map_err(qdrant(SNAPSHOTTING, target))
}

/// Downloads the server's snapshot of `target` to `local`, verified. On a worker thread, so
/// Ctrl-C is noticed even while the download is stalled.
fn download_collection(
    cx: &Context,
    target: &SafeName,
    description: &SnapshotDescription,
    local: &Utf8Path,
) -> Result<Downloaded, StepError> {
    let downloaded = {
        let (client, name, description, local) = (
            cx.client.clone(),
            target.to_string(),
            description.clone(),
            local.to_owned(),
        );
        let (ui, stop) = (cx.ui.clone(), cx.stop.clone());
        worker::interruptible(cx.stop, move || {
            let label = format!("pre-restore copy of {name}");
            snapshot::download_verified(
                &client,
                Site::Collection(&name),
                &description,
                &local,
                1,
                &label,
                &ui,
                &stop,
            )
        })
        .unwrap_or(Err(DownloadError::Qdrant(QdrantError::Interrupted)))
    };
    downloaded.map_err(save_failed(target))
}

/// Takes each shard's snapshot on a peer holding an Active replica, keeps a verified local
/// copy in the pre-restore folder, and deletes it on the server.
fn save_shards(
    cx: &Context,
    target: &str,
    live: &Fingerprint,
    undo: &mut Undo,
) -> Result<(), StepError> {
    let folder = prerestore_folder(cx, undo)?;
    let nodes = super::placement::nodes(cx, target)?;
    let points = cx
        .client
        .count_exact(target)
        .map_err(qdrant("counting", target))?;
    let placement = read_placement(&nodes, target)?;
    let layout = placement.keys();
    let keys: Vec<ShardKey> = layout.values().flatten().fold(Vec::new(), |mut keys, key| {
        if !keys.contains(key) {
            keys.push(key.clone());
        }
        keys
    });
    let key_points = count_keys(cx, target, &keys)?;
    // The shards together hold the collection's points once: the single-node estimate fits,
    // checked before the first shard snapshot is asked for.
    check_space(&folder, target, disk::estimate_snapshot_size(live, points))?;
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
        stopped(cx.stop)?;
        let copy = save_shard(cx, &folder, (target, shard_id), shard, &nodes, undo)?;
        if let Some(Saved {
            copies: Copies::Shards(copies),
            ..
        }) = undo.saved.get_mut(saved)
        {
            copies.shards.push(copy);
        }
    }
    let points_after = cx
        .client
        .count_exact(target)
        .map_err(qdrant("counting", target))?;
    let key_points_after = count_keys(cx, target, &keys)?;
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

/// Each shard key's exact count.
fn count_keys(
    cx: &Context,
    target: &str,
    keys: &[ShardKey],
) -> Result<Vec<(ShardKey, u64)>, StepError> {
    keys.iter()
        .map(|key| {
            cx.client
                .count_exact_in_shard_key(target, key)
                .map(|n| (key.clone(), n))
                .map_err(qdrant("counting", target))
        })
        .collect()
}

/// Snapshots one shard on a peer holding an Active replica of it (journaled before it is
/// asked for), downloads it verified, and deletes it on that peer.
fn save_shard(
    cx: &Context,
    folder: &Utf8Path,
    (target, shard_id): (&str, u32),
    shard: &ShardSeen,
    nodes: &[Node],
    undo: &mut Undo,
) -> Result<SavedShard, StepError> {
    let Some(node) = shard
        .replicas
        .iter()
        .filter(|(_, replica)| replica.state == "Active")
        .find_map(|(peer, _)| nodes.iter().find(|n| n.peer_id == *peer))
    else {
        return Err(cluster_failure(
            target,
            format!("shard {shard_id} has no Active replica to save it from before overwriting"),
        ));
    };
    let local = folder.join(format!("{target}-shard-{shard_id}.snapshot"));
    let saved = |downloaded: Downloaded| SavedShard {
        shard_id,
        local: local.clone(),
        sha256: downloaded.sha256,
        holders: shard.replicas.keys().copied().collect(),
    };
    // Streamed where the peer offers it: nothing is made on the server (no disk space there,
    // nothing to journal or delete).
    let local_dest = crate::engine::backup::dest::Dest::Folder(local.clone());
    let stream = snapshot::Stream {
        client: &node.client,
        collection: target,
        shard: shard_id,
        target: &local_dest,
        label: &format!("pre-restore copy of {target} shard {shard_id}"),
        ui: cx.ui,
        stop: cx.stop,
    };
    match take::stream(&stream, 1, Durability::SyncedNow) {
        Ok(downloaded) => return Ok(saved(downloaded)),
        Err(SiteFailure::NotStreamed) => {}
        Err(SiteFailure::Download(e)) => return Err(save_failed(target)(e)),
        Err(SiteFailure::Qdrant(e)) => return Err(save_failed(target)(DownloadError::Qdrant(e))),
        Err(SiteFailure::Journal(source)) => {
            return Err(StepError::Io {
                path: local.to_string(),
                source,
            });
        }
    }
    let made = snapshot_shard(cx, folder, (target, shard_id), node, undo)?;
    // The server said how big this shard's snapshot is: it must fit now, not half way.
    let fits = match made.size {
        Some(size) => check_space(folder, target, size),
        None => Ok(()),
    };
    let downloaded = fits.and_then(|()| {
        snapshot::download_verified(
            &node.client,
            Site::Shard {
                collection: target,
                shard: shard_id,
                peer: node.peer_id,
            },
            &made,
            &local,
            1,
            &format!("pre-restore copy of {target} shard {shard_id}"),
            cx.ui,
            cx.stop,
        )
        .map_err(save_failed(target))
    });
    // Downloaded or not, the peer's snapshot goes.
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
    Ok(saved(downloaded?))
}

/// Has `node` build a snapshot of one shard, journaled before it is asked for.
fn snapshot_shard(
    cx: &Context,
    folder: &Utf8Path,
    (target, shard_id): (&str, u32),
    node: &Node,
    undo: &mut Undo,
) -> Result<SnapshotDescription, StepError> {
    // Named by the shard and the second on its peer: a backup's snapshot of this shard
    // there in the same second would get the same name (see `concurrent`).
    let turn = concurrent::take_turn(
        cx.lock_keys,
        Site::Shard {
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
    let asked_at = crate::engine::backup::undo::snapshot_time(
        time::OffsetDateTime::now_utc() - time::Duration::minutes(1),
    );
    let existing: Vec<String> = node
        .client
        .list_shard_snapshots(target, shard_id)
        .map(|list| {
            list.into_iter()
                .map(|s| s.name)
                .filter(|n| {
                    crate::engine::backup::journal::is_shard_snapshot_of(
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
    made.map_err(qdrant(SNAPSHOTTING, target))
}

/// A failed download of the pre-restore copy of `target` as the step error.
fn save_failed(target: &str) -> impl FnOnce(DownloadError) -> StepError + '_ {
    move |source| match source {
        DownloadError::Qdrant(QdrantError::Interrupted) => StepError::Interrupted,
        source => StepError::Save {
            collection: target.to_string(),
            source,
        },
    }
}

/// The run's pre-restore folder, created on first use and kept in `undo.folder`.
pub(in crate::engine::restore) fn prerestore_folder(
    cx: &Context,
    undo: &mut Undo,
) -> Result<Utf8PathBuf, StepError> {
    if let Some(folder) = &undo.folder {
        return Ok(folder.clone());
    }
    let (parent, prefix) = (&cx.prerestore_in, &cx.prerestore_prefix);
    let folder = layout::create_working_dir(parent, prefix, "").map_err(|source| {
        StepError::PrerestoreFolder {
            path: parent.to_string(),
            source,
        }
    })?;
    undo.folder = Some(folder.clone());
    undo.journal_folder(&folder)
        .map_err(|source| StepError::PrerestoreFolder {
            path: folder.to_string(),
            source,
        })?;
    Ok(folder)
}

/// Fails unless the pre-restore folder's filesystem has `needed` bytes free.
fn check_space(folder: &Utf8Path, target: &str, needed: u64) -> Result<(), StepError> {
    let free = disk::free_space(folder).map_err(|source| StepError::PrerestoreFolder {
        path: folder.to_string(),
        source,
    })?;
    if free < needed {
        return Err(StepError::NoSpace {
            collection: target.to_string(),
            path: folder.to_string(),
            needed,
            free,
        });
    }
    Ok(())
}
