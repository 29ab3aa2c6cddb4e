//! Every replica of a cluster collection, as the peer holding it reports it: the placement,
//! waiting until it has settled, and the checks that a restore (or its rollback) left every
//! replica with the data it must hold.
//!
//! Why each replica is checked, not the collection: on a real cluster a shard recovered on one
//! replica with `priority=snapshot` makes only the replicas that are *Active* at that moment
//! Dead (to be refilled by a transfer). A replica still `Initializing` after the collection was
//! created is left alone and comes up Active with nothing in it, after which a read lands on
//! either replica (docs/qdrant.md, "Replicas of a cluster collection"). So a restore waits
//! until the placement has settled before it uploads, recovers every replica from the file
//! itself, and calls the collection restored only when every replica agrees with the backup,
//! then again after the cluster has stayed quiet for a few seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::check::{self, Against};
use crate::engine::peers::Topology;
use crate::manifest::cluster::ShardKey;
use crate::qdrant::cluster::CollectionClusterView;
use crate::qdrant::{Client, QdrantError};
use crate::signals::StopFlag;

/// How often the placement is read while waiting.
pub const POLL: Duration = Duration::from_millis(200);
/// Reads of one peer's view, or of a count, that fail for a moment (no answer, a 5xx) before
/// the read counts as failed.
const ATTEMPTS: u32 = 3;
/// How long the placement and every replica's count must stay unchanged after the checks
/// before the collection counts as restored. Qdrant proposes a replica's new state through
/// consensus a moment after the recovery answered, and starts a shard transfer a few hundred
/// milliseconds after a replica turned Dead: three seconds outlast both. Also how long a
/// placement that looks settled but disagrees with what is expected is given to catch up.
pub const QUIET: Duration = Duration::from_secs(3);

/// A peer to talk to: its id and client.
#[derive(Clone)]
pub struct Node {
    pub peer_id: u64,
    pub client: Client,
}

/// One replica as the peer holding it reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSeen {
    pub state: String,
    /// The holder's own `points_count` (Qdrant's estimate; exact once a shard has been loaded
    /// from a snapshot, which drops duplicates).
    pub points: Option<u64>,
}

/// One shard: its key and its replicas by peer id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardSeen {
    pub key: Option<ShardKey>,
    pub replicas: BTreeMap<u64, ReplicaSeen>,
}

/// Every shard of a collection as the peers holding its replicas report them, the shard
/// transfers they report running, and whether the peers agree on all of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub shards: BTreeMap<u32, ShardSeen>,
    pub transfers: usize,
    /// Where two peers' views differ (one has not applied a change yet), or a peer that does
    /// not know the collection yet or did not answer (in a lenient read).
    pub disagreement: Option<String>,
}

impl Placement {
    /// The peers holding a replica of `shard`, by peer id.
    pub fn holders(&self, shard: u32) -> Vec<u64> {
        self.shards
            .get(&shard)
            .map(|s| s.replicas.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Each shard's key, by shard id.
    pub fn keys(&self) -> BTreeMap<u32, Option<ShardKey>> {
        self.shards
            .iter()
            .map(|(id, s)| (*id, s.key.clone()))
            .collect()
    }

    /// The replicas that are not Active, as `shard N on peer P: State`.
    fn not_active(&self) -> Vec<String> {
        self.shards
            .iter()
            .flat_map(|(id, shard)| {
                shard
                    .replicas
                    .iter()
                    .filter(|(_, r)| r.state != "Active")
                    .map(move |(peer, r)| format!("shard {id} on peer {peer}: {}", r.state))
            })
            .collect()
    }

    /// Why this placement has not settled (every peer agreeing, every replica Active, no
    /// transfer running); `None` once it has.
    pub fn unsettled(&self) -> Option<String> {
        let mut why = Vec::new();
        if let Some(disagreement) = &self.disagreement {
            why.push(disagreement.clone());
        }
        let waiting = self.not_active();
        if !waiting.is_empty() {
            why.push(format!(
                "not every replica is Active ({})",
                waiting.join("; ")
            ));
        }
        if self.transfers > 0 {
            why.push(format!(
                "{} shard transfer(s) still running",
                self.transfers
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// The Dead replicas, when they are all that keeps the placement from settling (the peers
    /// agree, no transfer runs, every other replica is Active), as (shard, peer, whether an
    /// Active replica of the shard could refill it); `None` otherwise.
    fn only_dead(&self) -> Option<Vec<(u32, u64, bool)>> {
        if self.disagreement.is_some() || self.transfers > 0 {
            return None;
        }
        let mut dead = Vec::new();
        for (id, shard) in &self.shards {
            let refillable = shard.replicas.values().any(|r| r.state == "Active");
            for (peer, replica) in &shard.replicas {
                match replica.state.as_str() {
                    "Active" => {}
                    "Dead" => dead.push((*id, *peer, refillable)),
                    _ => return None,
                }
            }
        }
        Some(dead)
    }
}

/// Why the replicas are not (yet) as they must be.
#[derive(Debug)]
pub enum ReplicaError {
    Interrupted,
    /// Reading the placement failed, or it did not settle in time.
    Cluster(String),
    /// A replica, a count or a key does not hold what it must.
    Check(String),
}

impl std::fmt::Display for ReplicaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplicaError::Interrupted => f.write_str("stopped by a signal"),
            ReplicaError::Cluster(why) | ReplicaError::Check(why) => f.write_str(why),
        }
    }
}

/// A failed read worth trying again: no answer, or a 5xx (a peer busy recovering shards may
/// fail to answer for a moment).
fn passing(e: &QdrantError) -> bool {
    !matches!(e, QdrantError::Interrupted) && e.status().is_none_or(|status| status >= 500)
}

/// `read`, tried again after a short pause while it fails in passing.
fn with_retries<T>(mut read: impl FnMut() -> Result<T, QdrantError>) -> Result<T, QdrantError> {
    let mut attempt = 1;
    loop {
        match read() {
            Err(e) if attempt < ATTEMPTS && passing(&e) => {
                std::thread::sleep(POLL * attempt);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// What reading one peer's view of the collection gave.
#[derive(Debug, Clone)]
pub enum ViewRead {
    Seen(CollectionClusterView),
    /// 404: the peer does not know the collection (yet).
    Missing,
    /// No usable answer (after retries).
    Failed(String),
    Interrupted,
}

/// Every peer's view of `target`: (the peer asked, its URL for messages, what it answered).
fn read_views(nodes: &[Node], target: &str) -> Vec<(u64, String, ViewRead)> {
    nodes
        .iter()
        .map(|node| {
            let read = match with_retries(|| node.client.collection_cluster_view(target)) {
                Ok(view) => ViewRead::Seen(view),
                Err(QdrantError::Interrupted) => ViewRead::Interrupted,
                Err(e) if e.is_not_found() => ViewRead::Missing,
                Err(e) => ViewRead::Failed(e.to_string()),
            };
            (node.peer_id, node.client.display_url().to_string(), read)
        })
        .collect()
}

/// Every (shard, peer, state) one view lists, its own replicas and the others'.
type Listing = BTreeSet<(u32, u64, String)>;

fn listed(view: &CollectionClusterView) -> Listing {
    view.local
        .iter()
        .chain(&view.remote)
        .map(|r| (r.shard_id, r.peer_id, r.state.clone()))
        .collect()
}

/// Merges the peers' views into one placement: each replica as its own peer reports it.
/// `lenient` (inside a wait): a peer that does not know the collection or does not answer is a
/// disagreement, to wait out; otherwise it is an error. A peer answering as another is always
/// an error.
pub fn merge(
    views: Vec<(u64, String, ViewRead)>,
    lenient: bool,
) -> Result<Placement, ReplicaError> {
    let mut placement = Placement::default();
    let mut first_listing: Option<(u64, Listing)> = None;
    let disagree = |placement: &mut Placement, why: String| {
        placement.disagreement.get_or_insert(why);
    };
    for (peer_id, url, read) in views {
        let view = match read {
            ViewRead::Seen(view) => view,
            ViewRead::Interrupted => return Err(ReplicaError::Interrupted),
            ViewRead::Missing if lenient => {
                disagree(
                    &mut placement,
                    format!("peer {peer_id} does not know the collection yet"),
                );
                continue;
            }
            ViewRead::Failed(why) if lenient => {
                disagree(
                    &mut placement,
                    format!("peer {peer_id} did not answer: {why}"),
                );
                continue;
            }
            ViewRead::Missing => {
                return Err(ReplicaError::Cluster(format!(
                    "peer {peer_id} ({url}) does not know the collection"
                )));
            }
            ViewRead::Failed(why) => {
                return Err(ReplicaError::Cluster(format!(
                    "reading its placement from peer {peer_id} ({url}) failed: {why}"
                )));
            }
        };
        if view.peer_id != peer_id {
            return Err(ReplicaError::Cluster(format!(
                "{url} answers for peer {peer_id} as peer {}",
                view.peer_id
            )));
        }
        placement.transfers += view.transfers;
        let listing = listed(&view);
        match &first_listing {
            None => first_listing = Some((peer_id, listing)),
            Some((first, seen)) if *seen != listing => disagree(
                &mut placement,
                format!("peers {first} and {peer_id} do not see the same replicas yet"),
            ),
            Some(_) => {}
        }
        for replica in view.local {
            let shard = placement.shards.entry(replica.shard_id).or_default();
            if shard.key.is_some() && shard.key != replica.shard_key {
                return Err(ReplicaError::Cluster(format!(
                    "shard {} has two shard keys",
                    replica.shard_id
                )));
            }
            shard.key = shard.key.take().or(replica.shard_key);
            shard.replicas.insert(
                peer_id,
                ReplicaSeen {
                    state: replica.state,
                    points: replica.points_count,
                },
            );
        }
    }
    Ok(placement)
}

/// Reads every peer's view of `target` and merges them ([`merge`]).
pub fn read_placement(
    nodes: &[Node],
    target: &str,
    lenient: bool,
) -> Result<Placement, ReplicaError> {
    merge(read_views(nodes, target), lenient)
}

/// What a wait for the placement to settle accepts besides "settled".
#[derive(Debug, Default, Clone, Copy)]
pub struct Settle<'a> {
    /// The shard ids (and keys) the collection must have: a placement that differs is given
    /// [`QUIET`] to catch up, then fails.
    pub shards: Option<&'a BTreeMap<u32, Option<ShardKey>>>,
    /// For a rollback, which recovers every replica itself: Dead replicas with no transfer
    /// coming are accepted, at once when no Active replica could refill them, else after
    /// [`QUIET`].
    pub dead_is_enough: bool,
}

/// A settled placement, and the Dead replicas a rollback accepted (`shard N on peer P`).
#[derive(Debug)]
pub struct Settled {
    pub placement: Placement,
    pub accepted_dead: Vec<String>,
}

/// Waits until the placement has settled: every peer knows the collection and sees the same
/// replicas, every replica is Active, no shard transfer runs (see [`Settle`] for what else is
/// accepted). Bounded by `deadline`.
pub fn wait_settled(
    nodes: &[Node],
    target: &str,
    deadline: Instant,
    stop: &StopFlag,
    settle: Settle<'_>,
) -> Result<Settled, ReplicaError> {
    // Since when the placement has looked settled but for what a grace period covers.
    let mut almost_since: Option<Instant> = None;
    loop {
        let placement = read_placement(nodes, target, true)?;
        let why = match placement.unsettled() {
            None => match settle
                .shards
                .map(|shards| check_shard_ids(&placement, shards))
            {
                Some(Err(mismatch)) => {
                    let since = *almost_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= QUIET {
                        return Err(mismatch);
                    }
                    mismatch.to_string()
                }
                _ => {
                    return Ok(Settled {
                        placement,
                        accepted_dead: Vec::new(),
                    });
                }
            },
            Some(why) => {
                if settle.dead_is_enough
                    && let Some(dead) = placement.only_dead()
                {
                    let since = *almost_since.get_or_insert_with(Instant::now);
                    let none_refillable = dead.iter().all(|(_, _, refillable)| !refillable);
                    if none_refillable || since.elapsed() >= QUIET {
                        let accepted_dead = dead
                            .iter()
                            .map(|(shard, peer, _)| format!("shard {shard} on peer {peer}"))
                            .collect();
                        return Ok(Settled {
                            placement,
                            accepted_dead,
                        });
                    }
                } else {
                    almost_since = None;
                }
                why
            }
        };
        if stop.requested().is_some() {
            return Err(ReplicaError::Interrupted);
        }
        if Instant::now() >= deadline {
            return Err(ReplicaError::Cluster(format!(
                "it did not settle within the --recovery-timeout: {why}"
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// What every replica of a restored collection must show.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The shard ids and their keys.
    pub shards: BTreeMap<u32, Option<ShardKey>>,
    /// The exact point count: the backup's, or the range it moved in while it was taken.
    pub points: (u64, u64),
    /// Custom sharding: each key's exact point count, where it is known.
    pub keys: Vec<(ShardKey, u64)>,
    /// What recorded these counts: the backup, or the collection before the restore.
    pub against: Against,
}

fn shown_shards(shards: &BTreeMap<u32, Option<ShardKey>>) -> String {
    shards
        .iter()
        .map(|(id, key)| match key {
            Some(key) => format!("{id} (key {key})"),
            None => id.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The server must have given the shards the ids (and keys) the backup records.
pub fn check_shard_ids(
    placement: &Placement,
    shards: &BTreeMap<u32, Option<ShardKey>>,
) -> Result<(), ReplicaError> {
    let live = placement.keys();
    if live != *shards {
        return Err(ReplicaError::Cluster(format!(
            "the server gave it the shards [{}], the backup records [{}]",
            shown_shards(&live),
            shown_shards(shards)
        )));
    }
    Ok(())
}

/// Where the replicas of one shard report different point counts on their own peers:
/// `shard N: 0 on peer A, 200 on peer B`.
fn replicas_differ(placement: &Placement) -> Option<String> {
    placement.shards.iter().find_map(|(id, shard)| {
        let counts: BTreeSet<Option<u64>> = shard.replicas.values().map(|r| r.points).collect();
        (counts.len() > 1).then(|| {
            let each: Vec<String> = shard
                .replicas
                .iter()
                .map(|(peer, r)| match r.points {
                    Some(n) => format!("{n} on peer {peer}"),
                    None => format!("no count on peer {peer}"),
                })
                .collect();
            format!("shard {id}: {}", each.join(", "))
        })
    })
}

fn counting_failed(e: QdrantError) -> ReplicaError {
    match e {
        QdrantError::Interrupted => ReplicaError::Interrupted,
        e => ReplicaError::Cluster(format!("counting its points failed: {e}")),
    }
}

/// Checks a collection whose placement `placement` has settled against `expected`:
/// - the shard ids and keys;
/// - every replica of a shard reports the same number of points on its own peer;
/// - the exact count is the backup's, and so is the exact count taken on every replica
///   (Qdrant answers the smallest replica's count for each shard): no replica holds less;
/// - the replicas' own counts add up to the exact count;
/// - each shard key's exact count, on a read and on every replica.
pub fn verify(
    placement: &Placement,
    client: &Client,
    target: &str,
    expected: &Expected,
) -> Result<(), ReplicaError> {
    check_shard_ids(placement, &expected.shards)?;
    if let Some(differ) = replicas_differ(placement) {
        return Err(ReplicaError::Check(format!(
            "the replicas of {differ}; every replica must hold the shard's points"
        )));
    }
    let per_shard_total: Option<u64> = placement
        .shards
        .values()
        .map(|s| s.replicas.values().next().and_then(|r| r.points))
        .sum();
    let points = with_retries(|| client.count_exact(target)).map_err(counting_failed)?;
    check::points(points, expected.points, expected.against).map_err(ReplicaError::Check)?;
    let on_every_replica = with_retries(|| client.count_exact_on_every_replica(target, None))
        .map_err(counting_failed)?;
    if on_every_replica != points {
        return Err(ReplicaError::Check(format!(
            "counted on every replica it holds {on_every_replica} points, on a read {points}: \
             a replica of some shard holds fewer points than the others"
        )));
    }
    if let Some(sum) = per_shard_total
        && sum != points
    {
        return Err(ReplicaError::Check(format!(
            "its replicas report {sum} points in all, the exact count is {points}"
        )));
    }
    for (key, recorded) in &expected.keys {
        let counted = with_retries(|| client.count_exact_in_shard_key(target, key))
            .map_err(counting_failed)?;
        let everywhere = with_retries(|| client.count_exact_on_every_replica(target, Some(key)))
            .map_err(counting_failed)?;
        if counted != *recorded || everywhere != *recorded {
            return Err(ReplicaError::Check(format!(
                "shard key {key} holds {counted} points ({everywhere} on every replica), {} {recorded}",
                expected.against.recorded()
            )));
        }
    }
    Ok(())
}

/// Why the replicas of an existing collection do not hold the same data (one replica's copy
/// would not stand for the others), checked before it is overwritten; `None` when they agree
/// as far as Active replicas can tell. A difference is read again after a moment before it
/// counts: writes reach a shard's replicas one after another.
pub fn existing_replicas_differ(
    nodes: &[Node],
    client: &Client,
    target: &str,
) -> Result<Option<String>, ReplicaError> {
    let mut differ = None;
    for attempt in 0..2 {
        if attempt > 0 {
            std::thread::sleep(QUIET / 3);
        }
        let placement = read_placement(nodes, target, false)?;
        differ = replicas_of_existing_differ(&placement, client, target)?;
        if differ.is_none() {
            return Ok(None);
        }
    }
    Ok(differ)
}

fn replicas_of_existing_differ(
    placement: &Placement,
    client: &Client,
    target: &str,
) -> Result<Option<String>, ReplicaError> {
    let mut active = placement.clone();
    for shard in active.shards.values_mut() {
        shard.replicas.retain(|_, r| r.state == "Active");
    }
    if let Some(differ) = replicas_differ(&active) {
        return Ok(Some(format!("the replicas of {differ}")));
    }
    if placement.not_active().is_empty() {
        let points = with_retries(|| client.count_exact(target)).map_err(counting_failed)?;
        let everywhere = with_retries(|| client.count_exact_on_every_replica(target, None))
            .map_err(counting_failed)?;
        if everywhere != points {
            return Ok(Some(format!(
                "a replica of some shard holds fewer points than the others ({everywhere} \
                 counted on every replica, {points} on a read)"
            )));
        }
    }
    Ok(None)
}

/// Watches the placement for `quiet`: `None` when nothing changed (no replica, state, count
/// or transfer, and every peer answered), else what changed.
fn stays_quiet(
    nodes: &[Node],
    target: &str,
    checked: &Placement,
    quiet: Duration,
    stop: &StopFlag,
) -> Result<Option<String>, ReplicaError> {
    let until = Instant::now() + quiet;
    loop {
        if stop.requested().is_some() {
            return Err(ReplicaError::Interrupted);
        }
        std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
        let now = read_placement(nodes, target, true)?;
        if now != *checked {
            return Ok(Some(
                now.unsettled()
                    .unwrap_or_else(|| "a replica's count changed".to_string()),
            ));
        }
        if Instant::now() >= until {
            return Ok(None);
        }
    }
}

/// Waits for the placement to settle, checks every replica ([`verify`]), and, on a cluster,
/// checks again once nothing has changed for [`QUIET`]: a late state change or transfer must
/// not replace data after aimem said the collection was restored. A placement that moves
/// during the quiet window is waited for and checked anew, all within `limit`; a check that
/// fails on a settled placement fails at once.
pub fn settle_and_verify(
    nodes: &[Node],
    client: &Client,
    target: &str,
    expected: &Expected,
    limit: Duration,
    stop: &StopFlag,
) -> Result<(), ReplicaError> {
    let deadline = Instant::now() + limit;
    let settle = Settle {
        shards: Some(&expected.shards),
        dead_is_enough: false,
    };
    loop {
        let checked = wait_settled(nodes, target, deadline, stop, settle)?.placement;
        verify(&checked, client, target, expected)?;
        if nodes.len() < 2 {
            return Ok(());
        }
        match stays_quiet(nodes, target, &checked, QUIET, stop)? {
            // The counts again: the placement read last was the one checked.
            None => {
                verify(&checked, client, target, expected)?;
                return Ok(());
            }
            Some(change) if Instant::now() >= deadline => {
                return Err(ReplicaError::Cluster(format!(
                    "its replicas kept changing after the restore until the --recovery-timeout: {change}"
                )));
            }
            Some(change) => {
                log::info!(
                    "{target}: replicas changed after the checks ({change}); checking again"
                );
            }
        }
    }
}

/// The cluster's peers as nodes.
pub fn nodes_of(topology: &Topology) -> Vec<Node> {
    topology
        .peers()
        .iter()
        .map(|p| Node {
            peer_id: p.peer_id,
            client: p.client.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qdrant::cluster::Replica;

    fn replica(shard_id: u32, peer_id: u64, state: &str, points: Option<u64>) -> Replica {
        Replica {
            shard_id,
            peer_id,
            state: state.to_string(),
            points_count: points,
            shard_key: None,
        }
    }

    /// Peer `me`'s view: its own replicas of `local` shards with `points`, the others' states.
    fn view(me: u64, replicas: &[(u32, u64, &str, u64)], transfers: usize) -> ViewRead {
        let (local, remote): (Vec<_>, Vec<_>) = replicas
            .iter()
            .map(|&(shard, peer, state, points)| replica(shard, peer, state, Some(points)))
            .partition(|r| r.peer_id == me);
        let remote = remote
            .into_iter()
            .map(|r| Replica {
                points_count: None,
                ..r
            })
            .collect();
        ViewRead::Seen(CollectionClusterView {
            peer_id: me,
            shard_count: 2,
            local,
            remote,
            transfers,
        })
    }

    fn views(all: &[(u32, u64, &str, u64)], transfers: usize) -> Vec<(u64, String, ViewRead)> {
        [1, 2]
            .iter()
            .map(|&me| (me, format!("http://peer{me}"), view(me, all, transfers)))
            .collect()
    }

    #[test]
    fn agreeing_views_of_active_replicas_are_settled() {
        let all = [(0, 1, "Active", 10), (0, 2, "Active", 10)];
        let placement = merge(views(&all, 0), false).unwrap();
        assert_eq!(placement.unsettled(), None);
        assert_eq!(placement.holders(0), vec![1, 2]);
        assert_eq!(replicas_differ(&placement), None);
    }

    #[test]
    fn a_peer_that_still_sees_a_replica_initializing_is_a_disagreement() {
        let mut seen = views(&[(0, 1, "Active", 10), (0, 2, "Active", 10)], 0);
        seen[1].2 = view(2, &[(0, 1, "Initializing", 10), (0, 2, "Active", 10)], 0);
        let placement = merge(seen, false).unwrap();
        let why = placement.unsettled().expect("unsettled");
        assert!(why.contains("do not see the same replicas"), "{why}");
    }

    #[test]
    fn a_missing_or_silent_peer_is_waited_out_in_a_wait_and_an_error_otherwise() {
        for read in [ViewRead::Missing, ViewRead::Failed("503".into())] {
            let mut seen = views(&[(0, 1, "Active", 10)], 0);
            seen[1].2 = read;
            let lenient = merge(seen.clone(), true).unwrap();
            assert!(lenient.unsettled().is_some());
            assert!(matches!(merge(seen, false), Err(ReplicaError::Cluster(_))));
        }
    }

    #[test]
    fn a_peer_answering_as_another_is_refused_even_in_a_wait() {
        let mut seen = views(&[(0, 1, "Active", 10)], 0);
        seen[1].0 = 7;
        assert!(matches!(merge(seen, true), Err(ReplicaError::Cluster(_))));
    }

    #[test]
    fn an_empty_replica_beside_a_full_one_is_named() {
        let all = [(0, 1, "Active", 0), (0, 2, "Active", 200)];
        let placement = merge(views(&all, 0), false).unwrap();
        let differ = replicas_differ(&placement).expect("differ");
        assert_eq!(differ, "shard 0: 0 on peer 1, 200 on peer 2");
    }

    #[test]
    fn dead_replicas_are_told_apart_by_whether_anything_could_refill_them() {
        let all = [(0, 1, "Dead", 0), (0, 2, "Active", 10), (1, 1, "Dead", 0)];
        let placement = merge(views(&all, 0), false).unwrap();
        assert_eq!(
            placement.only_dead(),
            Some(vec![(0, 1, true), (1, 1, false)])
        );
        // A transfer running, or another state, is not "only Dead".
        let placement = merge(views(&all, 1), false).unwrap();
        assert_eq!(placement.only_dead(), None);
        let all = [(0, 1, "Dead", 0), (0, 2, "Partial", 10)];
        let placement = merge(views(&all, 0), false).unwrap();
        assert_eq!(placement.only_dead(), None);
    }

    #[test]
    fn shard_ids_other_than_the_backups_are_named() {
        let all = [(0, 1, "Active", 10), (2, 2, "Active", 10)];
        let placement = merge(views(&all, 0), false).unwrap();
        let expected = BTreeMap::from([(0, None), (1, None)]);
        let err = check_shard_ids(&placement, &expected)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[0, 2]") && err.contains("[0, 1]"), "{err}");
    }
}
