//! Shard-aware backup of one collection of a distributed Qdrant (docs/qdrant.md, "Snapshots
//! in a cluster", the second way): the placement from every peer, one Active replica chosen
//! per shard id, that shard's snapshot taken on its peer and streamed to
//! `qdrant/<collection>/shard-<id>.snapshot`.
//! Peers work in parallel, each on its own shards, each shard once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Instant;

use camino::Utf8PathBuf;
use miette::Diagnostic;
use thiserror::Error;

use super::concurrent::take_turn;
use super::consistent::{Consistent, Scope, consistent};
use super::dest::Dest;
use super::journal::Record;
use super::site::Site;
use super::snapshot::{self, Downloaded, Durability};
use super::take::{self, Method, SiteFailure, Stored, Tracker};
use super::undo::{Pending, Undo};
use super::{Backed, BackupError, CollectionDone, Context, Planned, collection_error, stopped};
use crate::engine::peers::Topology;
use crate::manifest::CollectionEntry;
use crate::manifest::cluster::{
    ClusterRecord, CollectionCluster, PeerRecord, ReplicaRecord, ShardKey, ShardRecord, shard_file,
    shard_file_name,
};
use crate::names::SafeName;
use crate::qdrant::cluster::CollectionClusterView;
use crate::qdrant::{Client, QdrantError, SnapshotDescription};

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
pub(crate) struct ShardPlacement {
    key: Option<ShardKey>,
    /// peer id → (state, points_count)
    pub(crate) replicas: BTreeMap<u64, (String, Option<u64>)>,
}

/// Merges every peer's view into one placement, refusing contradictions: a peer's word on
/// its own replicas is what counts, and every replica another peer names must be one its own
/// peer reports.
pub(crate) fn placement(
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
    // Every peer counts `shard_count` shards: fewer among the replicas reported means a
    // shard nobody reports, and a backup without it would silently lose its points.
    if let Some(first) = views.first()
        && shards.len() != first.shard_count as usize
    {
        return Err(contradiction(format!(
            "the peers count {} shards but report replicas of {}",
            first.shard_count,
            shards.len()
        )));
    }
    Ok(shards)
}

/// Per shard, the peer to snapshot it on: an Active holder, the one with the fewest shards
/// chosen so far (then the lowest peer id), so the work spreads over the peers.
pub(crate) fn choose_sources(
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
    // The greedy pass can leave one peer with two shards more than another that could take
    // one of them: move such shards until none is left (each move lowers the spread, so
    // this ends), in shard order, so the outcome stays deterministic.
    let mut moved = true;
    while moved {
        moved = false;
        for (&id, shard) in shards {
            let Some(&current) = chosen.get(&id) else {
                continue;
            };
            let here = load.get(&current).copied().unwrap_or(0);
            let better = shard
                .replicas
                .iter()
                .filter(|(_, (state, _))| state == "Active")
                .map(|(&peer, _)| (load.get(&peer).copied().unwrap_or(0), peer))
                .filter(|&(there, _)| there + 2 <= here)
                .min();
            if let Some((_, peer)) = better {
                *load.entry(current).or_default() -= 1;
                *load.entry(peer).or_default() += 1;
                chosen.insert(id, peer);
                moved = true;
            }
        }
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

/// Backs up one collection shard by shard, each shard's snapshot taken by `method` (a
/// cluster's peer switches to the stored way by itself when it answers that it does not
/// stream; a single node's collection fails with [`BackupError::NotStreamed`] then, leaving
/// nothing, for the caller to take it as one stored snapshot); the entry carries a `cluster`
/// record and no `snapshot_file`.
pub(super) fn backup_collection(
    cx: &Context,
    collection: &Planned,
    snapshot_dir: &Dest,
    undo: &Mutex<Undo>,
    method: Method,
) -> Backed<(CollectionEntry, CollectionDone)> {
    let name = &collection.name;
    let started = Instant::now();
    let (clients, views) = peer_views(cx, name)?;
    let shards = placement(name, &views).map_err(|e| collection_error(name, e))?;
    let sources = choose_sources(name, &shards).map_err(|e| collection_error(name, e))?;

    let info = cx
        .client
        .collection_info(name)
        .map_err(|e| collection_error(name, e))?;
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
            // A server without `GET /collections/{c}/shards` (absent from Qdrant 1.16's API
            // document, though 1.16.3 answers it) leaves the keys the placement names, which
            // are all of them: every key has at least one shard.
            let listed = match cx.client.shard_keys(name) {
                Err(e) if e.status() == Some(404) => Vec::new(),
                listed => listed.map_err(|e| collection_error(name, e))?,
            };
            keys_in_creation_order(&listed, &shards)
        }
        _ => Vec::new(),
    };

    let dir = snapshot_dir.join(name.as_str());
    dir.create_dir().map_err(|source| BackupError::Preparing {
        path: dir.shown().into(),
        source,
    })?;

    let taken = consistent(
        cx,
        name,
        &shard_keys,
        Scope::Shards,
        || take_shards(cx, (name, &dir), &sources, &clients, method, undo),
        |taken| drop_files(&dir, &taken.shards),
    );
    let Consistent {
        taken: Taken {
            shards: taken,
            method,
        },
        records,
        records_max,
        key_records,
        schema: schema_after,
    } = match taken {
        // A single node's one worker has ended, and nothing else writes here: its folder goes
        // whole, and the caller takes the collection as one stored snapshot.
        Err(BackupError::NotStreamed) => {
            if let Some(path) = dir.path() {
                std::fs::remove_dir_all(path).ok();
            }
            if let Some(&node) = clients.keys().next() {
                cx.streaming.refuse(node, "the server", cx.ui);
            }
            return Err(BackupError::NotStreamed);
        }
        taken => taken?,
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
        key_records,
    };
    let report = CollectionDone {
        name: name.to_string(),
        records,
        records_max,
        size: size_bytes,
        sha256: String::new(),
        snapshot: match method {
            Method::Streamed => format!("{} streamed shard snapshots", record.shards.len()),
            Method::Stored | Method::Exported => {
                format!("{} shard snapshots", record.shards.len())
            }
        },
        server_snapshot_deleted: true,
        method,
        seconds: started.elapsed().as_secs_f64(),
    };
    let entry = CollectionEntry {
        name: name.to_string(),
        records,
        records_max,
        backup: crate::manifest::CollectionBackup::Shards(record),
        size_bytes,
        schema: Some(schema_after.as_value().clone()),
        sha256: None,
        schema_digest: Some(schema_after.digest()),
    };
    Ok((entry, report))
}

/// Each peer's client and view of `name`'s shards, every view checked to come from the peer
/// it was asked of: a cluster's peers, or a single node alone (it reports its own peer id and
/// every shard as local).
fn peer_views(
    cx: &Context,
    name: &str,
) -> Backed<(BTreeMap<u64, Client>, Vec<CollectionClusterView>)> {
    if !cx.topology.is_cluster() {
        let view = cx
            .client
            .collection_cluster_view(name)
            .map_err(|e| collection_error(name, e))?;
        return Ok((
            BTreeMap::from([(view.peer_id, cx.client.clone())]),
            vec![view],
        ));
    }
    let mut clients = BTreeMap::new();
    let mut views = Vec::new();
    for peer in cx.topology.peers() {
        let view = peer
            .client
            .collection_cluster_view(name)
            .map_err(|e| collection_error(name, e))?;
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
            ));
        }
        clients.insert(peer.peer_id, peer.client.clone());
        views.push(view);
    }
    Ok((clients, views))
}

/// What [`take_shards`] brought: shard id → (the peer it came from, its file), and how (stored
/// when any shard was).
struct Taken {
    shards: BTreeMap<u32, (u64, Downloaded)>,
    method: Method,
}

/// Removes the shard files of an attempt that is taken again (best effort: the next attempt
/// writes them anew, and a failed backup's staging folder goes as a whole).
fn drop_files(dir: &Dest, taken: &BTreeMap<u32, (u64, Downloaded)>) {
    for shard in taken.keys() {
        dir.join(&shard_file_name(*shard)).remove_file().ok();
    }
}

/// Takes every chosen shard snapshot into `dir` (streamed, or taken, downloaded and deleted):
/// one worker thread per peer, each working through its own shards, while this thread
/// journals what they make and watches for a signal. On a signal it waits only for snapshot
/// creations under way (Qdrant finishes them anyway, and they must be deleted), abandons the
/// transfers, and deletes every snapshot made; on any failure it deletes them too. A cluster
/// peer that does not stream gets the stored way from its worker; a single node that does not
/// fails with [`BackupError::NotStreamed`].
fn take_shards(
    cx: &Context,
    (name, dir): (&SafeName, &Dest),
    sources: &BTreeMap<u32, u64>,
    clients: &BTreeMap<u64, Client>,
    method: Method,
    undo: &Mutex<Undo>,
) -> Backed<Taken> {
    let mut per_peer: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for (&shard, &peer) in sources {
        per_peer.entry(peer).or_default().push(shard);
    }
    let (events, inbox) = mpsc::channel::<Event>();
    let gate = Arc::new(Mutex::new(Gate::default()));
    let mut heard = Heard::default();
    for (peer_id, shards) in per_peer {
        let Some(client) = clients.get(&peer_id) else {
            continue;
        };
        let work = Work {
            client: client.clone(),
            lock_keys: cx.lock_keys.clone(),
            // A cluster's peer that refused a stream earlier in the run is not asked again.
            method: match (method, cx.topology.is_cluster()) {
                (Method::Streamed, true) => cx.streaming.method_on(peer_id),
                (method, _) => method,
            },
            streaming: cx.streaming.clone(),
            stored_shards: cx.topology.is_cluster(),
            peer_id,
            collection: name.to_string(),
            dir: dir.clone(),
            ui: cx.ui.clone(),
            stop: cx.stop.clone(),
            retry: cx.options.retry,
            events: events.clone(),
            gate: Arc::clone(&gate),
        };
        std::thread::spawn(move || {
            let result = peer_shards(&work, &shards);
            work.events.send(Event::Done(peer_id, result)).ok();
        });
        heard.running += 1;
    }
    drop(events);

    let mut closing = false;
    loop {
        if !closing
            && (heard.running == 0 || heard.failure.is_some() || cx.stop.requested().is_some())
        {
            // No worker starts another creation from here on.
            gate.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
            closing = true;
        }
        // Creations under way are waited for (Qdrant finishes them, and they must be
        // deleted); transfers are not. Their events are all sent before `creating` drops.
        if closing && gate.lock().unwrap_or_else(PoisonError::into_inner).creating == 0 {
            while let Ok(event) = inbox.try_recv() {
                heard.take(event, undo);
            }
            break;
        }
        match inbox.recv_timeout(POLL) {
            Ok(event) => heard.take(event, undo),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                gate.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
                closing = true;
            }
        }
    }
    delete_made(cx, name, clients, undo);
    stopped(cx.stop)?;
    let Heard {
        taken,
        failure,
        stored,
        ..
    } = heard;
    // A worker that ended without its shards (the gate closed on it) was stopped.
    let failure = failure.or_else(|| {
        (taken.len() != sources.len()).then_some(SiteFailure::Qdrant(QdrantError::Interrupted))
    });
    match failure {
        None => Ok(Taken {
            shards: taken,
            method: if stored { Method::Stored } else { method },
        }),
        Some(failure) => Err(super::site_failure(
            cx,
            name,
            failure,
            &Utf8PathBuf::from(dir.shown()),
        )),
    }
}

/// Whatever happened, nothing this run made of `name`'s shards stays on a peer unrecorded:
/// each snapshot still there is deleted, or said and kept in the undo log, whose end of run
/// tries again and, after a successful backup, hands it on to the next run's journal (as a
/// single node's).
fn delete_made(cx: &Context, name: &SafeName, clients: &BTreeMap<u64, Client>, undo: &Mutex<Undo>) {
    let made: Vec<(Site, String)> = super::lock(undo)
        .server_snapshots
        .iter()
        .filter(|(site, _)| site.is_shard() && site.collection() == name.as_str())
        .cloned()
        .collect();
    for (site, snapshot) in made {
        let Site::Shard { peer, .. } = site else {
            continue;
        };
        let Some(client) = clients.get(&peer) else {
            super::lock(undo).drop_snapshot(&site, &snapshot);
            continue;
        };
        match site.delete(client, &snapshot) {
            Ok(()) => super::lock(undo).forget_snapshot(&site, &snapshot),
            Err(e) => {
                cx.ui.warn(&format!(
                    "could not delete shard snapshot {snapshot} from peer {peer} ({}): {e}",
                    client.display_url()
                ));
            }
        }
    }
}

/// What the workers told the waiting thread so far.
#[derive(Default)]
struct Heard {
    /// Shard id → (the peer it came from, its file).
    taken: BTreeMap<u32, (u64, Downloaded)>,
    /// A shard was taken the stored way.
    stored: bool,
    failure: Option<SiteFailure>,
    /// Workers not done yet.
    running: usize,
}

impl Heard {
    /// Takes one worker event into account: journals creations and deletions, keeps results.
    fn take(&mut self, event: Event, undo: &Mutex<Undo>) {
        match event {
            Event::Journal(record, reply) => {
                let synced = super::lock(undo).journal_record(&record);
                reply.send(synced).ok();
            }
            Event::Created {
                site,
                peer_url,
                snapshot,
            } => super::lock(undo).created(site, peer_url, snapshot),
            Event::Unanswered(pending) => super::lock(undo).pending.push(pending),
            Event::Deleted { site, snapshot } => {
                super::lock(undo).forget_snapshot(&site, &snapshot);
            }
            Event::Done(peer_id, result) => {
                self.running -= 1;
                match result {
                    Ok(done) => {
                        for (shard, downloaded, method) in done {
                            self.stored |= method == Method::Stored;
                            self.taken.insert(shard, (peer_id, downloaded));
                        }
                    }
                    Err(e) => {
                        self.failure.get_or_insert(e);
                    }
                }
            }
        }
    }
}

/// How often the waiting thread looks at the stop flag.
const POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Whether workers may start snapshot creations, and how many are under way.
#[derive(Debug, Default)]
struct Gate {
    closed: bool,
    creating: usize,
}

/// What a peer's worker tells the waiting thread.
enum Event {
    /// A record to sync before the worker goes on (it waits for the outcome).
    Journal(Record, mpsc::Sender<std::io::Result<()>>),
    /// A creation got no usable answer: its snapshot may exist.
    Unanswered(Pending),
    Created {
        site: Site,
        peer_url: Option<String>,
        snapshot: String,
    },
    Deleted {
        site: Site,
        snapshot: String,
    },
    Done(u64, Result<Vec<(u32, Downloaded, Method)>, SiteFailure>),
}

/// What a peer's worker owns (it may outlive the wait: a stalled transfer is abandoned).
struct Work {
    client: Client,
    /// The names the server goes by in snapshot turns.
    lock_keys: crate::engine::peers::LockKeys,
    /// How this collection's shards are taken, unless the peer does not stream.
    method: Method,
    /// The run's streaming, told when a peer does not stream.
    streaming: take::Streaming,
    /// The peer can take stored shard snapshots instead (a cluster's; a single node's
    /// collection is taken as one stored snapshot by the caller instead).
    stored_shards: bool,
    peer_id: u64,
    collection: String,
    dir: Dest,
    ui: crate::ui::Ui,
    stop: crate::signals::StopFlag,
    retry: u32,
    events: mpsc::Sender<Event>,
    gate: Arc<Mutex<Gate>>,
}

/// A peer's worker tells the waiting thread, which journals (the worker waits for a record
/// to be synced before it asks) and keeps track of what is made.
impl Tracker for Work {
    fn record(&self, record: &Record) -> Result<(), SiteFailure> {
        let interrupted = || SiteFailure::Qdrant(QdrantError::Interrupted);
        let (reply, synced) = mpsc::channel();
        self.events
            .send(Event::Journal(record.clone(), reply))
            .map_err(|_| interrupted())?;
        match synced.recv() {
            Ok(result) => result.map_err(SiteFailure::Journal),
            Err(_) => Err(interrupted()),
        }
    }

    fn ask(&self, client: &Client, site: Site<&str>) -> Result<SnapshotDescription, QdrantError> {
        site.create(client)
    }

    fn created(&self, site: Site<&str>, peer_url: Option<String>, snapshot: &str) {
        let event = Event::Created {
            site: site.owned(),
            peer_url,
            snapshot: snapshot.to_string(),
        };
        self.events.send(event).ok();
    }

    /// This run never looks for a shard snapshot whose answer it missed: the journal's record
    /// leads the next run to it (so the journal is kept), and the turn need not outlive the
    /// wait.
    fn unanswered(&self, mut pending: Pending) {
        if let Some(turn) = pending.turn.take() {
            turn.release_after_answer();
        }
        pending.looked_for = false;
        self.events.send(Event::Unanswered(pending)).ok();
    }

    fn deleted(&self, site: Site<&str>, snapshot: &str) {
        let event = Event::Deleted {
            site: site.owned(),
            snapshot: snapshot.to_string(),
        };
        self.events.send(event).ok();
    }
}

/// One peer's share: for each shard, its streamed snapshot, or snapshot, download, delete,
/// telling the waiting thread each creation and deletion so it can journal them and clean up
/// what is left.
fn peer_shards(work: &Work, shards: &[u32]) -> Result<Vec<(u32, Downloaded, Method)>, SiteFailure> {
    let mut done = Vec::new();
    // Once a shard was refused a stream, this worker's others are taken the stored way too.
    let mut method = work.method;
    for &shard in shards {
        if method == Method::Streamed {
            match stream_shard(work, shard) {
                Err(SiteFailure::NotStreamed) if work.stored_shards => {
                    let shown = format!("peer {} ({})", work.peer_id, work.client.display_url());
                    work.streaming.refuse(work.peer_id, &shown, &work.ui);
                    method = Method::Stored;
                }
                streamed => {
                    done.push((shard, streamed?, Method::Streamed));
                    continue;
                }
            }
        }
        done.push((shard, stored_shard(work, shard)?, Method::Stored));
    }
    Ok(done)
}

/// Streams one shard's snapshot into its file.
fn stream_shard(work: &Work, shard: u32) -> Result<Downloaded, SiteFailure> {
    let closed = work
        .gate
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .closed;
    if closed || work.stop.requested().is_some() {
        return Err(SiteFailure::Qdrant(QdrantError::Interrupted));
    }
    let site = Site::Shard {
        collection: work.collection.as_str(),
        shard,
        peer: work.peer_id,
    };
    let stream = snapshot::Stream {
        client: &work.client,
        collection: &work.collection,
        shard,
        target: &work.dir.join(&shard_file_name(shard)),
        label: &site.download_label(),
        ui: &work.ui,
        stop: &work.stop,
    };
    take::stream(&stream, work.retry, Durability::SyncedNow)
}

/// Takes one shard's snapshot on the peer, downloads it into its file and deletes it, telling
/// the waiting thread the creation and the deletion.
fn stored_shard(work: &Work, shard: u32) -> Result<Downloaded, SiteFailure> {
    let site = Site::Shard {
        collection: work.collection.as_str(),
        shard,
        peer: work.peer_id,
    };
    // Named by the shard and the second on this peer: another run's snapshot of it there
    // in the same second would get the same name (see `concurrent`). Taken before the
    // gate, so the waiting thread never waits for a run that waits for its turn.
    let turn = take_turn(&work.lock_keys, site, &work.stop, &work.ui)
        .map_err(|_| SiteFailure::Qdrant(QdrantError::Interrupted))?;
    {
        let mut gate = work.gate.lock().unwrap_or_else(PoisonError::into_inner);
        if gate.closed || work.stop.requested().is_some() {
            return Err(SiteFailure::Qdrant(QdrantError::Interrupted));
        }
        gate.creating += 1;
    }
    let captured = Stored.capture(&work.client, site, turn, work);
    // After its events: the waiting thread, seeing no creation under way, has them.
    work.gate
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .creating -= 1;
    let captured = captured?;
    let download = snapshot::Download {
        client: &work.client,
        site,
        snapshot: &captured,
        target: &work.dir.join(&shard_file_name(shard)),
        label: &site.download_label(),
        ui: &work.ui,
        stop: &work.stop,
    };
    let downloaded = Stored
        .fetch(&download, work.retry, Durability::SyncedNow)
        .map_err(SiteFailure::Download)?;
    // One that stays is deleted by the waiting thread once the workers are done.
    Stored.release(&work.client, site, &captured, work).ok();
    Ok(downloaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qdrant::cluster::parse_collection_cluster;
    use std::collections::BTreeSet;

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
    fn the_sources_spread_over_every_peer_when_the_placement_allows() {
        // Round-robin placement over peers whose ids are not in placement order: a plain
        // greedy choice puts two shards on peer 1 and none on peer 3.
        let holders = [(0, [1, 3]), (1, [3, 2]), (2, [2, 1])];
        let shards: BTreeMap<u32, ShardPlacement> = holders
            .iter()
            .map(|(id, peers)| {
                let replicas = peers
                    .iter()
                    .map(|p| (*p, ("Active".to_string(), Some(1))))
                    .collect();
                (
                    *id,
                    ShardPlacement {
                        key: None,
                        replicas,
                    },
                )
            })
            .collect();
        let sources = choose_sources("c", &shards).unwrap();
        let peers: BTreeSet<u64> = sources.values().copied().collect();
        assert_eq!(peers.len(), 3, "{sources:?}");
        for (id, peer) in &sources {
            assert!(shards[id].replicas.contains_key(peer));
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

    #[test]
    fn a_shard_no_peer_reports_is_a_contradiction_not_a_smaller_backup() {
        // Every peer says the collection has 3 shards, yet none reports shard 2 (a cluster
        // changing between the calls, or a server that lies): a backup of shards 0 and 1 only
        // would lose shard 2's points.
        let mut views = views();
        for view in &mut views {
            view.local.retain(|r| r.shard_id != 2);
            view.remote.retain(|r| r.shard_id != 2);
        }
        let refused = placement("discussions", &views);
        assert!(refused.is_err(), "{:?}", refused.map(|s| s.len()));
    }
}
