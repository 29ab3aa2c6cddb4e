//! Multi-peer mode: several doubles, each on its own loopback address and the same port,
//! sharing one cluster state (peers, collections, shard placement, replica states, points),
//! shaped after the real three-node exchanges in `tests/fixtures/qdrant/cluster/`.
//!
//! ```no_run
//! use qdrant_double::{Cluster, Config};
//! let cluster = Cluster::start(3, Config::default());
//! let info = qdrant_double::info_from_fixture("cluster/3-node-collection-info.json");
//! cluster.seed("discussions", info, 3, 2, (1..=600).collect());
//! println!("{:?}", cluster.urls());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::points::View;
use crate::server::lock;
use crate::snapshot::{
    FILLER_ENTRY, Filler, HashingWriter, POINTS_ENTRY, STORAGE_VERSION, append_bytes, header,
    points_entry,
};
use crate::state::{Collection, config_for_snapshot};
use crate::{Config, Double, fixtures_dir};

/// The peer ids of the captured three-node cluster, used for the first three peers.
const FIXTURE_PEER_IDS: [u64; 3] = [2650921678778859, 4991361595838338, 2915558401092421];

/// What a peer's double knows about the cluster it belongs to.
pub(crate) struct PeerLink {
    pub state: Arc<Mutex<ClusterState>>,
    pub peer_id: u64,
}

impl PeerLink {
    /// The cluster state, with every replica whose catch-up time is over made `Active`.
    pub fn lock(&self) -> MutexGuard<'_, ClusterState> {
        let mut st = lock(&self.state);
        st.settle(Instant::now());
        st
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PeerInfo {
    pub peer_id: u64,
    /// The P2P URI `GET /cluster` reports (never a REST address).
    pub uri: String,
}

#[derive(Debug, Default)]
pub(crate) struct ClusterState {
    pub peers: Vec<PeerInfo>,
    pub collections: BTreeMap<String, ClusterCollection>,
    pub timing: ReplicaTiming,
    /// Raft commit index shown by `GET /cluster`: one more per metadata change.
    pub commit: u64,
    /// Alias name → collection name (the cluster's, as every peer answers them).
    pub aliases: BTreeMap<String, String>,
    /// Per collection and peer id: how many more of that peer's info reads answer `yellow`,
    /// as each peer of a real cluster does while its replicas build the vector index a
    /// `PATCH` of the indexing threshold asked for.
    pub indexing: BTreeMap<(String, u64), u32>,
    /// Per collection, per peer id: the statuses that peer's info reads answered since the
    /// collection's indexing threshold last came back from 0, for tests
    /// ([`Cluster::statuses_since_indexing`]).
    pub indexing_statuses: BTreeMap<String, BTreeMap<u64, Vec<String>>>,
}

impl ClusterState {
    /// Forgets what a collection's earlier indexing left (it was deleted or created again).
    pub fn forget_indexing(&mut self, name: &str) {
        self.indexing.retain(|(c, _), _| c != name);
        self.indexing_statuses.remove(name);
    }
}

/// How long a real cluster's background replica work takes (see [`Pending`]).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ReplicaTiming {
    /// A new shard's replicas stay `Initializing` this long.
    pub init: Duration,
    /// A `Dead` replica waits this long before its shard transfer starts.
    pub transfer_start: Duration,
    /// A shard transfer takes this long.
    pub transfer: Duration,
    /// A replica made `Dead` by another's recovery turns `Dead` this long after it.
    pub consensus: Duration,
    /// Whether `Dead` replicas get a transfer at all.
    pub refill_dead: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClusterCollection {
    /// `CollectionConfig` as `GET /collections/{c}` shows it.
    pub config: Value,
    pub schema: BTreeMap<String, Value>,
    pub empty_fields: BTreeSet<String>,
    pub shards: BTreeMap<u32, Shard>,
    /// Custom sharding: the shard keys in creation order.
    pub keys: Vec<Value>,
    /// The points' records (id, vector, payload as stored), by the number their ids are kept
    /// under; every replica holding a point holds this record. Seeded points have none.
    pub records: BTreeMap<u64, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Shard {
    pub key: Option<Value>,
    /// By peer id.
    pub replicas: BTreeMap<u64, Replica>,
}

/// What a replica waits for, as a real cluster's background work does it (checked against
/// real three-node clusters, see `docs/qdrant.md`):
/// - a new shard's replicas are `Initializing` until each peer reports its shard created;
/// - a `Dead` replica gets a shard transfer from an `Active` one after a moment, during which
///   it is `Partial` and the transfer is listed, and then it is `Active` with the source's
///   points (a real server passes through `Recovery` on a snapshot transfer first);
/// - a shard recovered with `priority=snapshot` makes its *Active* replicas `Dead` a moment
///   after the upload answered (consensus); one still `Initializing` is left alone and later
///   comes up `Active` with what it had.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Pending {
    /// `Initializing`: `Active` at this instant, keeping the points it has then.
    Init(Instant),
    /// `Dead`: a transfer from an `Active` replica starts at this instant (none: stays `Dead`).
    Transfer(Instant),
    /// `Partial`: receiving a transfer from `from`, complete at `done`.
    Receiving { from: u64, done: Instant },
    /// A fault ([`crate::FaultKind::LateReplicaReset`]): `Initializing` and empty at this
    /// instant.
    Reset(Instant),
    /// Still `Active`: made `Dead` by another replica's recovery once the cluster's consensus
    /// has applied it, at this instant (then refilled as any `Dead` replica).
    MarkDead(Instant),
}

impl Pending {
    fn due(self) -> Instant {
        match self {
            Pending::Init(at)
            | Pending::Transfer(at)
            | Pending::Reset(at)
            | Pending::MarkDead(at) => at,
            Pending::Receiving { done, .. } => done,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Replica {
    /// PascalCase `ReplicaState`.
    pub state: String,
    pub points: BTreeSet<u64>,
    pub pending: Option<Pending>,
}

impl Replica {
    pub fn active(points: BTreeSet<u64>) -> Replica {
        Replica {
            state: "Active".to_string(),
            points,
            pending: None,
        }
    }

    /// A replica of a shard just created: `Initializing` until `at`.
    pub fn initializing(at: Instant) -> Replica {
        Replica {
            state: "Initializing".to_string(),
            points: BTreeSet::new(),
            pending: Some(Pending::Init(at)),
        }
    }

    /// `Dead` (a failed recovery, or another replica's `priority=snapshot` recovery): a
    /// transfer refills it after `timing.transfer_start` (unless refills are off).
    pub fn kill(&mut self, now: Instant, timing: ReplicaTiming) {
        self.state = "Dead".to_string();
        self.pending = timing
            .refill_dead
            .then_some(Pending::Transfer(now + timing.transfer_start));
    }

    /// Recovered from a snapshot on its own peer: `Active` with these points.
    pub fn recovered(&mut self, points: BTreeSet<u64>) {
        self.points = points;
        self.state = "Active".to_string();
        self.pending = None;
    }

    pub fn is_active(&self) -> bool {
        self.state == "Active"
    }
}

impl ClusterState {
    pub fn peer_ids(&self) -> Vec<u64> {
        self.peers.iter().map(|p| p.peer_id).collect()
    }

    /// Applies every replica change due by `now`, earliest first (a transfer that starts
    /// after another replica's initialization sees that replica `Active`).
    pub fn settle(&mut self, now: Instant) {
        let timing = self.timing;
        for col in self.collections.values_mut() {
            for shard in col.shards.values_mut() {
                shard.settle(now, timing);
            }
        }
    }
}

impl Shard {
    fn settle(&mut self, now: Instant, timing: ReplicaTiming) {
        loop {
            let next = self
                .replicas
                .iter()
                .filter_map(|(peer, r)| r.pending.map(|p| (p.due(), *peer, p)))
                .filter(|(due, _, _)| *due <= now)
                .min_by_key(|(due, peer, _)| (*due, *peer));
            let Some((due, peer, pending)) = next else {
                return;
            };
            let source = |from: Option<u64>| {
                self.replicas
                    .iter()
                    .find(|(p, r)| **p != peer && r.is_active() && from.is_none_or(|f| f == **p))
                    .map(|(p, r)| (*p, r.points.clone()))
            };
            let change = match pending {
                Pending::Init(_) => Some(("Active", None, None)),
                Pending::MarkDead(_) => Some((
                    "Dead",
                    None,
                    timing
                        .refill_dead
                        .then_some(Pending::Transfer(due + timing.transfer_start)),
                )),
                Pending::Reset(_) => Some((
                    "Initializing",
                    Some(BTreeSet::new()),
                    Some(Pending::Init(due + timing.init)),
                )),
                Pending::Transfer(_) => match source(None) {
                    Some((from, _)) => Some((
                        "Partial",
                        None,
                        Some(Pending::Receiving {
                            from,
                            done: due + timing.transfer,
                        }),
                    )),
                    // Nothing to copy from: it stays Dead.
                    None => Some(("Dead", None, None)),
                },
                Pending::Receiving { from, .. } => match source(Some(from)) {
                    Some((_, points)) => Some(("Active", Some(points), None)),
                    // The source is gone: the transfer failed, the replica is Dead again.
                    None => Some((
                        "Dead",
                        None,
                        Some(Pending::Transfer(due + timing.transfer_start)),
                    )),
                },
            };
            if let (Some((state, points, then)), Some(r)) = (change, self.replicas.get_mut(&peer)) {
                r.state = state.to_string();
                if let Some(points) = points {
                    r.points = points;
                }
                r.pending = then;
            }
        }
    }

    /// The points a read through `peer` sees (Qdrant reads the peer's own replica when it is
    /// readable, else another readable one); none when no replica is readable, as a real read
    /// of a shard with only `Initializing` replicas answers nothing for it.
    pub fn read_through(&self, peer: u64) -> Option<&BTreeSet<u64>> {
        match self.replicas.get(&peer) {
            Some(local) if local.is_active() => Some(&local.points),
            _ => self
                .replicas
                .values()
                .find(|r| r.is_active())
                .map(|r| &r.points),
        }
    }

    /// `consistency=all`: every replica must be `Active` or `Initializing` (else the peer id
    /// of one that is not); the answer is the smallest count among the readable ones (Qdrant's
    /// resolution of counts).
    pub fn count_all_replicas(&self) -> Result<usize, u64> {
        if let Some((peer, _)) = self
            .replicas
            .iter()
            .find(|(_, r)| !matches!(r.state.as_str(), "Active" | "Initializing"))
        {
            return Err(*peer);
        }
        Ok(self
            .replicas
            .values()
            .filter(|r| r.is_active())
            .map(|r| r.points.len())
            .min()
            .unwrap_or(0))
    }
}

impl ClusterCollection {
    pub fn new(config: Value, schema: BTreeMap<String, Value>, empty: BTreeSet<String>) -> Self {
        ClusterCollection {
            config,
            schema,
            empty_fields: empty,
            shards: BTreeMap::new(),
            keys: Vec::new(),
            records: BTreeMap::new(),
        }
    }

    fn param_u32(&self, name: &str, default: u32) -> u32 {
        self.config["params"][name]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(default)
    }

    pub fn shard_number(&self) -> u32 {
        self.param_u32("shard_number", 1)
    }

    pub fn replication_factor(&self) -> u32 {
        self.param_u32("replication_factor", 1)
    }

    pub fn custom(&self) -> bool {
        self.config["params"]["sharding_method"] == "custom"
    }

    /// Adds `count` shards with sequential ids after the highest existing one, each with
    /// `replication` replicas placed round-robin over `peers` (or on `placement`): `Active`
    /// (seeded data), or `Initializing` until `init` (created through the API).
    pub fn add_shards(
        &mut self,
        peers: &[u64],
        count: u32,
        replication: u32,
        key: Option<Value>,
        placement: Option<&[u64]>,
        init: Option<Instant>,
    ) -> Vec<u32> {
        let first = self.shards.keys().next_back().map_or(0, |last| last + 1);
        let hosts: &[u64] = placement.filter(|p| !p.is_empty()).unwrap_or(peers);
        let copies = (replication.max(1) as usize).min(hosts.len().max(1));
        let mut ids = Vec::new();
        for id in first..first + count {
            let replicas = (0..copies)
                .filter_map(|r| hosts.get((id as usize + r) % hosts.len().max(1)))
                .map(|peer| {
                    let replica = match init {
                        Some(at) => Replica::initializing(at),
                        None => Replica::active(BTreeSet::new()),
                    };
                    (*peer, replica)
                })
                .collect();
            self.shards.insert(
                id,
                Shard {
                    key: key.clone(),
                    replicas,
                },
            );
            ids.push(id);
        }
        if let Some(key) = key {
            self.keys.push(key);
        }
        ids
    }

    /// The shard an auto-sharded point goes to (the double's stand-in for Qdrant's hash ring).
    pub fn shard_for(&self, ids: &[u32], point: u64) -> Option<u32> {
        if ids.is_empty() {
            return None;
        }
        Some(ids[(point % ids.len() as u64) as usize])
    }

    /// The shard ids of `key` (custom sharding), in order.
    pub fn shards_of_key(&self, key: &Value) -> Vec<u32> {
        self.shards
            .iter()
            .filter(|(_, s)| s.key.as_ref() == Some(key))
            .map(|(id, _)| *id)
            .collect()
    }

    /// A shard's points as a test sees them: an `Active` replica's, else any replica's.
    pub fn shard_points(&self, shard: &Shard) -> BTreeSet<u64> {
        shard
            .replicas
            .values()
            .find(|r| r.is_active())
            .or_else(|| shard.replicas.values().next())
            .map(|r| r.points.clone())
            .unwrap_or_default()
    }

    pub fn all_points(&self) -> BTreeSet<u64> {
        self.shards
            .values()
            .flat_map(|s| self.shard_points(s))
            .collect()
    }

    /// What one peer stores: its replicas' points.
    pub fn local_points(&self, peer: u64) -> BTreeSet<u64> {
        self.shards
            .values()
            .filter_map(|s| s.replicas.get(&peer))
            .flat_map(|r| r.points.iter().copied())
            .collect()
    }

    /// What a read through `peer` sees of `shards`: each shard's readable replica's points
    /// (see [`Shard::read_through`]), with their shard keys.
    pub fn view(&self, peer: u64, shards: &[u32]) -> View<'_> {
        let mut ids = BTreeSet::new();
        let mut shard_keys = BTreeMap::new();
        for shard in shards.iter().filter_map(|id| self.shards.get(id)) {
            let Some(points) = shard.read_through(peer) else {
                continue;
            };
            ids.extend(points.iter().copied());
            if let Some(key) = &shard.key {
                shard_keys.extend(points.iter().map(|p| (*p, key.clone())));
            }
        }
        View {
            config: &self.config,
            ids,
            records: &self.records,
            shard_keys,
        }
    }

    /// Writes a point into every replica of `shard` (its record, or none: an id-only point).
    pub fn put_point(&mut self, shard: u32, key: u64, record: Option<Value>) {
        for r in self
            .shards
            .get_mut(&shard)
            .into_iter()
            .flat_map(|s| s.replicas.values_mut())
        {
            r.points.insert(key);
        }
        match record {
            Some(record) => self.records.insert(key, record),
            None => self.records.remove(&key),
        };
    }

    /// The shard ids a request's `shard_key` (a key or a list of keys) selects; all without one.
    /// An unknown key is refused (`prefix`: reads say `Bad request`, writes `Wrong input`).
    pub fn selected_shards(&self, selector: &Value, prefix: &str) -> Result<Vec<u32>, String> {
        let keys: Vec<&Value> = match selector {
            Value::Null => return Ok(self.shards.keys().copied().collect()),
            Value::Array(keys) => keys.iter().collect(),
            key => vec![key],
        };
        let mut ids = Vec::new();
        for key in keys {
            if !self.keys.contains(key) {
                return Err(format!("{prefix}: Shard key {key} not found"));
            }
            ids.extend(self.shards_of_key(key));
        }
        Ok(ids)
    }

    /// An upsert body applied: each point into one shard of the selected ones (custom
    /// sharding: of its key) by its id, into every replica of that shard.
    pub fn upsert(&mut self, body: &Value, version: &str) -> Result<(), String> {
        let selector = &body["shard_key"];
        if self.custom() && selector.is_null() {
            return Err("Wrong input: Shard key not specified".into());
        }
        let shards = self.selected_shards(selector, "Wrong input")?;
        for (key, record) in crate::points::prepare_upsert(&self.config, body, version)? {
            if let Some(shard) = self.shard_for(&shards, key) {
                self.put_point(shard, key, record);
            }
        }
        Ok(())
    }

    /// A delete body (`points` or `filter`, `shard_key`?) applied to every selected shard;
    /// the filter is evaluated on what a read through `peer` sees.
    pub fn delete(&mut self, peer: u64, body: &Value) -> Result<(), String> {
        // As real 1.18.3 answers a delete without a key in a custom-sharded collection (seen
        // by hand on a three-node cluster).
        if self.custom() && body["shard_key"].is_null() {
            return Err("Wrong input: Shard key not specified".into());
        }
        let shards = self.selected_shards(&body["shard_key"], "Wrong input")?;
        let keys = crate::points::delete_selection(&self.view(peer, &shards), body)?;
        for key in keys {
            self.remove_point(&shards, key);
        }
        Ok(())
    }

    /// Takes the records a snapshot brought for `points`; one it has none for (an older
    /// archive, a seeded point) goes back to made-up vectors and payload.
    pub fn adopt_records(&mut self, points: &BTreeSet<u64>, mut records: BTreeMap<u64, Value>) {
        for point in points {
            match records.remove(point) {
                Some(record) => self.records.insert(*point, record),
                None => self.records.remove(point),
            };
        }
    }

    /// Removes a point from every replica of `shards`; its record goes once no replica holds it.
    pub fn remove_point(&mut self, shards: &[u32], key: u64) {
        for (_, shard) in self.shards.iter_mut().filter(|(id, _)| shards.contains(id)) {
            for r in shard.replicas.values_mut() {
                r.points.remove(&key);
            }
        }
        let held = self
            .shards
            .values()
            .any(|s| s.replicas.values().any(|r| r.points.contains(&key)));
        if !held {
            self.records.remove(&key);
        }
    }

    /// The collection as the single-node code renders it, with `points`.
    pub fn as_collection(&self, points: BTreeSet<u64>) -> Collection {
        Collection {
            config: self.config.clone(),
            schema: self.schema.clone(),
            points,
            empty_fields: self.empty_fields.clone(),
            elsewhere: BTreeMap::new(),
            records: BTreeMap::new(),
        }
    }

    /// `result` of `GET /collections/{c}/cluster` on `peer`.
    pub fn cluster_view(&self, peer: u64) -> Value {
        let mut local = Vec::new();
        let mut remote = Vec::new();
        let mut transfers = Vec::new();
        for (id, shard) in &self.shards {
            for (holder, replica) in &shard.replicas {
                let mut entry = if *holder == peer {
                    json!({"shard_id": id, "points_count": replica.points.len(), "state": replica.state})
                } else {
                    json!({"shard_id": id, "peer_id": holder, "state": replica.state})
                };
                if let Some(key) = &shard.key {
                    entry["shard_key"] = key.clone();
                }
                if *holder == peer {
                    local.push(entry);
                } else {
                    remote.push(entry);
                }
                if let Some(Pending::Receiving { from, .. }) = replica.pending {
                    transfers.push(json!({
                        "shard_id": id, "from": from, "to": holder, "sync": true,
                        "method": "stream_records",
                    }));
                }
            }
        }
        json!({
            "peer_id": peer,
            "shard_count": self.shards.len(),
            "local_shards": local,
            "remote_shards": remote,
            "shard_transfers": transfers,
        })
    }
}

/// [`crate::FaultKind::ResetLocalReplicaAfterAnswer`]: the peer's replica of its lowest local
/// shard of `collection` is reset now.
pub(crate) fn reset_lowest_local_replica(link: &PeerLink, collection: &str) {
    let mut st = link.lock();
    let Some(col) = st.collections.get_mut(collection) else {
        return;
    };
    if let Some(replica) = col
        .shards
        .values_mut()
        .find_map(|shard| shard.replicas.get_mut(&link.peer_id))
    {
        replica.pending = Some(Pending::Reset(Instant::now()));
    }
}

/// The `result` of a captured `GET /collections/{c}` (path relative to [`fixtures_dir`]), to
/// seed with.
pub fn info_from_fixture(fixture: &str) -> Value {
    let path = fixtures_dir().join(fixture);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("qdrant-double: cannot read {}: {e}", path.display()));
    let value: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("qdrant-double: bad JSON in {}: {e}", path.display()));
    value["response"]["body"]["result"].clone()
}

/// Several doubles that form one Qdrant cluster. Peer `i` serves REST on `127.0.0.{i+1}:PORT`
/// (one port for all, as in the common deployment) and reports its P2P URI as
/// `http://127.0.0.{i+1}:{PORT+2}/`. Dropping it stops every peer.
pub struct Cluster {
    peers: Vec<Option<Double>>,
    ids: Vec<u64>,
    port: u16,
    state: Arc<Mutex<ClusterState>>,
}

impl Cluster {
    /// Starts `peers` (1..=254) peers. `config.peer_id` is not used: the peers get the
    /// captured cluster's ids (then made-up ones), shifted by an amount of this cluster's own:
    /// two clusters never share a peer id, as two real ones do not (aimem tells servers apart
    /// by them). The shift keeps the ids' order.
    pub fn start(peers: usize, config: Config) -> Cluster {
        assert!(
            (1..=254).contains(&peers),
            "qdrant-double: 1..=254 peers, not {peers}"
        );
        static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let instance = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let shift = (u64::from(std::process::id()) % 100_000) * 100_000 + instance % 100_000;
        let ids: Vec<u64> = (0..peers)
            .map(|i| {
                FIXTURE_PEER_IDS
                    .get(i)
                    .copied()
                    .unwrap_or(1_000_000_000_000_000 + 7_919 * i as u64)
                    + shift
            })
            .collect();
        let mut last_error = None;
        // Another process may hold the port on one of the other loopback addresses: try again
        // with a new port.
        for _ in 0..50 {
            match Self::try_start(&ids, &config) {
                Ok(cluster) => return cluster,
                Err(e) => last_error = Some(e),
            }
        }
        panic!("qdrant-double: cannot start a cluster: {last_error:?}");
    }

    fn try_start(ids: &[u64], config: &Config) -> io::Result<Cluster> {
        let state = Arc::new(Mutex::new(ClusterState {
            timing: ReplicaTiming {
                init: config.replica_init_delay,
                transfer_start: config.transfer_start_delay,
                transfer: config.transfer_duration,
                consensus: config.consensus_delay,
                refill_dead: config.refill_dead_replicas,
            },
            commit: 1,
            ..ClusterState::default()
        }));
        let mut doubles = Vec::new();
        let mut port = 0u16;
        for (i, id) in ids.iter().enumerate() {
            let link = Arc::new(PeerLink {
                state: Arc::clone(&state),
                peer_id: *id,
            });
            let peer_config = Config {
                peer_id: *id,
                ..config.clone()
            };
            let addr = SocketAddr::from((peer_ip(i), port));
            let double = Double::start_full(peer_config, addr, None, Some(link))?;
            port = double.port();
            doubles.push(Some(double));
        }
        let p2p = if port <= u16::MAX - 2 {
            port + 2
        } else {
            port - 2
        };
        lock(&state).peers = ids
            .iter()
            .enumerate()
            .map(|(i, id)| PeerInfo {
                peer_id: *id,
                uri: format!("http://{}:{p2p}/", peer_ip(i)),
            })
            .collect();
        Ok(Cluster {
            peers: doubles,
            ids: ids.to_vec(),
            port,
            state,
        })
    }

    fn locked(&self) -> MutexGuard<'_, ClusterState> {
        let mut st = lock(&self.state);
        st.settle(Instant::now());
        st
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The REST port every peer listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.{i+1}:PORT`
    pub fn url(&self, i: usize) -> String {
        format!("http://{}:{}", peer_ip(i), self.port)
    }

    pub fn urls(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.url(i)).collect()
    }

    pub fn peer_id(&self, i: usize) -> u64 {
        self.ids[i]
    }

    pub fn peer_ids(&self) -> Vec<u64> {
        self.ids.clone()
    }

    /// Peer `i`'s double (requests, faults, snapshot files). Panics once it is stopped.
    pub fn peer(&self, i: usize) -> &Double {
        self.peers[i]
            .as_ref()
            .unwrap_or_else(|| panic!("qdrant-double: peer {i} is stopped"))
    }

    /// Stops peer `i`: it stops listening (connections are refused) and its open connections
    /// close. The others keep reporting it as a peer with its replicas, as a real cluster does
    /// right after a node goes down.
    pub fn stop_peer(&mut self, i: usize) {
        self.peers[i] = None;
    }

    /// Shard snapshot files (no checksum sidecars) on peer `i` for one shard, sorted. They stay
    /// after the collection is deleted, as on the real server.
    pub fn shard_snapshot_names(&self, i: usize, collection: &str, shard_id: u32) -> Vec<String> {
        let dir = self
            .peer(i)
            .snapshots_dir()
            .join(collection)
            .join("shards")
            .join(shard_id.to_string());
        crate::list_snapshot_files(&dir)
    }

    /// Adds (or replaces) an auto-sharded collection from a CollectionInfo-like value (see
    /// [`info_from_fixture`]) with `shard_number` shards of `replication_factor` replicas each,
    /// placed round-robin; point `id` goes to shard `id % shard_number`.
    pub fn seed(
        &self,
        name: &str,
        info: Value,
        shard_number: u32,
        replication_factor: u32,
        point_ids: Vec<u64>,
    ) {
        let mut col = collection_from_info(&info, shard_number, replication_factor, false);
        let mut st = self.locked();
        let ids = col.add_shards(
            &st.peer_ids(),
            shard_number,
            replication_factor,
            None,
            None,
            None,
        );
        for point in point_ids {
            if let Some(shard) = col.shard_for(&ids, point) {
                for r in col
                    .shards
                    .get_mut(&shard)
                    .into_iter()
                    .flat_map(|s| s.replicas.values_mut())
                {
                    r.points.insert(point);
                }
            }
        }
        st.collections.insert(name.to_string(), col);
        st.commit += 1;
    }

    /// [`Cluster::seed`] with the `result` of a captured `GET /collections/{c}` (path relative
    /// to [`fixtures_dir`]) and points `1..=points`.
    pub fn seed_from_fixture(
        &self,
        name: &str,
        fixture: &str,
        shard_number: u32,
        replication_factor: u32,
        points: u64,
    ) {
        let info = info_from_fixture(fixture);
        assert!(
            info.get("config").is_some(),
            "qdrant-double: {fixture} is not a collection info fixture"
        );
        self.seed(
            name,
            info,
            shard_number,
            replication_factor,
            (1..=points).collect(),
        );
    }

    /// The five AI Memory collections from their fixtures, 30 points each, with
    /// `shard_number` shards of `replication_factor` replicas.
    pub fn seed_ai_memory(&self, shard_number: u32, replication_factor: u32) {
        for name in crate::AI_MEMORY_COLLECTIONS {
            let fixture = format!("collections/info-{name}.json");
            self.seed_from_fixture(name, &fixture, shard_number, replication_factor, 30);
        }
    }

    /// Adds (or replaces) a custom-sharded collection: the keys are created in the given
    /// order, `shard_number_per_key` shards each (sequential shard ids), and each key's points
    /// go to its shards by `id % shard_number_per_key`.
    pub fn seed_custom(
        &self,
        name: &str,
        info: Value,
        shard_number_per_key: u32,
        replication_factor: u32,
        keys_with_points: &[(Value, Vec<u64>)],
    ) {
        let mut col = collection_from_info(&info, shard_number_per_key, replication_factor, true);
        let mut st = self.locked();
        let peers = st.peer_ids();
        for (key, points) in keys_with_points {
            let ids = col.add_shards(
                &peers,
                shard_number_per_key,
                replication_factor,
                Some(key.clone()),
                None,
                None,
            );
            for point in points {
                if let Some(shard) = col.shard_for(&ids, *point) {
                    for r in col
                        .shards
                        .get_mut(&shard)
                        .into_iter()
                        .flat_map(|s| s.replicas.values_mut())
                    {
                        r.points.insert(*point);
                    }
                }
            }
        }
        st.collections.insert(name.to_string(), col);
        st.commit += 1;
    }

    /// [`Cluster::seed_custom`] with each key's own shard number (Qdrant's `shards_number`
    /// when a key is created), `shard_number` being the collection's default.
    pub fn seed_custom_per_key(
        &self,
        name: &str,
        info: Value,
        shard_number: u32,
        replication_factor: u32,
        keys: &[(Value, u32, u32, Vec<u64>)],
    ) {
        let mut col = collection_from_info(&info, shard_number, replication_factor, true);
        let mut st = self.locked();
        let peers = st.peer_ids();
        for (key, shards, replicas, points) in keys {
            let ids = col.add_shards(&peers, *shards, *replicas, Some(key.clone()), None, None);
            for point in points {
                if let Some(shard) = col.shard_for(&ids, *point) {
                    for r in col
                        .shards
                        .get_mut(&shard)
                        .into_iter()
                        .flat_map(|s| s.replicas.values_mut())
                    {
                        r.points.insert(*point);
                    }
                }
            }
        }
        st.collections.insert(name.to_string(), col);
        st.commit += 1;
    }

    /// Sorted.
    pub fn collection_names(&self) -> Vec<String> {
        self.locked().collections.keys().cloned().collect()
    }

    /// Writes points as `PUT /collections/{name}/points` on any peer would: `points` is an
    /// upsert body (with `shard_key` for custom sharding) or a bare list of points. Each point
    /// goes to shard `id % n` of the `n` selected shards, into every replica.
    pub fn upsert_records(&self, name: &str, points: Value) -> Result<(), String> {
        let body = crate::upsert_body(points);
        let version = self.peers.iter().flatten().next().map_or_else(
            || Config::default().version,
            |d| d.shared.config.version.clone(),
        );
        let mut st = self.locked();
        let col = st
            .collections
            .get_mut(name)
            .ok_or_else(|| crate::routes::not_found_collection(name))?;
        let result = col.upsert(&body, &version);
        st.commit += 1;
        result
    }

    /// Every point of the collection as a full scroll answers it (custom sharding: with its
    /// `shard_key`), in id order.
    pub fn records(&self, name: &str) -> Option<Vec<Value>> {
        let st = self.locked();
        let col = st.collections.get(name)?;
        let shards: Vec<u32> = col.shards.keys().copied().collect();
        Some(crate::all_records(&col.view(0, &shards)))
    }

    /// The points one peer's replica of a shard holds, as a full scroll answers them.
    pub fn replica_records(&self, name: &str, shard_id: u32, peer_id: u64) -> Option<Vec<Value>> {
        let st = self.locked();
        let col = st.collections.get(name)?;
        let replica = col.shards.get(&shard_id)?.replicas.get(&peer_id)?;
        let view = View {
            config: &col.config,
            ids: replica.points.clone(),
            records: &col.records,
            shard_keys: Default::default(),
        };
        Some(crate::all_records(&view))
    }

    /// Alias name → collection name.
    pub fn aliases(&self) -> BTreeMap<String, String> {
        self.locked().aliases.clone()
    }

    /// Per peer id, the statuses its `GET /collections/{name}` answered since a `PATCH` last
    /// gave the collection (with points) its indexing threshold back from 0: `yellow` for the
    /// first [`Config::indexing_reads`] reads of each peer, then `green`. `None`: no such
    /// change since the collection was created.
    pub fn statuses_since_indexing(&self, name: &str) -> Option<BTreeMap<u64, Vec<String>>> {
        self.locked().indexing_statuses.get(name).cloned()
    }

    /// Every point of the collection (one `Active` replica per shard), sorted.
    pub fn point_ids(&self, name: &str) -> Option<Vec<u64>> {
        self.locked()
            .collections
            .get(name)
            .map(|c| c.all_points().into_iter().collect())
    }

    /// The points one peer's replica of a shard holds, sorted.
    pub fn replica_point_ids(&self, name: &str, shard_id: u32, peer_id: u64) -> Option<Vec<u64>> {
        self.locked()
            .collections
            .get(name)?
            .shards
            .get(&shard_id)?
            .replicas
            .get(&peer_id)
            .map(|r| r.points.iter().copied().collect())
    }

    /// Shard id → its replicas as (peer id, state), by peer id.
    pub fn placement(&self, name: &str) -> Option<BTreeMap<u32, Vec<(u64, String)>>> {
        self.locked().collections.get(name).map(|c| {
            c.shards
                .iter()
                .map(|(id, s)| {
                    let replicas = s
                        .replicas
                        .iter()
                        .map(|(peer, r)| (*peer, r.state.clone()))
                        .collect();
                    (*id, replicas)
                })
                .collect()
        })
    }

    /// Shard id → its shard key (custom sharding).
    pub fn shard_keys(&self, name: &str) -> Option<BTreeMap<u32, Option<Value>>> {
        self.locked().collections.get(name).map(|c| {
            c.shards
                .iter()
                .map(|(id, s)| (*id, s.key.clone()))
                .collect()
        })
    }

    /// The shard keys in creation order.
    pub fn shard_key_order(&self, name: &str) -> Option<Vec<Value>> {
        self.locked().collections.get(name).map(|c| c.keys.clone())
    }

    /// Exactly the `result` that `GET /collections/{name}` would return.
    pub fn collection_info(&self, name: &str) -> Option<Value> {
        self.locked()
            .collections
            .get(name)
            .map(|c| c.as_collection(c.all_points()).info())
    }

    /// True when every replica of every collection is `Active` (no transfer running).
    pub fn all_active(&self) -> bool {
        self.locked().collections.values().all(|c| {
            c.shards
                .values()
                .all(|s| s.replicas.values().all(|r| r.state == "Active"))
        })
    }

    /// Replaces one replica's points: replicas that disagree, as a restore that recovered one
    /// replica and left another empty would leave them.
    pub fn set_replica_points(&self, name: &str, shard_id: u32, peer_id: u64, points: Vec<u64>) {
        let mut st = self.locked();
        if let Some(r) = st
            .collections
            .get_mut(name)
            .and_then(|c| c.shards.get_mut(&shard_id))
            .and_then(|s| s.replicas.get_mut(&peer_id))
        {
            r.points = points.into_iter().collect();
        }
    }

    /// Sets one replica's state (e.g. `Dead`), as a failed node or transfer would.
    pub fn set_replica_state(&self, name: &str, shard_id: u32, peer_id: u64, state: &str) {
        let mut st = self.locked();
        if let Some(r) = st
            .collections
            .get_mut(name)
            .and_then(|c| c.shards.get_mut(&shard_id))
            .and_then(|s| s.replicas.get_mut(&peer_id))
        {
            r.state = state.to_string();
            r.pending = None;
        }
    }
}

fn peer_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, (i + 1) as u8)
}

/// A collection from a CollectionInfo-like value, with the cluster's sharding parameters.
fn collection_from_info(
    info: &Value,
    shard_number: u32,
    replication_factor: u32,
    custom: bool,
) -> ClusterCollection {
    let base = Collection::from_info(info, BTreeSet::new());
    let mut config = base.config;
    if let Some(params) = config.get_mut("params").and_then(Value::as_object_mut) {
        params.insert("shard_number".into(), json!(shard_number));
        params.insert("replication_factor".into(), json!(replication_factor));
        params.remove("sharding_method");
        if custom {
            params.insert("sharding_method".into(), json!("custom"));
        }
    }
    ClusterCollection::new(config, base.schema, base.empty_fields)
}

/// `shard_key_mapping.json`: each key with its shard ids (custom sharding), `[]` for auto.
fn shard_key_mapping(col: &ClusterCollection) -> Value {
    let keys: Vec<Value> = col
        .keys
        .iter()
        .map(|k| json!({"key": k, "shard_ids": col.shards_of_key(k)}))
        .collect();
    Value::Array(keys)
}

fn replica_state(shard: &Shard, this_peer: u64) -> Value {
    let peers: serde_json::Map<String, Value> = shard
        .replicas
        .iter()
        .map(|(p, r)| (p.to_string(), json!(r.state)))
        .collect();
    json!({"is_local": shard.replicas.contains_key(&this_peer), "this_peer_id": this_peer, "peers": peers})
}

fn collection_files<W: Write>(b: &mut tar::Builder<W>, col: &ClusterCollection) -> io::Result<()> {
    append_bytes(b, "version.info", STORAGE_VERSION.as_bytes())?;
    append_bytes(
        b,
        "config.json",
        config_for_snapshot(&col.config).to_string().as_bytes(),
    )?;
    append_bytes(
        b,
        "shard_key_mapping.json",
        shard_key_mapping(col).to_string().as_bytes(),
    )?;
    let schema: serde_json::Map<String, Value> = col
        .schema
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    append_bytes(
        b,
        "payload_index.json",
        json!({ "schema": schema }).to_string().as_bytes(),
    )
}

fn finish<W: Write>(b: tar::Builder<HashingWriter<BufWriter<W>>>) -> io::Result<(W, String)> {
    let writer = b.into_inner()?;
    let (buffered, sha) = writer.finish();
    let inner = buffered.into_inner().map_err(|e| e.into_error())?;
    Ok((inner, sha))
}

/// A peer's collection snapshot: every shard's `replica_state.json` and `shard_config.json`,
/// but points (and the filler) only for its local shards, as the real server writes it.
pub(crate) fn write_peer_snapshot(
    link: &PeerLink,
    dest: &Path,
    c: &str,
    filler: u64,
) -> io::Result<String> {
    let col = link
        .lock()
        .collections
        .get(c)
        .cloned()
        .ok_or_else(|| io::Error::other(format!("collection {c} is gone")))?;
    let file = File::create(dest)?;
    let mut b = tar::Builder::new(HashingWriter::new(BufWriter::with_capacity(
        256 * 1024,
        file,
    )));
    let mut filler_left = filler;
    for (id, shard) in &col.shards {
        append_bytes(
            &mut b,
            &format!("{id}/replica_state.json"),
            replica_state(shard, link.peer_id).to_string().as_bytes(),
        )?;
        append_bytes(
            &mut b,
            &format!("{id}/shard_config.json"),
            br#"{"type":"ReplicaSet"}"#,
        )?;
        if let Some(replica) = shard.replicas.get(&link.peer_id) {
            let points = points_entry(&replica.points, &col.empty_fields, &col.records);
            append_bytes(
                &mut b,
                &format!("{id}/{POINTS_ENTRY}"),
                points.to_string().as_bytes(),
            )?;
            if filler_left > 0 {
                b.append_data(
                    &mut header(filler_left),
                    format!("{id}/{FILLER_ENTRY}"),
                    Filler::new(filler_left, link.peer_id ^ 0x9E37_79B9_7F4A_7C15),
                )?;
                filler_left = 0;
            }
        }
    }
    collection_files(&mut b, &col)?;
    let (file, sha) = finish(b)?;
    file.sync_all()?;
    Ok(sha)
}

/// A shard snapshot: the shard's files rooted at the archive top (`replica_state.json`,
/// `shard_config.json`, `segments/…` with this peer's points, an empty `wal/`). The double
/// also puts the collection's `config.json` and `payload_index.json` in, so that its recovery
/// can check the archive.
pub(crate) fn write_shard_snapshot(
    dest: &Path,
    col: &ClusterCollection,
    shard_id: u32,
    peer_id: u64,
    filler: u64,
) -> io::Result<String> {
    let file = File::create(dest)?;
    let mut b = tar::Builder::new(HashingWriter::new(BufWriter::with_capacity(
        256 * 1024,
        file,
    )));
    shard_entries(&mut b, col, shard_id, peer_id, filler)?;
    let (file, sha) = finish(b)?;
    file.sync_all()?;
    Ok(sha)
}

/// The archive of [`write_shard_snapshot`], written to `out` as it is made (the streamed
/// shard snapshot, `GET /collections/{c}/shards/{id}/snapshot`).
pub(crate) fn stream_shard_snapshot(
    out: &mut dyn Write,
    col: &ClusterCollection,
    shard_id: u32,
    peer_id: u64,
    filler: u64,
) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    shard_entries(&mut b, col, shard_id, peer_id, filler)?;
    b.into_inner()?.flush()
}

fn shard_entries<W: Write>(
    b: &mut tar::Builder<W>,
    col: &ClusterCollection,
    shard_id: u32,
    peer_id: u64,
    filler: u64,
) -> io::Result<()> {
    let shard = col
        .shards
        .get(&shard_id)
        .ok_or_else(|| io::Error::other(format!("shard {shard_id} is gone")))?;
    let points = shard
        .replicas
        .get(&peer_id)
        .map(|r| r.points.clone())
        .unwrap_or_default();
    append_bytes(
        b,
        "replica_state.json",
        replica_state(shard, peer_id).to_string().as_bytes(),
    )?;
    append_bytes(b, "shard_config.json", br#"{"type":"ReplicaSet"}"#)?;
    let listed = points_entry(&points, &col.empty_fields, &col.records);
    append_bytes(b, POINTS_ENTRY, listed.to_string().as_bytes())?;
    if filler > 0 {
        b.append_data(
            &mut header(filler),
            FILLER_ENTRY,
            Filler::new(
                filler,
                peer_id ^ u64::from(shard_id) ^ 0x9E37_79B9_7F4A_7C15,
            ),
        )?;
    }
    let mut wal = tar::Header::new_gnu();
    wal.set_entry_type(tar::EntryType::Directory);
    wal.set_size(0);
    wal.set_mode(0o755);
    wal.set_mtime(0);
    b.append_data(&mut wal, "wal/", io::empty())?;
    collection_files(b, col)
}
