//! Recovering every replica of a cluster collection's shards from files: one upload per
//! replica, to the peer that holds it, with `priority=no_sync`, while the placement is watched.
//!
//! Why every replica and `no_sync`: Qdrant refills the other replicas of a recovered shard only
//! when they are Active at that moment, and marks them Dead for it a moment after the upload
//! answered (docs/qdrant.md, "Replicas of a cluster collection"). Recovering each replica from
//! the file itself leaves nothing to that machinery. Why the watch: a replica that turned Dead
//! meanwhile would be refilled by a transfer from a sibling that may not have been recovered
//! yet, and would end with the old data under the new data's count.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::replicas::{self, Node, POLL, Placement};
use crate::qdrant::{Cancelled, QdrantError, RecoveryPriority};
use crate::signals::StopFlag;

/// One file to recover on every replica of its shard.
pub struct ShardUpload {
    pub shard: u32,
    /// The opened file: read from its start at explicit offsets, so several uploads of it may
    /// run at once.
    pub file: crate::manifest::files::Opened,
    /// Names the file in messages.
    pub shown: String,
    pub sha256: String,
}

/// Why recovering the replicas stopped.
#[derive(Debug)]
pub enum UploadError {
    Interrupted,
    Failed(String),
}

/// A shard upload whose outcome is unknown (no answer, a lost connection, a gateway's 5xx):
/// the peer may still be recovering the shard from it, and a rollback that put the shard back
/// meanwhile would be overwritten by it.
#[derive(Debug, Clone)]
pub struct UnclearShard {
    pub peer_id: u64,
    pub shard_id: u32,
    /// The uploaded file's name.
    pub upload: String,
    pub size: u64,
}

/// How the uploads of one collection go.
pub struct Uploads<'a> {
    pub target: &'a str,
    pub nodes: &'a [Node],
    /// The settled placement the uploads follow: every holder of a shard gets its file.
    pub placement: &'a Placement,
    /// The files are collection snapshots (a single-node backup): uploaded to the collection's
    /// endpoint, and their kept copy deleted afterwards.
    pub whole_collection: bool,
    /// The name each upload is given on the server, by shard id.
    pub file_name: &'a (dyn Fn(u32) -> String + Sync),
    pub stop: &'a StopFlag,
    /// Uploads whose outcome is unknown are recorded here.
    pub unclear: &'a Mutex<Vec<UnclearShard>>,
    /// A rollback: an upload that fails does not stop the others (each replica put back is
    /// one less left with the restore's data); every failure is reported.
    pub keep_going: bool,
    /// The run's journal: a collection snapshot's upload copy, which the peer keeps, is
    /// recorded there before it is sent.
    pub journal: Option<&'a super::journal::SharedJournal>,
    /// Set once an upload may have changed a replica: it succeeded, or failed in a way that
    /// leaves that open (see [`super::act::effect_of`]). Still false after a failure, every
    /// upload was refused before anything changed.
    pub changed: &'a AtomicBool,
}

/// Recovers every replica of each shard from its file. Each peer's uploads run one after
/// another on its own thread; another thread watches the placement meanwhile and fails the
/// whole (after the uploads) if a replica leaves Active or a transfer starts. Returns how many
/// uploads were made.
pub fn recover_every_replica(
    uploads: &Uploads<'_>,
    files: Vec<ShardUpload>,
) -> Result<usize, UploadError> {
    let mut per_peer: BTreeMap<u64, Vec<ShardUpload>> = BTreeMap::new();
    for upload in files {
        let holders = uploads.placement.holders(upload.shard);
        if holders.is_empty() {
            return Err(UploadError::Failed(format!(
                "no peer holds a replica of shard {}",
                upload.shard
            )));
        }
        for peer in holders {
            let file = upload.file.reader_from(0);
            per_peer.entry(peer).or_default().push(ShardUpload {
                shard: upload.shard,
                file,
                shown: upload.shown.clone(),
                sha256: upload.sha256.clone(),
            });
        }
    }
    let total = per_peer.values().map(Vec::len).sum::<usize>();
    let mut per_node = Vec::new();
    for (peer, files) in per_peer {
        // Holders come from the known peers' own views: a miss would be a bug.
        let Some(node) = uploads.nodes.iter().find(|n| n.peer_id == peer) else {
            return Err(UploadError::Failed(format!(
                "peer {peer} holds a replica of `{}` but is not among the peers aimem reached",
                uploads.target
            )));
        };
        per_node.push((node, files));
    }
    let done = AtomicBool::new(false);
    let (results, anomaly) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| watch(uploads, &done));
        let handles: Vec<_> = per_node
            .into_iter()
            .map(|(node, files)| scope.spawn(move || upload_from(uploads, node, files)))
            .collect();
        let results: Vec<Result<(), UploadError>> = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(UploadError::Failed(
                        "an upload thread stopped unexpectedly (aimem hit an internal error)"
                            .to_string(),
                    ))
                })
            })
            .collect();
        done.store(true, Ordering::SeqCst);
        let anomaly = watcher.join().unwrap_or(None);
        (results, anomaly)
    });
    // A real failure says more than the stops it caused elsewhere; with `keep_going` every
    // failure is told.
    let mut failures = Vec::new();
    let mut stopped = false;
    for result in results {
        match result {
            Ok(()) => {}
            Err(UploadError::Interrupted) => stopped = true,
            Err(UploadError::Failed(why)) => failures.push(why),
        }
    }
    if !failures.is_empty() {
        return Err(UploadError::Failed(failures.join("; ")));
    }
    if stopped {
        return Err(UploadError::Interrupted);
    }
    if let Some(anomaly) = anomaly {
        return Err(UploadError::Failed(format!(
            "while its replicas were being recovered, {anomaly}: a replica that left Active \
             meanwhile may not hold what it was given"
        )));
    }
    Ok(total)
}

/// A shard upload refused before Qdrant touched the replica. Narrower than
/// [`super::act::effect_of`]'s `Unchanged`: a shard recovery that fails once it has stopped the
/// old replica (its new one does not load) may answer a 4xx too, with the replica left empty,
/// so only refusals that come before the file is read count: aimem's own stop or read error,
/// access refused, a body too large for a proxy, an unknown collection or shard, a checksum
/// that does not match, a malformed form.
fn refused_unread(error: &QdrantError) -> bool {
    match error {
        QdrantError::Interrupted
        | QdrantError::LocalRead { .. }
        | QdrantError::Unauthorized { .. }
        | QdrantError::Forbidden { .. } => true,
        QdrantError::Api {
            status, message, ..
        } => match status {
            413 => true,
            404 => message.starts_with("Not found: Shard") || message.contains("Collection `"),
            400 => [
                "Checksum mismatch",
                "boundary",
                "Required field is missing",
                "Multipart",
            ]
            .iter()
            .any(|known| message.contains(known)),
            _ => false,
        },
        _ => false,
    }
}

/// One peer's uploads, in order; with `keep_going` all of them whatever fails.
fn upload_from(
    uploads: &Uploads<'_>,
    node: &Node,
    files: Vec<ShardUpload>,
) -> Result<(), UploadError> {
    let mut failures = Vec::new();
    for file in files {
        match upload_one(uploads, node, file) {
            Ok(()) => {}
            Err(UploadError::Failed(why)) if uploads.keep_going => failures.push(why),
            Err(e) => return Err(e),
        }
    }
    match failures.is_empty() {
        true => Ok(()),
        false => Err(UploadError::Failed(failures.join("; "))),
    }
}

/// Polls the placement until `done`: the first replica seen leaving Active (beyond the
/// recovery states a collection upload passes through on its own peer) or the first shard
/// transfer. A read that fails is not an anomaly: the checks afterwards read again.
fn watch(uploads: &Uploads<'_>, done: &AtomicBool) -> Option<String> {
    // A collection snapshot's recovery switches the peer's own replicas to a recovery state
    // while it runs (`ManualRecovery`, `Partial` on older servers); a shard upload does not.
    let passing: &[&str] = match uploads.whole_collection {
        true => &["Active", "ManualRecovery", "Partial"],
        false => &["Active"],
    };
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(POLL);
        let Ok(placement) = replicas::read_placement(uploads.nodes, uploads.target, true) else {
            continue;
        };
        if placement.transfers > 0 {
            return Some(format!("{} shard transfer(s) started", placement.transfers));
        }
        for (id, shard) in &placement.shards {
            for (peer, replica) in &shard.replicas {
                if !passing.contains(&replica.state.as_str()) {
                    return Some(format!(
                        "the replica of shard {id} on peer {peer} turned {}",
                        replica.state
                    ));
                }
            }
        }
    }
    None
}

/// One replica's upload, see [`recover_every_replica`].
fn upload_one(uploads: &Uploads<'_>, node: &Node, upload: ShardUpload) -> Result<(), UploadError> {
    let stop = uploads.stop;
    if stop.requested().is_some() {
        return Err(UploadError::Interrupted);
    }
    let target = uploads.target;
    let ShardUpload {
        shard,
        file,
        shown,
        sha256,
    } = upload;
    let size = file.len();
    let name = (uploads.file_name)(shard);
    let mut on_block = |_| match stop.requested() {
        Some(_) => Err(Cancelled),
        None => Ok(()),
    };
    let peer = Some((node.peer_id, node.client.display_url()));
    if uploads.whole_collection {
        super::journal::record_uploading(uploads.journal, target, &name, peer)
            .map_err(|e| UploadError::Failed(format!("cannot write the restore's journal: {e}")))?;
    }
    let sent = match uploads.whole_collection {
        true => node.client.upload_snapshot_file(
            target,
            file,
            &shown,
            &name,
            &sha256,
            RecoveryPriority::NoSync,
            &mut on_block,
        ),
        false => node.client.upload_shard_snapshot_file(
            target,
            shard,
            file,
            &shown,
            &name,
            &sha256,
            RecoveryPriority::NoSync,
            &mut on_block,
        ),
    };
    if uploads.whole_collection {
        // The server keeps an uploaded collection snapshot: not ours to leave.
        match node.client.delete_snapshot(target, &name) {
            Ok(()) => {
                super::journal::record_upload_gone(
                    uploads.journal,
                    target,
                    &name,
                    peer.map(|p| p.0),
                );
            }
            Err(e) if e.is_not_found() => {
                super::journal::record_upload_gone(
                    uploads.journal,
                    target,
                    &name,
                    peer.map(|p| p.0),
                );
            }
            Err(_) => {}
        }
    }
    if !matches!(&sent, Err(e) if refused_unread(e)) {
        uploads.changed.store(true, Ordering::SeqCst);
    }
    if let Err(e) = &sent
        && super::act::effect_of(e) == super::act::Effect::Unclear
        && let Ok(mut unclear) = uploads.unclear.lock()
    {
        unclear.push(UnclearShard {
            peer_id: node.peer_id,
            shard_id: shard,
            upload: name.clone(),
            size,
        });
    }
    sent.map_err(|e| match e {
        QdrantError::Interrupted => UploadError::Interrupted,
        e => UploadError::Failed(format!(
            "recovering shard {shard} on peer {} ({}) from {shown} failed: {e}",
            node.peer_id,
            node.client.display_url()
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, message: &str) -> QdrantError {
        QdrantError::Api {
            method: "POST".into(),
            path: "/collections/c/shards/0/snapshots/upload".into(),
            status,
            message: message.into(),
        }
    }

    /// Only refusals that come before Qdrant reads the file leave a replica untouched: a 4xx
    /// from a recovery that failed half way (the old replica stopped, the new one not loaded)
    /// does not.
    #[test]
    fn only_refusals_before_the_file_is_read_count_as_untouched() {
        assert!(refused_unread(&api(
            413,
            "<html>413 Request Entity Too Large</html>"
        )));
        assert!(refused_unread(&api(
            400,
            "Checksum mismatch: expected aa, actual bb"
        )));
        assert!(refused_unread(&api(404, "Not found: Shard 3 is not found")));
        assert!(refused_unread(&QdrantError::Interrupted));
        assert!(!refused_unread(&api(
            400,
            "Wrong input: cannot load segment"
        )));
        assert!(!refused_unread(&api(500, "Service internal error")));
        assert!(!refused_unread(&api(404, "")));
    }
}
