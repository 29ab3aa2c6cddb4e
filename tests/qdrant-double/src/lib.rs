//! A small, stateful, Qdrant-compatible HTTP server for aimem's tests and benchmarks.
//!
//! It speaks the subset of the Qdrant 1.18.3 REST API a backup tool uses (collections, payload
//! indexes, points with their vectors and payloads: scroll, count, retrieve, upsert and delete,
//! with filters; aliases; collection snapshots: create/list/download/delete/upload/recover,
//! the streamed shard snapshot `GET /collections/{c}/shards/{id}/snapshot` (chunked, nothing
//! stored; off with [`Config::no_streamed_shard_snapshot`]), and the snapshot gauges of
//! `GET /metrics`),
//! with the status codes, JSON shapes and error bodies of the real exchanges captured in
//! `tests/fixtures/qdrant/`; with [`Config::v1_16_3`] it answers as 1.16.3 where that differs
//! (`tests/fixtures/qdrant-1.16.3/`). Snapshots are real uncompressed tar files on disk that
//! carry the points' records. Faults can be injected per request (see [`Fault`]).
//!
//! ```no_run
//! use qdrant_double::{Config, Double};
//! let double = Double::start(Config::default());
//! double.seed_ai_memory();
//! println!("{}", double.url());
//! ```

mod aliases;
mod cluster;
mod cluster_routes;
mod faults;
mod filter;
mod http;
mod multipart;
mod pace;
mod point_routes;
mod points;
mod routes;
mod server;
mod single_shards;
mod snapshot;
mod state;
mod stream_shard;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::Value;

pub use cluster::{Cluster, info_from_fixture};
pub use faults::{Fault, FaultKind, LateAnswer};
use server::{Shared, lock};
use state::{Collection, State};

/// The five AI Memory collections, each with a captured `collections/info-{name}.json`.
pub const AI_MEMORY_COLLECTIONS: [&str; 5] = [
    "discussions",
    "conventions",
    "code-patterns",
    "github",
    "jira-data",
];

/// The captured real exchanges (`tests/fixtures/qdrant`).
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/qdrant"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Full-access key; with no key at all, auth is off.
    pub api_key: Option<String>,
    /// Read-only key.
    pub read_only_api_key: Option<String>,
    /// What `GET /` reports.
    pub version: String,
    /// Used in snapshot names and the cluster view.
    pub peer_id: u64,
    /// Simulated build time: creating a snapshot takes at least `size / rate` (bytes per
    /// second), like a real server's work. `None` (the default): as fast as the disk.
    pub snapshot_create_rate: Option<NonZeroU64>,
    /// Simulated recovery time: recovering a snapshot (upload or `recover`) takes at least
    /// `size / rate` (bytes per second) before the collection changes. `None`: no delay.
    pub snapshot_recover_rate: Option<NonZeroU64>,
    /// Simulated time to create a collection (`PUT /collections/{c}` answers after it).
    /// `None`: no delay.
    pub collection_create_delay: Option<std::time::Duration>,
    /// Simulated time to build one payload index. With `wait=true` the answer comes after
    /// it; with `wait=false` the answer is immediate and the index shows in `payload_schema`
    /// only after it, queued behind the collection's earlier index builds. `None`: no delay.
    pub index_create_delay: Option<std::time::Duration>,
    /// Multi-peer mode ([`Cluster`]): how long a shard transfer to a `Dead` replica takes
    /// (it is `Partial` meanwhile, then `Active` with the source's points).
    pub transfer_duration: std::time::Duration,
    /// Multi-peer mode: how long the replicas of a shard created through the API (a
    /// collection, a shard key) stay `Initializing` before they are `Active`.
    pub replica_init_delay: std::time::Duration,
    /// Multi-peer mode: how long a `Dead` replica waits before its shard transfer starts
    /// (the transfer is not listed meanwhile).
    pub transfer_start_delay: std::time::Duration,
    /// Multi-peer mode: how long after a `priority=snapshot` recovery answered the other
    /// replicas turn `Dead` (the change goes through the cluster's consensus).
    pub consensus_delay: std::time::Duration,
    /// Multi-peer mode: whether a `Dead` replica is refilled by a transfer from an `Active`
    /// one (Qdrant 1.18 does; a replica whose own recovery failed may stay `Dead` on older
    /// servers). `false`: it stays `Dead`.
    pub refill_dead_replicas: bool,
    /// Answer as a server without the streamed shard snapshot (`GET
    /// /collections/{c}/shards/{id}/snapshot`, singular) does: the double's 404 for an unknown
    /// route (`{"status":{"error":"Not found: no route for GET …"}}`). Both modes.
    pub no_streamed_shard_snapshot: bool,
    /// How many reads of a collection's info answer `yellow` after a `PATCH` gives a
    /// collection with points its indexing threshold back from 0 (the vector index being
    /// built); in multi-peer mode, of each peer's info. Default 1.
    pub indexing_reads: u32,
}

impl Config {
    /// A server that answers as Qdrant 1.16.3 (AI Memory's version) does where it differs from
    /// 1.18.3: no `update_queue` or `prevent_unoptimized` in a collection's info, a vector
    /// dimension error that does not name the vector.
    pub fn v1_16_3() -> Config {
        Config {
            version: "1.16.3".to_string(),
            ..Config::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            api_key: None,
            read_only_api_key: None,
            version: "1.18.3".to_string(),
            peer_id: 2743143085275039,
            snapshot_create_rate: None,
            snapshot_recover_rate: None,
            collection_create_delay: None,
            index_create_delay: None,
            transfer_duration: std::time::Duration::from_millis(300),
            replica_init_delay: std::time::Duration::from_millis(250),
            transfer_start_delay: std::time::Duration::from_millis(150),
            consensus_delay: std::time::Duration::from_millis(150),
            refill_dead_replicas: true,
            no_streamed_shard_snapshot: false,
            indexing_reads: 1,
        }
    }
}

/// One request the double received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// As sent, without the query string.
    pub path: String,
    /// Percent-decoded.
    pub query: BTreeMap<String, String>,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
}

/// A running double. Dropping it stops the server and removes its storage.
pub struct Double {
    pub(crate) shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
    _storage: tempfile::TempDir,
}

/// A UUID-shaped id unique to this double (Qdrant draws a random one each time it starts).
fn process_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        std::process::id(),
        n & 0xffff,
        (nanos >> 48) & 0xfff,
        (nanos >> 36) & 0xfff,
        nanos & 0xffff_ffff_ffff
    )
}

impl Double {
    /// Binds 127.0.0.1:0 and serves on background threads.
    pub fn start(config: Config) -> Double {
        Self::start_on(config, 0).expect("qdrant-double: cannot start")
    }

    /// Like [`Double::start`] on a chosen port (0 = any).
    pub fn start_on(config: Config, port: u16) -> std::io::Result<Double> {
        Self::start_in(config, port, None)
    }

    /// Like [`Double::start_on`], with the temp storage dir created inside `parent` (default:
    /// the system temp dir). The storage dir is removed on drop.
    pub fn start_in(config: Config, port: u16, parent: Option<&Path>) -> std::io::Result<Double> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        Self::start_full(config, addr, parent, None)
    }

    /// Binds `addr`; with `cluster`, the double is one peer of a [`Cluster`].
    pub(crate) fn start_full(
        config: Config,
        addr: SocketAddr,
        parent: Option<&Path>,
        cluster: Option<Arc<cluster::PeerLink>>,
    ) -> std::io::Result<Double> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("qdrant-double-");
        let storage = match parent {
            Some(dir) => builder.tempdir_in(dir)?,
            None => builder.tempdir()?,
        };
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State::default()),
            faults: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            conns: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            storage: storage.path().to_path_buf(),
            served: Mutex::new(Vec::new()),
            cluster,
            process_id: process_id(),
            peer_sync: Mutex::new(()),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("qdrant-double-accept".into())
                .spawn(move || server::accept_loop(shared, listener))?
        };
        Ok(Double {
            shared,
            addr,
            accept: Some(accept),
            _storage: storage,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The double's snapshot folder (`<storage>/snapshots`; one sub-folder per collection).
    pub fn snapshots_dir(&self) -> PathBuf {
        self.shared.snapshots_root()
    }

    /// Adds (or replaces) a collection whose `config` and `payload_schema` come from a captured
    /// `GET /collections/{c}` (path relative to [`fixtures_dir`]), with points `1..=points`.
    pub fn seed_from_fixture(&self, name: &str, fixture: &str, points: u64) {
        let path = fixtures_dir().join(fixture);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("qdrant-double: cannot read {}: {e}", path.display()));
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("qdrant-double: bad JSON in {}: {e}", path.display()));
        let info = &value["response"]["body"]["result"];
        assert!(
            info.get("config").is_some(),
            "qdrant-double: {fixture} is not a collection info fixture"
        );
        self.seed(name, info.clone(), (1..=points).collect());
    }

    /// Adds (or replaces) a collection from a CollectionInfo-like value
    /// `{"config": {...}, "payload_schema": {...}}`.
    pub fn seed(&self, name: &str, info: Value, point_ids: Vec<u64>) {
        let col = Collection::from_info(&info, point_ids.into_iter().collect());
        lock(&self.shared.state)
            .collections
            .insert(name.to_string(), col);
    }

    /// Seeds the five AI Memory collections from their fixtures, 30 points each.
    pub fn seed_ai_memory(&self) {
        for name in AI_MEMORY_COLLECTIONS {
            self.seed_from_fixture(name, &format!("collections/info-{name}.json"), 30);
        }
    }

    /// Extra incompressible bytes that snapshots of `collection` carry (streamed to disk).
    pub fn set_snapshot_filler(&self, collection: &str, bytes: u64) {
        lock(&self.shared.state)
            .fillers
            .insert(collection.to_string(), bytes);
    }

    /// Makes `GET /collections/{collection}/cluster` answer `view` (the `result`), e.g. one
    /// peer's view of a three-node cluster from `cluster/3-node-collection-cluster-peer0.json`.
    pub fn set_cluster_view(&self, collection: &str, view: Value) {
        lock(&self.shared.state)
            .cluster_views
            .insert(collection.to_string(), view);
    }

    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.faults).push(fault);
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Points upserted into collection `name` while its indexing threshold was 0 (vector
    /// indexing off), since it was created.
    pub fn unindexed_writes(&self, name: &str) -> u64 {
        lock(&self.shared.state)
            .unindexed_writes
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Sorted.
    pub fn collection_names(&self) -> Vec<String> {
        lock(&self.shared.state)
            .collections
            .keys()
            .cloned()
            .collect()
    }

    /// Exactly the `result` that `GET /collections/{name}` would return.
    pub fn collection_info(&self, name: &str) -> Option<Value> {
        let mut state = lock(&self.shared.state);
        state.apply_due_indexes();
        let version = &self.shared.config.version;
        state
            .collections
            .get(name)
            .map(|c| state::info_for_version(c.info(), version))
    }

    /// Sorted.
    pub fn point_ids(&self, name: &str) -> Option<Vec<u64>> {
        lock(&self.shared.state)
            .collections
            .get(name)
            .map(|c| c.points.iter().copied().collect())
    }

    /// Adds points to an existing collection (no-op when it does not exist).
    pub fn upsert_points(&self, name: &str, ids: &[u64]) {
        if let Some(col) = lock(&self.shared.state).collections.get_mut(name) {
            col.points.extend(ids.iter().copied());
        }
    }

    /// Writes points as `PUT /collections/{name}/points` would: `points` is an upsert body
    /// (`{"points": [...]}` or `{"batch": {...}}`) or just the list of points (`{"id",
    /// "vector", "payload"}`). Vectors are checked and stored as the server stores them
    /// (cosine ones normalized, 32-bit floats, sparse indices sorted). Errors as the 400's
    /// message; a missing collection is an error too.
    pub fn upsert_records(&self, name: &str, points: Value) -> Result<(), String> {
        let body = upsert_body(points);
        let mut st = lock(&self.shared.state);
        let col = st
            .collections
            .get_mut(name)
            .ok_or_else(|| routes::not_found_collection(name))?;
        points::upsert(col, &body, &self.shared.config.version)
    }

    /// Every point of the collection as a scroll with `with_vector: true, with_payload: true`
    /// answers it (seeded points with their made-up vectors and payload), in id order.
    pub fn records(&self, name: &str) -> Option<Vec<Value>> {
        let st = lock(&self.shared.state);
        let col = st.collections.get(name)?;
        Some(all_records(&points::View::of(col)))
    }

    /// Alias name → collection name.
    pub fn aliases(&self) -> BTreeMap<String, String> {
        lock(&self.shared.state).aliases.clone()
    }

    /// Points `alias` at `collection` (which must exist), as `create_alias` does.
    pub fn create_alias(&self, alias: &str, collection: &str) -> Result<(), String> {
        let mut st = lock(&self.shared.state);
        let state::State {
            aliases,
            collections,
            ..
        } = &mut *st;
        let body = serde_json::json!({"actions": [{"create_alias": {"collection_name": collection, "alias_name": alias}}]});
        aliases::change(aliases, &body, |c| collections.contains_key(c)).map_err(|(_, msg)| msg)
    }

    /// Files in the collection's snapshot folder (created and uploaded; no checksum sidecars),
    /// sorted. They stay after the collection is deleted, as on the real server.
    pub fn snapshot_names(&self, collection: &str) -> Vec<String> {
        list_snapshot_files(&self.shared.snapshot_dir(collection))
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Snapshot recoveries running now, over all collections (what the
    /// `snapshot_recovery_running` gauges of `GET /metrics` add up to).
    pub fn recoveries_running(&self) -> u64 {
        lock(&self.shared.state)
            .snapshot_telemetry
            .values()
            .map(|t| t.running_recoveries)
            .sum()
    }

    /// Waits (up to `limit`) until no snapshot recovery is running; true if none is.
    pub fn wait_for_recoveries(&self, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while self.recoveries_running() > 0 {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        true
    }

    /// Response body bytes sent so far to `method` requests whose path contains
    /// `path_contains`, counting bytes of answers cut short or abandoned by the client.
    pub fn body_bytes_served(&self, method: &str, path_contains: &str) -> u64 {
        lock(&self.shared.served)
            .iter()
            .filter(|(m, path, _)| m.eq_ignore_ascii_case(method) && path.contains(path_contains))
            .map(|(_, _, bytes)| bytes)
            .sum()
    }

    /// Every answer so far: the request's method and path (as sent) and the response body
    /// bytes sent.
    pub fn served(&self) -> Vec<(String, String, u64)> {
        lock(&self.shared.served).clone()
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
        for (_, conn) in lock(&self.shared.conns).drain() {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

/// An upsert body from a body or a bare list of points.
pub(crate) fn upsert_body(points: Value) -> Value {
    match points {
        list @ Value::Array(_) => serde_json::json!({ "points": list }),
        body => body,
    }
}

/// Every point a view reads, as a full scroll answers them, in id order.
pub(crate) fn all_records(view: &points::View<'_>) -> Vec<Value> {
    let body = serde_json::json!({"limit": view.ids.len().max(1), "with_vector": true, "with_payload": true});
    points::scroll(view, &body)
        .ok()
        .and_then(|page| page["points"].as_array().cloned())
        .unwrap_or_default()
}

/// Sorted file names in a snapshot folder, without `.checksum` sidecars.
pub(crate) fn list_snapshot_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let names: BTreeSet<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".checksum"))
        .collect();
    names.into_iter().collect()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod cluster_tests;
